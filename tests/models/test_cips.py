"""CIPS (models.md §2): conditional independence, coordinates, applications, training pieces, errors."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.cips import applications
from tfcoord.models.cips.coordinates import (cylinder_coords, foveated_points, sample_embedding, tile_coordinates,
                                             tile_coords)
from tfcoord.models.cips.generator import CipsGenerator
from tfcoord.models.cips.model import Cips
from tfcoord.models.cips.training import R1_VARIANT

TINY = ["model.size=16", "model.hidden_size=16", "model.style_dim=16", "model.n_mlp=2",
        "model.width_multiplier=0.03125", "model.d_width_multiplier=0.03125", "train.batch_size=4"]


def tiny_model(*overrides, build_optimizers=False):
    keras.utils.set_random_seed(0)
    config = load_config("cips", section_classes("cips"), preset="tiny", overrides=TINY + list(overrides))
    model = Cips(config)
    model.build() if build_optimizers else model.build_networks()
    # Non-zero noise strengths and biases so that every path matters.
    rng = np.random.default_rng(0)
    for v in model.generator_ema.weights:
        if v.path.endswith(("strength", "bias")):
            v.assign(v.numpy() + rng.normal(0.0, 0.3, v.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def cylinder_model():
    return tiny_model("model.coordinate_system=cylindrical")


def styles(model, num=2, seed=0):
    return model.sampler.styles(model.sampler.latents(seed, num))


# -- the paper's numbers ------------------------------------------------------------------------------
def test_paper_parameter_counts():
    """models.md §2.10: CIPSskip 256 = 44 317 092 (mapping 2 101 248, Fourier 1 536, embedding 33 554 432)."""
    def count(weights):
        return sum(int(np.prod(v.shape)) for v in weights)

    skip = CipsGenerator(size=256)
    skip.build()
    assert count(skip.weights) == 44_317_092
    assert count(skip.mapping.weights) == 2_101_248
    assert count(skip.fourier.weights) == 1_536
    assert count(skip.embedding.weights) == 33_554_432
    assert (skip.num_noise_layers, len(skip.to_rgbs)) == (15, 7)  # 15 StyledConv (incl. conv1) + 7 ToRGB
    res = CipsGenerator(size=256, architecture="res")
    res.build()
    assert count(res.weights) == 43_027_858


# -- conditional independence ---------------------------------------------------------------------------
@pytest.mark.parametrize("height, width, tile_h, tile_w", [(16, 16, 5, 7), (24, 40, 9, 16)])
def test_tiles_equal_the_full_grid(model, height, width, tile_h, tile_w):
    """Any partition of the grid into tiles gives the one-call image pixel for pixel (paper §3.3)."""
    style = styles(model)
    full = model.sampler.render(style, np.broadcast_to(model.sampler.grid(height, width), (2, height, width, 2)))
    tiled = applications.generate_tiled(model.sampler, style, height, width, tile_h)
    assert np.max(np.abs(tiled - full)) <= 1e-5
    pieces = np.zeros_like(full)
    for top in range(0, height, tile_h):
        for left in range(0, width, tile_w):
            h, w = min(tile_h, height - top), min(tile_w, width - left)
            coords = tile_coords(top, left, h, w, height, width)
            pieces[:, top:top + h, left:left + w] = model.sampler.render(style, np.broadcast_to(coords, (2, h, w, 2)))
    assert np.max(np.abs(pieces - full)) <= 1e-5
    chunked = model.sampler.render(style, np.broadcast_to(model.sampler.grid(height, width), (2, height, width, 2)),
                           pixels_per_call=37)
    assert np.max(np.abs(chunked - full)) <= 1e-5
    assert np.std(full) > 1e-3  # a non-trivial image


def test_point_sets_equal_grids_and_non_square_grids_are_oriented(model):
    """(B, N, 2) point sets give the grid's pixels; x runs along the width also for H != W (quirk C5)."""
    grid = tile_coords(0, 0, 3, 5, 3, 5)
    assert grid.shape == (3, 5, 2)
    np.testing.assert_allclose(grid[0, :, 0], np.linspace(-1, 1, 5), atol=1e-7)
    np.testing.assert_allclose(grid[:, 0, 1], np.linspace(-1, 1, 3), atol=1e-7)
    style = styles(model)
    image = model.sampler.render(style, np.broadcast_to(grid, (2, 3, 5, 2)))
    points = model.sampler.render(style, np.broadcast_to(grid.reshape(15, 2), (2, 15, 2)))
    assert np.max(np.abs(points.reshape(2, 3, 5, 3) - image)) <= 1e-5


