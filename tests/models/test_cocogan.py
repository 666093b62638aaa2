"""COCO-GAN: parameter counts of the spec, assembly by parts, panoramas, save/reload."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.config import load_config
from tfcoord.coords import merge_patches
from tfcoord.gan.losses import wasserstein_gradient_penalty as gradient_penalty
from tfcoord.models import section_classes
from tfcoord.models.cocogan.model import CocoGan, build_networks


def config(preset="tiny", *overrides):
    return load_config("cocogan", section_classes("cocogan"), preset=preset, overrides=list(overrides))


def count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("preset, g_params, d_params", [
    ("celeba128_n2m2", 11_392_515, 9_842_881),
    ("celeba64", 11_225_091, 9_449_281),
    ("lsun256", 11_504_067, 9_920_897),
    ("mp3d_panorama", 11_514_179, 9_921_409),
])
def test_parameter_counts_match_the_spec(preset, g_params, d_params):
    generator, discriminator, spatial_head, content_head = build_networks(config(preset).model)
    assert (count(generator), count(discriminator)) == (g_params, d_params)
    assert count(spatial_head) == (66_307 if preset == "mp3d_panorama" else 66_178)
    assert content_head is None


def test_content_head_parameters():
    *_, content_head = build_networks(config("celeba128_patch_guided").model)
    assert count(content_head) == 82_432


@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny model after two training steps (so BN/CBN recorders are not at their initial values)."""
    model = CocoGan(config("tiny", "model.ngf=8", "model.ndf=8"))
    model.build()
    for step in range(2):
        batch = {"image": tf.random.stateless_uniform([4, 32, 32, 3], [step, 1], -1.0, 1.0),
                 **model.step_inputs(step, 4)}
        model.train_step(batch, 4)
    return model


def test_full_image_equals_training_time_merge(trained_tiny):
    model = trained_tiny
    z = model.latents(3, 2)
    full = model.sampler.generate_full(z)
    size, micro = model.config.model.macro_size, model.config.model.micro_size
    for row in range(model.geometry.macro_rows()):
        for col in range(model.geometry.macro_cols()):
            rows, cols = np.full(2, row), np.full(2, col)
            macro = np.asarray(model.generate_macro_patches(z, rows, cols, training=False))
            top, left = row * micro, col * micro
            np.testing.assert_allclose(macro, full[:, top:top + size, left:left + size], atol=1e-6)


def test_micro_patch_alone_equals_its_place_in_the_image(trained_tiny):
    model = trained_tiny
    z = model.latents(5, 1)
    full = model.sampler.generate_full(z, extrapolation_steps=1)
    grid = np.asarray(model.geometry.full_micro_grid(1))
    micro = model.config.model.micro_size
    alone = np.asarray(model.sampler.micro_patches(z, grid[2:3, 4]))
    np.testing.assert_allclose(alone[0], full[0, 2 * micro:3 * micro, 4 * micro:5 * micro], atol=1e-6)
    assert full.shape == (1, 48, 48, 3)  # 32 + 2 micro patches of 8


def test_cylindrical_panorama_is_continuous_across_the_seam():
    model = CocoGan(config("panorama_tiny"))
    model.build_networks()
    z = model.latents(0, 2)
    full = model.sampler.generate_full(z)
    assert full.shape == (2, 32, 96, 3)
    micro = model.config.model.micro_size
    # The micro patch one step past the last column is the first column again.
    coords = np.asarray(model.geometry.micro_coords(np.full(2, 1), np.full(2, model.geometry.micro_cols)))
    past_the_end = np.asarray(model.sampler.micro_patches(z, coords))
    np.testing.assert_allclose(past_the_end, full[:, micro:2 * micro, :micro], atol=1e-6)
    # A macro patch at the last column continues into the first (real crops wrap the same way).
    macro = np.asarray(model.generate_macro_patches(z, np.zeros(2, int), np.full(2, 11), training=False))
    np.testing.assert_allclose(macro[:, :, :micro], full[:, :16, -micro:], atol=1e-6)
    np.testing.assert_allclose(macro[:, :, micro:], full[:, :16, :micro], atol=1e-6)


def test_real_panorama_crop_wraps():
    model = CocoGan(config("panorama_tiny"))
    images = np.random.default_rng(0).uniform(-1, 1, (1, 32, 96, 3)).astype("float32")
    crop = np.asarray(model.real_macro_patches(images, np.array([1]), np.array([11])))
    np.testing.assert_array_equal(crop[0], np.concatenate([images[0, 8:24, 88:], images[0, 8:24, :8]], axis=1))


def test_step_inputs_are_deterministic_and_in_range():
    model = CocoGan(config("tiny", "loss.extrapolation_steps=1"))
    first, again = model.step_inputs(7, 16), model.step_inputs(7, 16)
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    assert not np.array_equal(first["z"].numpy(), model.step_inputs(8, 16)["z"].numpy())
    assert set(np.unique(first["macro_row"].numpy())) <= {0, 1, 2}
    assert set(np.unique(first["extrapolation_row"].numpy())) <= {-1, 0, 1, 2, 3}


