"""folder:PATH: every readable image below a folder, any PIL mode, broken files skipped."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from tfcoord.data import make_dataset
from tfcoord.data.folder import is_readable, to_rgb
from tfcoord.errors import UserError

GOOD_FILES = 10


def _pattern(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def image_folder(tmp_path):
    """Ten readable images in many formats and modes, two broken ones, an empty shard and a text file."""
    root = tmp_path / "images"
    (root / "shard_b" / "deeper").mkdir(parents=True)
    (root / "empty_shard").mkdir()
    Image.fromarray(_pattern(40, 60)).save(root / "photo.jpg", quality=90)
    Image.fromarray(_pattern(50, 30)).save(root / "UPPER.JPEG")
    Image.fromarray(_pattern(33, 47)).save(root / "shard_b" / "lossless.png")
    Image.fromarray(_pattern(64, 48)).save(root / "shard_b" / "deeper" / "modern.webp")
    Image.fromarray(_pattern(36, 36)[..., 0]).save(root / "grey.png")
    Image.fromarray(np.dstack([_pattern(30, 40), np.full((30, 40), 128, np.uint8)])).save(root / "alpha.png")
    Image.fromarray(np.full((20, 24), 32896, np.uint16)).save(root / "deep16.png")  # 128 in 8 bits
    Image.fromarray(_pattern(5, 7)).save(root / "tiny.png")
    Image.fromarray(_pattern(32, 32)).convert("CMYK").save(root / "print.jpg")
    Image.fromarray(_pattern(28, 28)).convert("P").save(root / "palette.png", transparency=0)
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    Image.fromarray(_pattern(80, 80)).save(root / "cut.jpg", quality=95)
    data = (root / "cut.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    os.remove(root / "cut.jpg")
    (root / "notes.txt").write_text("not an image")
    return root


def open_folder(root, **kwargs):
    arguments = dict(image_size=(16, 24), batch_size=1, seed=0, training=False) | kwargs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = make_dataset(f"folder:{root}", **arguments)
    return dataset, [str(w.message) for w in caught if "unreadable" in str(w.message)]


def test_broken_files_are_counted_in_one_warning_and_the_rest_load(image_folder):
    dataset, messages = open_folder(image_folder)
    assert len(messages) == 1 and "skipping 2 " in messages[0]
    assert "corrupt.jpg" in messages[0] and "truncated.jpg" in messages[0]
    images = np.concatenate([batch["image"].numpy() for batch in dataset])
    assert images.shape == (GOOD_FILES, 16, 24, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    # The 16-bit image is scaled to 8 bits (128), not clipped to 255.
    assert any(np.allclose(image, 128 / 127.5 - 1.0, atol=1e-3) for image in images)


def test_training_stream_is_endless_batched_and_seeded(image_folder):
    dataset, _ = open_folder(image_folder, batch_size=4, training=True)
    batches = [batch["image"].numpy() for batch in dataset.take(6)]  # 24 elements: more than two epochs
    assert all(batch.shape == (4, 16, 24, 3) for batch in batches)
    again, _ = open_folder(image_folder, batch_size=4, training=True)
    other, _ = open_folder(image_folder, batch_size=4, training=True, seed=1)
    np.testing.assert_array_equal(np.stack(batches), np.stack([b["image"] for b in again.take(6)]))
    assert not np.array_equal(np.stack(batches), np.stack([b["image"] for b in other.take(6)]))


def test_resumed_stream_equals_the_tail_of_the_full_stream(image_folder):
    full, _ = open_folder(image_folder, batch_size=3, training=True)
    resumed, _ = open_folder(image_folder, batch_size=3, training=True, start_index=4 * 3)
    full_images = np.stack([batch["image"] for batch in full.take(7)])
    np.testing.assert_array_equal(np.stack([batch["image"] for batch in resumed.take(3)]), full_images[4:])


def test_file_broken_after_the_check_is_replaced_not_dropped(image_folder, caplog):
    dataset, _ = open_folder(image_folder)
    (image_folder / "photo.jpg").write_bytes(b"broken later")
    assert sum(1 for _ in dataset) == GOOD_FILES
    assert "photo.jpg" in caplog.text


def test_folder_of_only_broken_files_is_a_user_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\x00" * 100)
    (tmp_path / "b.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match="no readable images.*jpg/jpeg/png/webp"):
        open_folder(tmp_path)


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_folder(tmp_path / "nowhere")
    with pytest.raises(UserError, match="needs a path"):
        open_folder("")


def test_readability_check_catches_truncation(image_folder):
    assert is_readable(str(image_folder / "photo.jpg"))
    assert is_readable(str(image_folder / "shard_b" / "deeper" / "modern.webp"))
    assert not is_readable(str(image_folder / "truncated.jpg"))
    assert not is_readable(str(image_folder / "corrupt.jpg"))


def test_modes_become_8_bit_rgb():
    deep = to_rgb(Image.fromarray(np.array([[0, 32896, 65535]], np.uint16)))
    np.testing.assert_array_equal(deep[0, :, 0], [0, 128, 255])
    clear = to_rgb(Image.new("RGBA", (2, 2), (10, 20, 30, 0)))
    np.testing.assert_array_equal(clear, np.full((2, 2, 3), 255))  # transparency shows white
    grey = to_rgb(Image.new("L", (3, 2), 77))
    assert grey.shape == (2, 3, 3) and np.all(grey == 77)