def test_a_denser_grid_contains_the_training_grid(model):
    """Super-resolution: linspace(-1, 1, 2S - 1)[::2] is the native grid, so those pixels match exactly."""
    style = styles(model)
    native = model.sampler.render(style, np.broadcast_to(model.sampler.grid(16, 16), (2, 16, 16, 2)))
    dense = applications.super_resolve(model.sampler, style, 31 / 16)
    assert dense.shape == (2, 31, 31, 3)
    assert np.max(np.abs(dense[:, ::2, ::2] - native)) <= 1e-5
    assert np.max(np.abs(dense[:, 1::2, 1::2] - native[:, :-1, :-1])) > 1e-3  # new in-between pixels


# -- coordinate embedding (quirk C1) and Fourier features ---------------------------------------------
def test_embedding_at_pixel_centres_reproduces_the_table_and_interpolates_between():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(6, 6, 4)).astype("float32")
    grid = tile_coords(0, 0, 6, 6, 6, 6)
    np.testing.assert_allclose(np.asarray(sample_embedding(table, grid, "aligned")), table, atol=1e-5)
    # Between pixels: bilinear. Halfway between columns 2 and 3 of row 4, a quarter way to row 5 at column 1.
    x_mid = (grid[0, 2, 0] + grid[0, 3, 0]) / 2
    coords = np.array([[x_mid, grid[4, 0, 1]], [grid[0, 1, 0], 0.75 * grid[4, 0, 1] + 0.25 * grid[5, 0, 1]]],
                      "float32")
    expected = [(table[4, 2] + table[4, 3]) / 2, 0.75 * table[4, 1] + 0.25 * table[5, 1]]
    np.testing.assert_allclose(np.asarray(sample_embedding(table, coords, "aligned")), expected, atol=1e-5)
    # Outside [-1, 1] the border texel is used (padding_mode="border").
    outside = np.array([[-3.0, -3.0], [2.0, 0.0]], "float32")
    np.testing.assert_allclose(np.asarray(sample_embedding(table, outside, "aligned"))[0], table[0, 0], atol=1e-6)
    # Official (align_corners=False): texel centres sit at (2k + 1)/S - 1, the native grid is shifted.
    centres = ((2.0 * np.arange(6) + 1.0) / 6.0 - 1.0).astype("float32")
    official_grid = np.stack(np.meshgrid(centres, centres, indexing="xy"), -1)
    np.testing.assert_allclose(np.asarray(sample_embedding(table, official_grid, "official")), table, atol=1e-5)
    shifted = np.asarray(sample_embedding(table, grid, "official"))
    assert np.max(np.abs(shifted - table)) > 0.1


def test_embedding_wraps_horizontally_for_cylinders():
    table = np.random.default_rng(2).normal(size=(4, 8, 3)).astype("float32")
    y = tile_coords(0, 0, 4, 1, 4, 1)[:, 0, 1]
    theta = -1.0 + 2.0 * np.arange(8) / 8.0  # texel j at -1 + 2j/8
    coords = np.stack(np.meshgrid(theta, y, indexing="xy"), -1).astype("float32")
    np.testing.assert_allclose(np.asarray(sample_embedding(table, coords, wrap_x=True)), table, atol=1e-5)
    # Halfway between the last column and the first (theta = 1 - 1/8) mixes them; theta = 1 is column 0.
    edge = np.array([[1.0 - 1.0 / 8.0, y[1]], [1.0, y[1]], [3.0, y[1]]], "float32")
    got = np.asarray(sample_embedding(table, edge, wrap_x=True))
    np.testing.assert_allclose(got[0], (table[1, 7] + table[1, 0]) / 2, atol=1e-5)
    np.testing.assert_allclose(got[1], table[1, 0], atol=1e-5)
    np.testing.assert_allclose(got[2], table[1, 0], atol=1e-5)


