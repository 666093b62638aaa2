"""data.resize / crop / flip: every policy and every paper preset's recipe on known images (issue 21).

Expected pixels come from NumPy: slices of the known image, and an independent antialiased
bilinear resize (triangle filter, half-pixel centres) where the recipe resizes.
"""

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from tfcoord.config import DataConfig, config_root, load_config, load_run_config
from tfcoord.data import make_dataset
from tfcoord.data.pipeline import fit_to_size
from tfcoord.errors import UserError
from tfcoord.models import model_class, section_classes


def distinct(height, width):
    """uint8 image whose red and green channels are the pixel's row and column (unique up to 256 x 256)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows % 256, cols % 256, (rows * 7 + cols * 3) % 256], -1).astype(np.uint8)


def noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _weights(n_in, n_out):
    scale = n_in / n_out
    radius = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None] + 0.5 - centres[:, None]) / radius)
    return w / w.sum(1, keepdims=True)


def numpy_resize(image, height, width):
    """Antialiased bilinear resize (what tf.image.resize(antialias=True) computes), in float64."""
    image = image.astype(np.float64)
    image = np.einsum("oh,hwc->owc", _weights(image.shape[0], height), image)
    return np.einsum("ow,hwc->hoc", _weights(image.shape[1], width), image)


def run(image, image_size, index=0, training=True, seed=0, **settings):
    """The pipeline's output for one element, back in 0..255."""
    data = settings.pop("preprocessing", None) or DataConfig(**settings)
    out = fit_to_size(tf.constant(index, tf.int64), {"image": tf.constant(image)}, image_size=image_size, seed=seed,
                      training=training, preprocessing=data)
    return (np.asarray(out["image"], np.float64) + 1.0) * 127.5


def assert_pixels(actual, expected):
    np.testing.assert_allclose(actual, np.clip(expected, 0, 255), atol=5e-3)


def matching_windows(out, source, size):
    """Every (top, left, flipped) whose size x size window of ``source`` equals ``out``."""
    found = []
    for top in range(source.shape[0] - size + 1):
        for left in range(source.shape[1] - size + 1):
            window = source[top:top + size, left:left + size]
            for flipped, candidate in ((False, window), (True, window[:, ::-1])):
                if abs(candidate[0, 0, 0] - out[0, 0, 0]) < 5e-3 and np.allclose(candidate, out, atol=5e-3):
                    found.append((top, left, flipped))
    return found


# -- each policy --------------------------------------------------------------------------------------
def test_random_largest_is_todays_default_random_window_and_flip_then_centred_at_evaluation():
    image = distinct(40, 60)
    seen = set()
    for index in range(40):
        out = run(image, (40, 40), index)
        (window,) = matching_windows(out, image.astype(np.float64), 40)
        seen.add(window)
    assert {flipped for _, _, flipped in seen} == {False, True}
    assert len({left for _, left, _ in seen}) > 5 and all(top == 0 for top, _, _ in seen)
    assert_pixels(run(image, (40, 40), 3, training=False), image[:, 10:50])


def test_centre_without_crop_size_is_the_largest_centred_window_rounded_down():
    image = distinct(40, 61)  # 21 spare columns: the window starts at column 10
    for index in range(10):
        assert_pixels(run(image, (40, 40), index, crop="centre", flip=False), image[:, 10:50])


def test_centre_with_crop_size_is_a_centred_square_then_resized():
    image = distinct(41, 60)
    assert_pixels(run(image, (20, 20), crop="centre", crop_size=20, flip=False), image[10:30, 20:40])
    assert_pixels(run(image, (10, 10), crop="centre", crop_size=20, flip=False),
                  numpy_resize(image[10:30, 20:40], 10, 10))


