"""tfds:NAME[/CONFIG][:SPLIT]: prepared data sets only, offline through tfds' mocks (P18)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfcoord.data import make_dataset
from tfcoord.errors import UserError

BOX = [0.1, 0.2, 0.9, 0.8]  # ymin, xmin, ymax, xmax


def bird_fixture(*args, **kwargs):
    """A deterministic stand-in for caltech_birds2011: 8 images of 96 x 80 with one box each."""
    images = np.random.default_rng(0).integers(0, 256, (8, 96, 80, 3), dtype=np.uint8)
    boxes = np.tile(np.array([BOX], np.float32), (8, 1))
    labels = np.arange(8, dtype=np.int64)
    return tf.data.Dataset.from_tensor_slices({"image": images, "bbox": boxes, "label": labels})


def take(dataset, count):
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset.take(count)]


@pytest.mark.parametrize("name", ["celeb_a", "lsun/church_outdoor"])
def test_mock_gives_endless_image_batches(name):
    with tfds.testing.mock_data(num_examples=5):
        dataset = make_dataset(f"tfds:{name}", image_size=(32, 32), batch_size=2, seed=0)
        batches = take(dataset, 4)  # 8 elements from 5 examples: repeats
    assert [sorted(batch) for batch in batches] == [["image"]] * 4
    images = np.stack([batch["image"] for batch in batches])
    assert images.shape == (4, 2, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_caltech_birds_mock_with_random_small_sizes_carries_boxes_and_labels():
    with tfds.testing.mock_data(num_examples=6):
        dataset = make_dataset("tfds:caltech_birds2011:test", image_size=(48, 64), batch_size=3, seed=1)
        batches = take(dataset, 3)
    for batch in batches:
        assert batch["image"].shape == (3, 48, 64, 3)
        assert batch["bbox"].shape == (3, 4) and batch["bbox"].min() >= 0.0 and batch["bbox"].max() <= 1.0
        assert batch["label"].shape == (3,) and batch["label"].dtype == np.int64


def test_fixture_stream_is_deterministic_and_resumable():
    with tfds.testing.mock_data(as_dataset_fn=bird_fixture):
        def stream(start_index, count):
            return take(make_dataset("tfds:caltech_birds2011", image_size=(32, 32), batch_size=3, seed=4,
                                     start_index=start_index), count)
        full, again, resumed = stream(0, 6), stream(0, 6), stream(2 * 3, 4)
    for key in ("image", "bbox", "label"):
        np.testing.assert_array_equal(np.stack([b[key] for b in full]), np.stack([b[key] for b in again]))
        np.testing.assert_array_equal(np.stack([b[key] for b in resumed]), np.stack([b[key] for b in full[2:]]))
    assert [int(label) for b in full for label in b["label"]][:10] == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]


def test_centre_crop_moves_the_box_into_the_square():
    with tfds.testing.mock_data(as_dataset_fn=bird_fixture):
        dataset = make_dataset("tfds:caltech_birds2011", image_size=(32, 32), batch_size=8, seed=0, training=False)
        (batch,) = take(dataset, 2)  # one pass only
    # 96 x 80 -> the centred 80 x 80 square from row 8: y' = (96 y - 8) / 80.
    expected = [(0.1 * 96 - 8) / 80, 0.2, (0.9 * 96 - 8) / 80, 0.8]
    np.testing.assert_allclose(batch["bbox"], np.tile([expected], (8, 1)), atol=1e-6)


def test_unknown_data_set_suggests_close_names():
    with pytest.raises(UserError, match="unknown tfds data set 'celeba'.*celeb_a"):
        make_dataset("tfds:celeba", image_size=(8, 8), batch_size=1, seed=0)


def test_data_set_not_prepared_says_how_to_prepare_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match="not prepared") as raised:
        make_dataset("tfds:celeb_a", image_size=(8, 8), batch_size=1, seed=0)
    assert "tfds build celeb_a" in str(raised.value) and "TFDS_DATA_DIR" in str(raised.value)


def test_missing_name_is_a_user_error():
    with pytest.raises(UserError, match="needs a data set name"):
        make_dataset("tfds:", image_size=(8, 8), batch_size=1, seed=0)


class TinyFaces(tfds.core.GeneratorBasedBuilder):
    """A real (not mocked) prepared data set of 10 images 6 x 4 whose label is their value."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(6, 4, 3)), "label": tf.int64})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(10):
            yield i, {"image": np.full((6, 4, 3), 20 * i, np.uint8), "label": i}


def test_split_expressions_pass_through_and_resume(tmp_path, monkeypatch):
    TinyFaces(data_dir=str(tmp_path)).download_and_prepare()
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))

    def labels(spec, start_index=0, count=4, training=True):
        data = make_dataset(spec, image_size=(4, 4), batch_size=2 if training else 1, seed=0, start_index=start_index,
                            training=training)
        return [int(v) for b in data.take(count) for v in b["label"]]

    subset = labels("tfds:tiny_faces:train[:3]", count=6)  # 12 elements of a 3-example epoch
    assert len(set(subset)) == 3 and subset[:3] * 4 == subset
    assert labels("tfds:tiny_faces:train[:3]", start_index=4, count=4) == subset[4:]  # resumes mid-epoch
    rest = labels("tfds:tiny_faces:train[3:]", training=False, count=10)
    assert len(rest) == 7 and not set(rest) & set(subset) and set(rest) | set(subset) == set(range(10))
    with pytest.raises(UserError, match=r"cannot load tfds:tiny_faces:train\[:3\]\+nope"):
        make_dataset("tfds:tiny_faces:train[:3]+nope", image_size=(4, 4), batch_size=1, seed=0)