def test_fourier_features_have_the_official_initialisation(model):
    fourier = CipsGenerator(size=8, hidden_size=4096, style_dim=8, n_mlp=1, width_multiplier=0.01).fourier
    fourier.build((None, 2))
    kernel, bias = np.asarray(fourier.kernel), np.asarray(fourier.bias)
    assert kernel.shape == (2, 4096) and np.abs(kernel).max() <= math.sqrt(9 / 2) and np.abs(kernel).max() > 2.0
    assert np.abs(bias).max() <= 1 / math.sqrt(2) and np.abs(bias).max() > 0.65
    coords = np.array([[0.3, -0.5]], "float32")
    np.testing.assert_allclose(np.asarray(fourier(coords)), np.sin(coords @ kernel + bias), atol=1e-5)


# -- applications ----------------------------------------------------------------------------------------
def test_panorama_is_continuous_across_the_wrap(cylinder_model):
    model, width = cylinder_model, 48
    style = styles(model, 1)
    coords = cylinder_coords(0, 0, 16, width + 1, 16, width)  # one column past 360 degrees
    image = model.sampler.render(style, coords[None])[0]
    assert np.max(np.abs(image[:, width] - image[:, 0])) <= 1e-5  # column W is column 0 again
    steps = np.max(np.abs(np.diff(image[:, :width], axis=1)), axis=(0, 2))
    wrap = np.max(np.abs(image[:, 0] - image[:, width - 1]))
    assert wrap <= 2.0 * np.median(steps) and np.median(steps) > 0
    panorama = applications.panorama(model.sampler, style, 16, width)
    np.testing.assert_allclose(panorama, image[None, :, :width], atol=1e-5)


def test_style_field_with_one_style_equals_ordinary_generation(model):
    style = styles(model)
    ordinary = model.sampler.render(style, np.broadcast_to(model.sampler.grid(16, 16), (2, 16, 16, 2)))
    field = applications.style_field(style[:, None, :], np.ones((16, 16, 1), "float32"))
    assert field.shape == (2, 16, 16, 16)
    np.testing.assert_allclose(applications.render_style_field(model.sampler, field), ordinary, atol=1e-5)
    # A centre/outside blend: each pixel is the image of its own style (exact for 1x1 layers).
    other = styles(model, seed=5)
    mask = applications.radial_mask(16, 16, radius=0.4, softness=0.2)
    blended = applications.render_style_field(model.sampler, applications.blend_styles(style, other, mask))
    outside = model.sampler.render(other, np.broadcast_to(model.sampler.grid(16, 16), (2, 16, 16, 2)))
    inside = mask == 1.0
    assert inside.sum() > 4 and (mask == 0.0).sum() > 4
    np.testing.assert_allclose(blended[:, inside], ordinary[:, inside], atol=1e-5)
    np.testing.assert_allclose(blended[:, mask == 0.0], outside[:, mask == 0.0], atol=1e-5)


@pytest.mark.parametrize("method", ["linear", "nearest"])
def test_foveated_render_evaluates_fewer_pixels_and_keeps_them_exact(model, method):
    style = styles(model, 1)
    images, mask, evaluated = applications.foveated_render(model.sampler, style, 24, 24, gaze=(0.5, -0.5), seed=3,
                                                           method=method)
    full = model.sampler.render(style, model.sampler.grid(24, 24)[None])
    assert evaluated == mask.sum() and 24 * 24 * 0.08 < evaluated < 24 * 24 * 0.6
    assert np.max(np.abs(images[0][mask] - full[0][mask])) <= 1e-5
    assert np.all(np.isfinite(images))
    rows, cols = foveated_points(24, 24, (0.5, -0.5), seed=3)
    near = (np.abs(cols - 18) <= 3) & (np.abs(rows - 6) <= 3)  # around the gaze pixel (x 0.5, y -0.5)
    far = (cols <= 6) & (rows >= 17)
    assert near.sum() / 49 > 2 * far.sum() / 49  # denser around the gaze
    if method == "nearest":  # every filled pixel takes an evaluated value
        values = set(map(tuple, np.round(full[0][mask], 5)))
        assert all(tuple(v) in values for v in np.round(images[0].reshape(-1, 3), 5))


