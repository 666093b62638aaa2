"""The streaming evaluation with a tiny stand-in feature extractor: statistics cache, views, metric registry."""

import json
import os

import numpy as np
import pytest

from fake_inception import TinyFeatures

from tfcoord.data import render_landscape
from tfcoord.errors import UserError
from tfcoord.metrics import METRICS, get_metric, stats_cache
from tfcoord.metrics.evaluation import Evaluation, batch_seed
from tfcoord.metrics.fid import feature_set, frechet_distance
from tfcoord.metrics.views import ScaleInvariant, resize_corners_aligned, scaleinv_sizes


class LandscapeGenerator:
    """A 'perfect' generator: other scenes of the real distribution, at any size."""

    name = "landscapes"

    def __init__(self, size=(32, 32), fov=None):
        self.size, self.fov = size, fov
        self.calls = []

    def image_size(self):
        return self.size

    def sample_images(self, seed, num):
        return self.sample_images_at(seed, num, self.size)

    def sample_images_at(self, seed, num, size):
        self.calls.append((seed, num, tuple(size)))
        return np.stack([render_landscape(7, seed % 10_000 * 64 + i, *size) for i in range(num)]) / 127.5 - 1.0


class NoiseGenerator(LandscapeGenerator):
    name = "noise"

    def sample_images_at(self, seed, num, size):
        return np.random.default_rng(seed).uniform(-1, 1, (num, *size, 3))


class PatchGenerator(LandscapeGenerator):
    name = "patches"
    patch_size = 16

    def sample_patches(self, seed, num):
        return self.sample_images(seed, num)[:, :16, :16]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(stats_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "stats"


def evaluation(metric="fid", model=None, real="synthetic-landscapes", num_real=48, batch=16, **options):
    return Evaluation(get_metric(metric), model or LandscapeGenerator(), real, num_real=num_real, batch=batch,
                      extractor=TinyFeatures(), options=options, progress=False)


def test_registry_lists_every_metric_and_suggests_close_names():
    assert list(METRICS) == ["fid", "kid", "pr", "scaleinv-fid", "patch-fid"]
    with pytest.raises(UserError, match="did you mean 'kid'"):
        get_metric("kdi")


def test_a_perfect_generator_scores_better_than_noise(cache):
    good = evaluation().run(48, seed=0)
    bad = evaluation(model=NoiseGenerator()).run(48, seed=0)
    assert good["fid"] < 0.25 * bad["fid"], (good["fid"], bad["fid"])
    assert good["num_generated"] == 48 and good["num_real"] == 48


def test_cached_real_statistics_are_identical_and_skip_the_real_images(cache):
    first = evaluation()
    first_result = first.run(32, seed=1)
    assert not first.cache_hit and len(list(cache.glob("*.npz"))) == 1
    second = evaluation()
    second_result = second.run(32, seed=1)
    assert second.cache_hit
    a, b = first.real_statistics(), second.real_statistics()
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.cov, b.cov)
    assert first_result["fid"] == second_result["fid"]
    assert second.extractor.calls == 2  # only the generated batches (2 x 16) went through the extractor
    described = json.loads(next(cache.glob("*.json")).read_text())
    assert described["count"] == 48 and described["image_size"] == [32, 32] and "npz_sha256" in described


def test_cache_key_follows_the_folder_content(tmp_path, cache):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 40, 0, 0)).save(folder / f"{i}.png")
    spec = f"folder:{folder}"
    first = stats_cache.cache_key(evaluation(real=spec).real_description())
    assert stats_cache.cache_key(evaluation(real=spec).real_description()) == first
    Image.new("RGB", (20, 20)).save(folder / "new.png")
    second = stats_cache.cache_key(evaluation(real=spec).real_description())
    os.utime(folder / "0.png", ns=(1, 1))
    third = stats_cache.cache_key(evaluation(real=spec).real_description())
    other_count = stats_cache.cache_key(evaluation(real=spec, num_real=10).real_description())
    assert len({first, second, third, other_count}) == 4


def test_a_damaged_cache_entry_is_recomputed(cache, capsys):
    evaluation().real_statistics()
    npz = next(cache.glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:-10])
    again = evaluation()
    again.real_statistics()
    assert not again.cache_hit and "damaged statistics cache entry" in capsys.readouterr().err
    assert evaluation().real_statistics() is not None and evaluation().real_statistics().count == 48