def test_random_crop_draws_offsets_over_the_whole_range_and_centres_at_evaluation():
    image = distinct(30, 50)
    windows = set()
    for index in range(60):
        out = run(image, (16, 16), index, crop="random", crop_size=16)
        (window,) = matching_windows(out, image.astype(np.float64), 16)
        windows.add(window)
    tops, lefts = {w[0] for w in windows}, {w[1] for w in windows}
    assert max(tops) <= 14 and max(lefts) <= 34 and len(tops) > 5 and len(lefts) > 10
    assert {w[2] for w in windows} == {False, True}
    assert_pixels(run(image, (16, 16), 7, training=False, crop="random", crop_size=16), image[7:23, 17:33])


def test_fixed_crop_takes_the_same_window_every_time():
    image = distinct(218, 178)
    for index in range(5):
        assert_pixels(run(image, (128, 128), index, crop="fixed", crop_size=128, crop_offset=(50, 25), flip=False),
                      image[50:178, 25:153])


def test_none_resizes_the_whole_image_without_keeping_its_aspect():
    image = distinct(30, 50)
    assert_pixels(run(image, (30, 50), crop="none", flip=False), image)
    assert_pixels(run(image, (15, 15), crop="none", flip=False), numpy_resize(image, 15, 15))


@pytest.mark.parametrize("shape, resized, left", [((40, 60), (20, 30), 5), ((30, 55), (20, 36), 8)])
def test_resize_scales_the_shorter_side_and_rounds_the_longer_one_down(shape, resized, left):
    image = distinct(*shape)
    out = run(image, (20, 20), resize=20, crop="centre", crop_size=20, flip=False)
    assert_pixels(out, numpy_resize(image, *resized)[:, left:left + 20])
    portrait = np.ascontiguousarray(image.transpose(1, 0, 2))
    out = run(portrait, (20, 20), resize=20, crop="centre", crop_size=20, flip=False)
    assert_pixels(out, numpy_resize(portrait, resized[1], resized[0])[left:left + 20])


def test_square_resize_squashes_the_image():
    image = distinct(40, 60)
    assert_pixels(run(image, (20, 20), resize=20, resize_mode="square", crop="none", flip=False),
                  numpy_resize(image, 20, 20))


def test_boxes_follow_a_fixed_crop_after_a_resize():
    image = np.zeros((40, 80, 3), np.uint8)
    box = tf.constant([0.25, 0.25, 0.75, 0.5])  # rows 10..30, columns 20..40 of the 40 x 80 image
    element = fit_to_size(tf.constant(0, tf.int64), {"image": image, "bbox": box}, image_size=(10, 10), seed=0,
                          training=True, preprocessing=DataConfig(resize=20, crop="fixed", crop_size=10,
                                                                  crop_offset=(5, 10), flip=False))
    # 20 x 40 after the resize: the box is rows 5..15, columns 10..20, exactly the window.
    np.testing.assert_allclose(element["bbox"], [0.0, 0.0, 1.0, 1.0], atol=1e-6)


def test_flip_off_never_flips_in_the_stream():
    image = distinct(16, 16)
    data = DataConfig(flip=False)
    for index in range(100):
        assert_pixels(run(image, (16, 16), index, preprocessing=data), image)


def test_flip_off_in_a_batched_folder_stream(tmp_path):
    Image.fromarray(distinct(12, 12)).save(tmp_path / "a.png")
    data = DataConfig(flip=False)
    batches = make_dataset(f"folder:{tmp_path}", image_size=(12, 12), batch_size=50, seed=1, preprocessing=data)
    for batch in batches.take(2):
        np.testing.assert_allclose((batch["image"].numpy() + 1) * 127.5, np.broadcast_to(distinct(12, 12), (50, 12, 12, 3)),
                                   atol=1e-3)