# -- generation controls -----------------------------------------------------------------------------
def test_truncation_in_w_and_official_z_space(model):
    z = model.sampler.latents(1, 3)
    mean = model.sampler.mean_style(num=256)
    w = model.sampler.styles(z)
    np.testing.assert_allclose(model.sampler.styles(z, 0.5, mean), mean + 0.5 * (w - mean), atol=1e-5)
    z_model = tiny_model("model.truncate_space=z")
    z_model.generator_ema.set_weights(model.generator_ema.get_weights())
    expected = np.asarray(model.generator_ema.map(mean + 0.5 * (z - mean)))
    np.testing.assert_allclose(z_model.sampler.styles(z, 0.5, mean), expected, atol=1e-5)


def test_noise_modes(model):
    style, sampler = styles(model, 1), model.sampler
    coords = sampler.grid(8, 8)[None]
    none = sampler.render(style, coords)
    zero = sampler.render(style, coords, noise=np.zeros((1, 8, 8, model.generator_ema.num_noise_layers), "float32"))
    np.testing.assert_allclose(zero, none, atol=1e-5)
    random = sampler.render(style, coords, noise=sampler.random_noise(0, (1, 8, 8)))
    assert np.max(np.abs(random - none)) > 1e-3
    np.testing.assert_array_equal(sampler.render(style, coords, noise=sampler.random_noise(0, (1, 8, 8))), random)


# -- training pieces --------------------------------------------------------------------------------------
def test_patch_training_feeds_g_exactly_the_cropped_coordinates():
    model = tiny_model("model.size=64", "model.crop=16")
    size = 64
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    image = np.stack([rows, cols, rows * 0], -1).astype("float32")[None].repeat(4, 0)  # pixel index encoding
    full_grid = tile_coords(0, 0, size, size, size, size)
    strides = set()
    for step in range(1, 25):
        batch = model.step_inputs(tf.constant(step, tf.int64), 4)
        real, coords = model.training_pixels(tf.constant(image), dict(batch, flip=tf.zeros([4], tf.bool)))
        real, coords = np.asarray(real), np.asarray(coords)
        assert real.shape == (4, 16, 16, 3) and coords.shape == (4, 16, 16, 2)
        r, c = real[..., 0].astype(int), real[..., 1].astype(int)
        np.testing.assert_allclose(coords, full_grid[r, c], atol=1e-6)  # G gets exactly these coordinates
        stride = int(batch["crop_stride"][0])
        strides.add(stride)
        np.testing.assert_array_equal(np.diff(r, axis=1), stride)
        np.testing.assert_array_equal(np.diff(c, axis=2), stride)
        assert r.min() >= 0 and r.max() < size and c.min() >= 0 and c.max() < size
    assert strides == {1, 2, 4}  # log2(64 / 16) + 1 = 3 scales
    assert model.discriminator.input_size == 16


def test_flip_and_lazy_r1_schedule_and_adam_settings():
    model = tiny_model(build_optimizers=True)
    assert [model.step_variant(s) for s in (1, 2, 16, 17, 33)] == [R1_VARIANT, None, None, R1_VARIANT, R1_VARIANT]
    d, g = model.d_optimizer, model.g_optimizer
    assert math.isclose(float(d.learning_rate), 0.002 * 16 / 17, rel_tol=1e-6)
    assert math.isclose(float(d.beta_2), 0.99 ** (16 / 17), rel_tol=1e-6) and float(d.beta_1) == 0.0
    assert math.isclose(float(g.learning_rate), 0.002 * 4 / 5, rel_tol=1e-6)
    image = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    batch = dict(model.step_inputs(tf.constant(3, tf.int64), 4), flip=tf.constant([True, False, True, False]))
    real, _ = model.training_pixels(tf.constant(image), batch)
    np.testing.assert_array_equal(np.asarray(real)[0], image[0, :, ::-1])
    np.testing.assert_array_equal(np.asarray(real)[1], image[1])


@pytest.mark.parametrize("overrides", [(), ("model.size=32", "model.crop=8"),
                                       ("model.coordinate_system=cylindrical", "model.d_input=rgb_coords")])