def test_kid_and_precision_recall_keep_features_and_refresh_a_cache_without_them(cache):
    evaluation("fid").real_statistics()  # caches mean/cov only
    kid = evaluation("kid", kid_subsets=5)
    result = kid.run(40, seed=0)
    assert not kid.cache_hit  # the FID entry lacks features
    assert result["kid_subset_size"] == 40 and np.isfinite(result["kid"])
    pr = evaluation("pr", pr_k=3)
    pr_result = pr.run(40, seed=0)
    assert pr.cache_hit and 0.0 <= pr_result["precision"] <= 1.0 and 0.0 <= pr_result["recall"] <= 1.0


def test_generated_batches_have_independent_seeds_and_exact_counts(cache):
    model = LandscapeGenerator()
    evaluation(model=model, batch=16).generated_statistics(37, seed=5)
    assert [num for _, num, _ in model.calls] == [16, 16, 5]
    assert [seed for seed, _, _ in model.calls] == [batch_seed(5, i) for i in range(3)]
    assert len({seed for seed, _, _ in model.calls}) == 3


def test_nan_images_are_a_user_error(cache):
    class Broken(LandscapeGenerator):
        def sample_images_at(self, seed, num, size):
            return np.full((num, *size, 3), np.nan)

    with pytest.raises(UserError, match="NaN"):
        evaluation(model=Broken()).generated_statistics(4, 0)


def test_patch_fid_uses_native_patches_or_centre_crops(cache):
    native = evaluation("patch-fid", model=PatchGenerator())
    assert native.view.size == (16, 16) and native.run(32)["view"]["native_patches"]
    cropped = evaluation("patch-fid", model=LandscapeGenerator(), patch_size=20)
    assert cropped.view.generate(0, 2).shape == (2, 20, 20, 3)
    with pytest.raises(UserError, match="--patch-size"):
        evaluation("patch-fid", model=LandscapeGenerator())
    with pytest.raises(UserError, match="must fit inside"):
        evaluation("patch-fid", model=LandscapeGenerator(), patch_size=40)


def test_scaleinv_sizes_follow_the_infinitygan_protocol():
    # models.md §5: real 128, k = 2, fov 197/128 -> generate 394, rescale to 256, crop 256, resize to 128.
    assert scaleinv_sizes((128, 128), 2, 197 / 128) == ((394, 394), (256, 256), (256, 256))
    assert scaleinv_sizes((128, 128), 1, 1.0) == ((128, 128), (128, 128), (128, 128))


def test_corner_aligned_resize_matches_its_definition():
    image = np.random.default_rng(0).random((1, 5, 7, 3)).astype(np.float32)
    out = resize_corners_aligned(image, (9, 4))
    ys, xs = np.linspace(0, 4, 9), np.linspace(0, 6, 4)  # output pixel i samples input at i (in-1)/(out-1)
    y0, x0 = np.floor(ys).astype(int).clip(0, 3), np.floor(xs).astype(int).clip(0, 5)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = image[0]
    expected = ((1 - wy) * (1 - wx) * img[y0][:, x0] + (1 - wy) * wx * img[y0][:, x0 + 1]
                + wy * (1 - wx) * img[y0 + 1][:, x0] + wy * wx * img[y0 + 1][:, x0 + 1])
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_scaleinv_fid_at_scale_one_is_plain_fid_and_larger_scales_generate_larger(cache):
    plain = evaluation("fid").run(32, seed=3)["fid"]
    same = evaluation("scaleinv-fid", scale=1, fov=1.0).run(32, seed=3)["fid"]
    assert same == pytest.approx(plain, rel=1e-12)
    model = LandscapeGenerator(fov=None)
    result = evaluation("scaleinv-fid", model=model, scale=2, fov=1.5).run(16, seed=0)
    assert model.calls[0][2] == (96, 96) and result["view"]["generated_size"] == [96, 96]
    assert result["real_statistics_cached"]  # the real side is FID's cache entry


def test_scaleinv_needs_a_model_that_generates_any_size():
    class FixedSize:
        name = "fixed"

        def image_size(self):
            return (32, 32)

    with pytest.raises(UserError, match="sample_images_at"):
        ScaleInvariant(FixedSize(), {})


def test_fid_of_identical_feature_streams_is_zero(cache):
    features = TinyFeatures()(np.stack([render_landscape(0, i, 32, 32) for i in range(40)]) / 127.5 - 1)
    stats = feature_set(features)
    assert frechet_distance(stats.mean, stats.cov, stats.mean, stats.cov) == pytest.approx(0.0, abs=1e-12)