def test_a_crop_in_file_pixels_reads_the_jpeg_at_full_resolution(tmp_path):
    # At image size 8 a 64 x 48 JPEG would be decoded at 1/4 scale (16 x 12); the fixed crop needs all 64 x 48.
    Image.fromarray(np.full((64, 48, 3), 200, np.uint8)).save(tmp_path / "a.jpg")
    data = DataConfig(crop="fixed", crop_size=8, crop_offset=(50, 36), flip=False)
    batch = next(iter(make_dataset(f"folder:{tmp_path}", image_size=(8, 8), batch_size=1, seed=0,
                                   preprocessing=data)))
    assert batch["image"].shape == (1, 8, 8, 3)


def test_a_crop_larger_than_the_image_names_the_setting():
    with pytest.raises(tf.errors.InvalidArgumentError, match="data.crop random with crop_size 40"):
        run(distinct(30, 50), (16, 16), crop="random", crop_size=40)


def test_presized_sources_ignore_the_recipe():
    data = DataConfig(resize=8, crop="fixed", crop_size=4, crop_offset=(1, 1), flip=False)
    plain = next(iter(make_dataset("synthetic-landscapes", image_size=(6, 10), batch_size=1, seed=0)))
    recipe = next(iter(make_dataset("synthetic-landscapes", image_size=(6, 10), batch_size=1, seed=0,
                                    preprocessing=data)))
    np.testing.assert_array_equal(plain["image"], recipe["image"])


# -- configuration ------------------------------------------------------------------------------------
def cips_config(*overrides, config_file=None):
    return load_config("cips", section_classes("cips"), preset="tiny", config_file=config_file,
                       overrides=list(overrides))


@pytest.mark.parametrize("overrides, message", [
    (["data.crop=random"], "data.crop: random needs data.crop_size > 0"),
    (["data.crop=fixed"], "data.crop: fixed needs data.crop_size"),
    (["data.crop_size=64"], "data.crop_size is only used by crop: centre, random, fixed"),
    (["data.crop=none", "data.crop_size=8"], "data.crop_size is only used by"),
    (["data.crop=centre", "data.crop_offset=[2, 3]"], "data.crop_offset is only used by crop: fixed"),
    (["data.resize_mode=square"], "data.resize_mode: square needs data.resize > 0"),
    (["data.resize=100", "data.crop=random", "data.crop_size=128"], "crop_size 128 does not fit .*resize 100"),
    (["data.crop=center"], "data.crop must be one of 'random_largest', 'centre'"),
    (["data.resize=-1"], "data.resize must be >= 0"),
    (["loss.horizontal_flip=false", "data.flip=true"], "loss.horizontal_flip .* keep only data.flip"),
])
def test_bad_combinations_are_one_line_user_errors(overrides, message):
    with warnings.catch_warnings(), pytest.raises(UserError, match=message) as raised:
        warnings.simplefilter("ignore", FutureWarning)
        cips_config(*overrides)
    assert "\n" not in str(raised.value)


def test_defaults_are_todays_behaviour():
    data = DataConfig()
    assert (data.resize, data.crop, data.crop_size, data.flip) == (0, "random_largest", 0, True)


def test_horizontal_flip_is_a_deprecated_alias_of_data_flip():
    with pytest.warns(FutureWarning, match="loss.horizontal_flip is deprecated and now sets data.flip"):
        config = cips_config("loss.horizontal_flip=false")
    assert config.data.flip is False
    assert "horizontal_flip" not in config.to_dict()["loss"] and config.to_dict()["data"]["flip"] is False
    with pytest.warns(FutureWarning):
        assert cips_config("loss.horizontal_flip=false", "data.flip=false").data.flip is False