def test_train_steps_with_and_without_r1_update_the_networks_and_the_ema(overrides):
    model = tiny_model(*overrides, build_optimizers=True)
    size = model.config.model.size
    image = tf.constant(np.random.default_rng(1).uniform(-1, 1, (4, size, size, 3)).astype("float32"))
    d_before = [v.numpy() for v in model.discriminator.trainable_variables]
    for step in (1, 2):
        variant = model.step_variant(step)
        batch = dict(model.step_inputs(tf.constant(step, tf.int64), 4), image=image)
        ema_before = [v.numpy() for v in model.generator_ema.weights]
        losses = model.train_step(batch, 4, variant=variant)  # eager: the traced path is in the distributed test
        assert ("r1" in losses) == (variant == R1_VARIANT)
        assert all(np.isfinite(float(v)) for v in losses.values())
        g_now = [v.numpy() for v in model.generator.weights]
        model.after_step()
        decay = model.config.loss.ema_decay
        for before, new, ema in zip(ema_before, g_now, model.generator_ema.weights):
            np.testing.assert_allclose(ema.numpy(), decay * before + (1 - decay) * new, rtol=1e-5, atol=1e-6)
    assert max(np.max(np.abs(a - v.numpy())) for a, v in zip(d_before, model.discriminator.trainable_variables)) > 0
    assert float(losses["r1"] if "r1" in losses else 0.0) >= 0.0


# -- bad input ---------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(model):
    style = styles(model)
    good = np.broadcast_to(model.sampler.grid(4, 4), (2, 4, 4, 2))
    cases = [
        (lambda: model.sampler.render(style, good[0, 0]), "rank"),
        (lambda: model.sampler.render(style, np.zeros((2, 4, 4, 3), "float32")), "2 channels"),
        (lambda: model.sampler.render(style, np.where(np.eye(4)[None, :, :, None] > 0, np.nan, good)), "finite"),
        (lambda: model.sampler.render(np.zeros((2, 3, 4, 16), "float32"), good), "style field"),
        (lambda: model.sampler.render(np.zeros((2, 7), "float32"), good), "16 channels"),
        (lambda: model.sampler.render(style[:1], good), "batch"),
        (lambda: model.sampler.render(style, np.broadcast_to(np.float32(0), (2, 4097, 4097, 2))), "limit"),
        (lambda: model.sampler.render(style, good, noise=np.zeros((2, 4, 4, 1), "float32")), "noise"),
        (lambda: model.sampler.styles(np.full((1, 16), np.inf, "float32")), "finite"),
        (lambda: model.sampler.grid(0, 5), "between"),
        (lambda: applications.panorama(model.sampler, style, 8, 8), "cylindrical"),
        (lambda: applications.foveated_render(model.sampler, style, 8, 8, gaze=(np.nan, 0)), "gaze"),
        (lambda: applications.foveated_render(model.sampler, style, 8, 8, method="cubic"), "fill method"),
        (lambda: applications.super_resolve(model.sampler, style, 300.0), "4096"),
    ]
    for call, words in cases:
        with pytest.raises(UserError, match=words):
            call()


def test_every_preset_loads():
    from tfcoord.config import list_presets

    presets = list_presets("cips")
    assert {"tiny", "tiny_patch", "panorama_tiny", "ffhq256", "churches256", "landscapes256",
            "satellite_buildings256", "satellite_landscapes256", "ffhq1024"} <= set(presets)
    for preset in presets:
        config = load_config("cips", section_classes("cips"), preset=preset)
        assert config.model.training_size <= 256
    assert load_config("cips", section_classes("cips"), preset="landscapes256").model.architecture == "res"


def test_config_validation():
    cases = ((["model.size=48"], "power of two"), (["model.crop=24"], "crop"), (["model.crop=16"], "crop"),
             (["model.use_fourier=false", "model.use_embedding=false"], "cannot both be false"),
             (["model.coordinate_system=cylindrical", "model.embedding_sampling=official"], "cylindrical"))
    for overrides, words in cases:
        with pytest.raises(UserError, match=words):
            load_config("cips", section_classes("cips"), preset="tiny", overrides=TINY + overrides)