def test_training_updates_and_losses_finite(trained_tiny):
    model = trained_tiny
    before = [v.numpy().copy() for v in model.generator.trainable_variables]
    batch = {"image": tf.zeros([4, 32, 32, 3]), **model.step_inputs(9, 4)}
    losses = model.train_step(batch, 4)
    assert all(np.isfinite(float(v)) for v in losses.values())
    after = model.generator.trainable_variables
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(before, after))


def test_extrapolation_finetuning_touches_only_the_first_two_blocks():
    model = CocoGan(config("tiny", "model.ngf=8", "model.ndf=8", "loss.extrapolation_steps=1"))
    model.build()
    names = {v.path for v in model.extrapolation_g_variables()}
    assert names and all("g_resblock_0" in n or "g_resblock_1" in n for n in names)
    losses = model.train_step({"image": tf.zeros([4, 32, 32, 3]), **model.step_inputs(0, 4)}, 4)
    assert "extrapolation/d_loss" in losses and np.isfinite(float(losses["extrapolation/g_loss"]))


def test_official_gradient_penalty_variant():
    gradients = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    per_sample = np.asarray(gradient_penalty(gradients, "per_sample"))
    np.testing.assert_allclose(per_sample, (np.sqrt((gradients ** 2).sum((1, 2, 3))) - 1) ** 2, rtol=1e-5)
    official = np.asarray(gradient_penalty(gradients, "official_axis1"))
    np.testing.assert_allclose(official, ((np.sqrt((gradients ** 2).sum(1)) - 1) ** 2).mean((1, 2)), rtol=1e-5)


def test_patch_guided_generation():
    model = CocoGan(config("tiny", "model.content_head=true", "loss.content_weight=100"))
    model.build()
    model.train_step({"image": tf.zeros([4, 32, 32, 3]), **model.step_inputs(0, 4)}, 4)
    image, z_est, coords_est = model.patch_guided_generate(np.zeros((1, 16, 16, 3), "float32"))
    assert image.shape == (1, 32, 32, 3) and z_est.shape == (1, 64) and coords_est.shape == (1, 2)
    assert np.all(np.abs(z_est) <= 1) and np.all(np.abs(coords_est) <= 1)


@pytest.mark.parametrize("which", ["generator", "discriminator", "spatial_head"])
def test_networks_save_and_reload(tmp_path, trained_tiny, which):
    network = getattr(trained_tiny, which)
    path = tmp_path / f"{which}.keras"
    network.save(path)
    restored = keras.saving.load_model(path)
    if which == "generator":
        inputs = [trained_tiny.latents(0, 3), np.zeros((3, 2), "float32")]
        np.testing.assert_allclose(restored(inputs), network(inputs), atol=1e-6)
    elif which == "discriminator":
        patch = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
        coords = np.zeros((2, 2), "float32")
        np.testing.assert_allclose(restored(patch, coords)[0], network(patch, coords)[0], atol=1e-5)
    else:
        features = np.random.default_rng(0).normal(size=(2, network.feature_dim)).astype("float32")
        np.testing.assert_allclose(restored(features), network(features), atol=1e-6)


def test_merge_of_generated_patches_matches_layout(trained_tiny):
    model = trained_tiny
    z = model.latents(1, 1)
    grid = np.asarray(model.geometry.full_micro_grid()).reshape(-1, 2)
    patches = np.asarray(model.sampler.micro_patches(np.repeat(z, len(grid), 0), grid))
    np.testing.assert_allclose(np.asarray(merge_patches(patches, 4, 4)), model.sampler.generate_full(z), atol=1e-6)


def test_generator_ema_follows_the_trained_generator_and_draws_everything():
    model = CocoGan(config("tiny", "model.ngf=8", "model.ndf=8", "optim.g_ema_decay=0.5"))
    model.build()
    assert "generator_ema" in model.network_items() and model.sampling_generator is model.generator_ema
    start = [w.numpy().copy() for w in model.generator.weights]
    batch = {"image": tf.random.stateless_uniform([4, 32, 32, 3], [0, 1], -1.0, 1.0), **model.step_inputs(0, 4)}
    model.train_step(batch, 4)
    model.after_step()
    decay = 2.0 / 11.0  # min(0.5, (1 + 1) / (10 + 1)): the warm-up after G's first update
    for a, w, e in zip(start, model.generator.weights, model.generator_ema.weights):  # u vectors and BN stats too
        np.testing.assert_allclose(e.numpy(), decay * a + (1 - decay) * w.numpy(), rtol=1e-5, atol=1e-6)
    z = model.latents(0, 2)
    coords = np.asarray(model.geometry.full_micro_grid(0)).reshape(-1, model.geometry.coord_dim)[:2]
    expected = model.generator_ema([z, coords], training=False)
    np.testing.assert_allclose(model.sampler.micro_patches(z, coords), expected, atol=1e-6)
    serving = model.serving_functions()["generate_patch"]
    np.testing.assert_allclose(serving(z=tf.constant(z), micro_coords=tf.constant(coords, tf.float32))["rgb"],
                               expected, atol=1e-5)
    assert not np.allclose(model.generator([z, coords], training=False), expected, atol=1e-4)
    assert config("celeba64").optim.g_ema_decay == 0.0  # off in the paper presets