def test_a_saved_run_config_with_the_old_key_still_loads(tmp_path):
    saved = cips_config().to_dict()
    saved["data"] = {"source": "synthetic-landscapes"}  # written before data had more keys
    saved["loss"]["horizontal_flip"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    with pytest.warns(FutureWarning):
        config = load_run_config(tmp_path, section_classes)
    assert config.data.flip is False and config.data.crop == "random_largest"


@pytest.mark.parametrize("overrides", [["data.flip=false"], ["loss.horizontal_flip=false"]])
def test_cips_own_flip_reads_data_flip(overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        off = model_class("cips")(cips_config(*overrides))
    on = model_class("cips")(cips_config())
    flips_off = [off.step_inputs(tf.constant(step, tf.int64), 16)["flip"].numpy() for step in range(1, 21)]
    flips_on = [on.step_inputs(tf.constant(step, tf.int64), 16)["flip"].numpy() for step in range(1, 21)]
    assert not np.any(flips_off) and 0 < np.mean(flips_on) < 1


# -- every paper preset's recipe ----------------------------------------------------------------------
def paper_presets():
    excluded = {"panorama_tiny", "tiny_patch", "tiny_keypoints"}
    return sorted(f"{path.parent.name}/{path.stem}" for path in config_root().glob("*/*.yaml")
                  if not path.stem.startswith("tiny") and path.stem not in excluded)


def preset(name):
    model, name = name.split("/")
    config = load_config(model, section_classes(model), preset=name)
    return config, model_class(model)(config).image_size()


def expected_recipe(name, image_size):
    """(known image, a function from the pipeline's output to the unflipped window it must show)."""
    h, w = image_size
    if name.startswith("cocogan/celeba1") or name == "cocogan/celeba64":  # the fixed face crop
        image = distinct(218, 178)
        return image, lambda out: numpy_resize(image[50:178, 25:153], h, w)
    if name.startswith("cocogan/"):  # LSUN, CelebA-HQ, MP3D: the whole image
        image = noise(40, 50)
        return image, lambda out: numpy_resize(image, h, w)
    if name.startswith("cips/"):  # shorter side resized to the size (here already), then a random square
        image = noise(h, h + 11)
        return image, lambda out: random_window(out, image.astype(np.float64), h)
    if name.startswith("infinitygan/"):  # the centred largest square
        image = noise(h + 10, w)
        return image, lambda out: image[5:5 + h]
    # GAWWN (squashed to 150 or 140, random 128) and the text encoder (GAWWN's CUB recipe)
    side = 140 if name == "gawwn/mhp" else 150
    image = noise(60, 80)
    return image, lambda out: random_window(out, numpy_resize(image, side, side), h)


def random_window(out, source, size):
    found = matching_windows(out, source, size)
    assert len(found) == 1, f"the output is {len(found)} windows of the resized image, not one"
    top, left, _ = found[0]
    return source[top:top + size, left:left + size]


def test_every_paper_preset_states_crop_and_flip():
    for name in paper_presets():
        model, stem = name.split("/")
        text = (config_root() / model / f"{stem}.yaml").read_text()
        data = yaml.safe_load(text)["data"]
        assert {"crop", "flip"} <= set(data), f"{name}: data: states no crop/flip recipe"
        section = text[text.index("\ndata:"):]
        assert section.splitlines()[2].lstrip().startswith("#"), f"{name}: the recipe has no citing comment"


@pytest.mark.parametrize("name", paper_presets())
def test_paper_preset_recipe_on_a_known_image(name):
    config, image_size = preset(name)
    image, expected = expected_recipe(name, image_size)
    flips = set()
    for index in range(8 if config.data.flip else 2):  # 8 draws show both flips (stateless, so always the same)
        out = run(image, image_size, index, seed=3, preprocessing=config.data)
        target = np.clip(np.asarray(expected(out), np.float64), 0, 255)
        flipped = not np.allclose(out, target, atol=5e-3)
        assert_pixels(out, target[:, ::-1] if flipped else target)
        flips.add(flipped)
    assert flips == ({False, True} if config.data.flip else {False})


def test_celeba_presets_train_on_the_papers_split():
    for name in paper_presets():
        if "celeba1" in name or name.endswith("celeba64"):
            assert preset(name)[0].data.source == "tfds:celeb_a:train[:152599]"