# -- serving ------------------------------------------------------------------------------------------------
def test_serving_functions_match_the_model_and_refuse_bad_input(model):
    functions = model.serving_functions()
    z = model.sampler.latents(3, 2)
    coords = np.broadcast_to(model.sampler.grid(6, 10), (2, 6, 10, 2)).astype("float32")
    expected = model.sampler.render(model.sampler.styles(z), coords)
    rgb = functions["generate_patch"](z=tf.constant(z), coords=tf.constant(coords))["rgb"]
    np.testing.assert_allclose(np.asarray(rgb), expected, atol=1e-5)
    style = functions["map_latent"](z=tf.constant(z))["style"]
    np.testing.assert_allclose(np.asarray(style), model.sampler.styles(z), atol=1e-5)
    rgb = functions["synthesize"](style=style, coords=tf.constant(coords))["rgb"]
    np.testing.assert_allclose(np.asarray(rgb), expected, atol=1e-5)
    bad = coords.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        functions["generate_patch"](z=tf.constant(z), coords=tf.constant(bad))
    with pytest.raises((ValueError, TypeError)):
        functions["generate_patch"](z=tf.constant(z[:, :3]), coords=tf.constant(coords))
    fixed = model.serving_functions(patch_size=8)["generate_patch"]
    assert fixed.input_signature[1].shape.as_list() == [None, 8, 8, 2]


def test_serving_description_recipe_builds_the_tiles_of_the_image(model):
    description = model.serving_description()
    tiling = description["tiling"]
    assert description["model_type"] == "cips" and tiling["inputs"]["coords"]["system"] == "cips"
    assert tiling["inputs"]["z"] == {"source": "latent", "shape": [16], "distribution": "normal"}
    assert tiling["tile_size"] == [16, 16] and tiling["native_tiles"] == [1, 1]
    tile = 4  # the recipe works for any tile size
    coords = tile_coordinates(tiling["inputs"]["coords"], [tile, tile], [0, 1], [1, 0])
    full = model.sampler.grid(16, 16)
    np.testing.assert_array_equal(coords[0], full[0:tile, tile:2 * tile])
    np.testing.assert_array_equal(coords[1], full[tile:2 * tile, 0:tile])


@pytest.mark.parametrize("architecture, activation", [("skip", "lrelu"), ("res", "lrelu"), ("skip", "sinrelu"),
                                                      ("res", "sin")])
def test_fast_synthesis_equals_the_layer_by_layer_official_forward(architecture, activation):
    """The generator defers demodulation across layers (fewer passes); it must equal the plain forward."""
    keras.utils.set_random_seed(1)
    g = CipsGenerator(size=8, hidden_size=8, style_dim=8, n_mlp=1, width_multiplier=1 / 32,
                      architecture=architecture, activation=activation)
    g.build()
    rng = np.random.default_rng(1)
    for v in g.weights:
        if v.path.endswith(("strength", "bias")):
            v.assign(v.numpy() + rng.normal(0.0, 0.5, v.shape).astype("float32"))
    style = rng.normal(size=(2, 8)).astype("float32")
    coords = np.broadcast_to(tile_coords(0, 0, 5, 6, 5, 6), (2, 5, 6, 2))
    noise = rng.normal(size=(2, 5, 6, g.num_noise_layers)).astype("float32")

    def plain(n):
        x = g.conv1(g.pixel_features(coords), style, n(0))
        if architecture == "skip":
            rgb = None
            for i, to_rgb in enumerate(g.to_rgbs):
                x = g.linears[2 * i + 1](g.linears[2 * i](x, style, n(1 + 2 * i)), style, n(2 + 2 * i))
                rgb = to_rgb(x, style, rgb)
            return rgb
        for i, block in enumerate(g.blocks):
            out = block.conv2(block.conv1(x, style, n(1 + 2 * i)), style, n(2 + 2 * i))
            x = (out + (x if block.skip is None else block.skip(x))) / math.sqrt(2)
        return g.to_rgb_last(x, style)

    for with_noise in (False, True):
        fast = np.asarray(g.synthesize(style, coords, noise=noise if with_noise else None))
        reference = np.asarray(plain(lambda i: noise[..., i:i + 1] if with_noise else None))
        np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
    field = np.broadcast_to(style[:, None, None, :], (2, 5, 6, 8))  # per-pixel styles take the same path
    np.testing.assert_allclose(np.asarray(g.synthesize(field, coords)), np.asarray(g.synthesize(style, coords)),
                               atol=1e-5)
