"""InfinityGAN (Lin et al., ICLR 2022): geometry, parameter counts, coordinates, seamless infinite generation,
panoramas, spatial style fusion, serving signatures, training inputs and losses, bad input."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SHARED
from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.gan import regularizers
from tfcoord.models import section_classes
from tfcoord.models.infinitygan.config import InfinityGanConfig
from tfcoord.models.infinitygan.geometry import InfinityGanCoordinates, PatchGeometry
from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan, StyleCentre, generate_canvas, patch_count
from tfcoord.models.infinitygan.model import InfinityGan

FIXTURE = SHARED / "fixtures" / "official" / "infinitygan_small"
SMALL = ["model.ts_channels=[16,16,8]", "model.global_latent_dim=16", "model.local_latent_dim=8", "model.n_mlp=2"]


def small_model(*overrides):
    config = load_config("infinitygan", section_classes("infinitygan"), preset="tiny",
                         overrides=SMALL + list(overrides))
    keras.utils.set_random_seed(0)
    model = InfinityGan(config)
    model.build_networks()
    # Non-zero noise strengths and biases, so that noise and every weight matter.
    for weight in model.generator_ema.weights:
        if weight.path.endswith(("strength", "activation_bias")):
            weight.assign(np.random.default_rng(len(weight.path)).normal(0, 0.3, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def model():
    return small_model()


# -- geometry and sizes (models.md §4.2, §4.9, §4.11) ----------------------------------------------
def test_paper_patch_geometry():
    g = PatchGeometry()
    assert g.window == 35 and g.ss_sizes() == [29, 23, 17, 11]  # z_l 35 -> structure latent 11
    assert g.conv_output_sizes() == [19, 17, 31, 29, 55, 53, 103, 101] and g.patch_size == 101
    assert g.conv_input_sizes() == [11, 19, 17, 31, 29, 55, 53, 103]
    assert (g.pixel_step, g.latent_step, g.pixels_per_latent) == (96, 6, 16)
    assert g.noise_steps() == [12, 12, 24, 24, 48, 48, 96, 96]
    assert [g.conv_output_sizes(n)[-1] for n in (11, 17, 22)] == [101, 197, 277]  # 16n - 75
    assert [PatchGeometry(num_blocks=b).patch_size for b in (5, 6, 7)] == [197, 389, 773]
    # The official fixture's 1 x 2 patch canvas: z_l 35 x 41, noise canvases per layer.
    assert g.canvas_local_latents(2) == 41 and g.canvas_pixels(2) == 197
    assert g.canvas_noise_sizes(2) == [31, 29, 55, 53, 103, 101, 199, 197]


def test_paper_patch_counts():
    model = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="flickr_landscape"))
    assert patch_count(model, 1024, 1024) == 121
    assert patch_count(model, 1024, 2048) == 242  # the paper's Fig. 1 caption
    assert patch_count(model, 4096, 4096) == 1849
    assert patch_count(model, 8192, 8192) == 7396
    assert patch_count(model, 101, 101) == 1 and patch_count(model, 102, 101) == 2


def test_paper_parameter_counts():
    """models.md §4.11: G 36 358 944 (G_S 13 528 076 + G_T 22 830 868 incl. the unused 4x4 constant),
    D 28 915 460 incl. the coordinate head 2 361 347."""
    config = load_config("infinitygan", section_classes("infinitygan"), preset="flickr_landscape")
    model = InfinityGan(config)
    model.build_all_networks()

    def count(layer):
        return sum(int(np.prod(w.shape)) for w in layer.weights)

    assert count(model.generator) == 36_358_944
    assert count(model.generator.structure) == 13_528_076
    assert count(model.generator.texture) == 22_830_868
    assert count(model.generator.texture.mapping) == 2_101_248
    assert count(model.coord_head) == 2_361_347
    assert count(model.discriminator) + count(model.coord_head) == 28_915_460


# -- coordinates (models.md §4.3) ----------------------------------------------------------------------
def test_training_meta_grid_and_windows():
    c = InfinityGanCoordinates()
    assert (c.meta_rows, c.meta_cols, c.row_starts) == (45, 140, 10)
    v = np.asarray(c.vertical_raw(np.arange(45), 45))
    np.testing.assert_allclose(v, 0.3 * (np.arange(45) - 22), atol=1e-5)  # [-6.6, 6.6]
    u = np.asarray(c.horizontal_raw(np.arange(140)))
    np.testing.assert_allclose(u[[0, 139]], [-1.0, 1.0], atol=1e-6)
    # A window at (row 9, column 130) wraps horizontally; without jitter it is the meta-grid's values.
    coords = np.asarray(c.training_coords(np.array([9]), np.array([130]), np.zeros((1, 4))))[0]
    assert coords.shape == (35, 35, 3)
    rows, cols = np.arange(9, 44), (np.arange(130, 165) % 140)
    np.testing.assert_allclose(coords[:, 0, 0], np.tanh(0.3 * (rows - 22)), atol=1e-5)
    np.testing.assert_allclose(coords[0, :, 1], np.cos(np.pi * (2 * cols / 139 - 1)), atol=1e-5)
    np.testing.assert_allclose(coords[0, :, 2], np.sin(np.pi * (2 * cols / 139 - 1)), atol=1e-5)


def test_jitter_shared_versus_official_per_channel():
    jitter = np.array([[0.0, 1.0, -1.0, 0.0]], "float32")
    shared = np.asarray(InfinityGanCoordinates().training_coords([0], [0], jitter))[0]
    official = np.asarray(InfinityGanCoordinates(jitter="official_per_channel").training_coords([0], [0], jitter))[0]
    # Shared: cos and sin see the same angle (+ half a step), so cos^2 + sin^2 = 1 at the same u.
    angle = np.pi * (-1.0 + 1.0 / 139)
    np.testing.assert_allclose(shared[0, 0, 1:], [np.cos(angle), np.sin(angle)], atol=1e-5)
    # Quirk I5: the sin channel gets its own draw (-half a step here).
    np.testing.assert_allclose(official[0, 0, 2], np.sin(np.pi * (-1.0 - 1.0 / 139)), atol=1e-5)
    np.testing.assert_allclose(official[0, 0, 1], shared[0, 0, 1], atol=1e-6)


def test_canvas_coordinates_match_the_official_coordinate_handler():
    reference = np.transpose(np.load(f"{FIXTURE}.npz")["canvas__coords"][0], (1, 2, 0))  # (35, 41, 3)
    ours = InfinityGanCoordinates().canvas_coords(0, 35, 0, 41, total_rows=35)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_fake_coordinate_targets():
    c = InfinityGanCoordinates()
    targets = np.asarray(c.fake_ac_targets(np.array([0, 9, 4]), np.array([0, 0, 139])))
    np.testing.assert_allclose(targets[:, 0], [-1.0, 1.0, 2 * 4 / 9 - 1], atol=1e-6)
    np.testing.assert_allclose(targets[2, 1:], [np.cos(np.pi), np.sin(np.pi)], atol=1e-5)


# -- infinite generation (models.md §4.9) ------------------------------------------------------------------
def render_patch(model, latents, row, col, z):
    inputs = latents.patch(row, col)
    wplus = model.sampler.style_wplus(z)[None]
    rgb = model.sampler.functions()["render"](z[None], wplus, inputs["local_latent"][None], inputs["coords"][None],
                                              [n[None] for n in inputs["noises"]])
    return np.asarray(rgb)[0]


def test_overlapping_patches_agree_exactly(model):
    g = model.geometry
    plan = CanvasPlan(g, g.canvas_pixels(2), g.canvas_pixels(2))
    latents, z = CanvasLatents(model, plan, seed=4), model.global_latents(4, 1)[0]
    a, right, below = (render_patch(model, latents, r, c, z) for r, c in ((0, 0), (0, 1), (1, 0)))
    overlap = g.patch_size - g.pixel_step
    assert overlap == 5
    assert np.abs(a[:, g.pixel_step:] - right[:, :overlap]).max() <= 1e-6
    assert np.abs(a[g.pixel_step:] - below[:overlap]).max() <= 1e-6
    assert np.abs(a[:, :overlap] - right[:, :overlap]).max() > 1e-2  # not trivially constant


def test_patch_by_patch_canvas_equals_one_call_canvas(model):
    tiled = generate_canvas(model, 197, 245, seed=1, batch_patches=3)
    direct = generate_canvas(model, 197, 245, seed=1, direct=True)
    single = generate_canvas(model, 197, 245, seed=1, batch_patches=1)
    assert tiled.shape == (197, 245, 3) and np.isfinite(tiled).all()
    assert np.abs(tiled - direct).max() <= 1e-5
    assert np.abs(tiled - single).max() <= 1e-5
    assert np.abs(tiled - generate_canvas(model, 197, 245, seed=2, batch_patches=3)).max() > 0.1  # seed matters


def test_unreachable_sizes_are_rounded_up_and_centre_cropped(model):
    g = model.geometry
    plan = CanvasPlan(g, 150, 200)
    assert (plan.canvas_height, plan.canvas_width) == (197, 245) and plan.offset == (23, 22)
    cropped = generate_canvas(model, 150, 200, seed=3)
    full = generate_canvas(model, 197, 245, seed=3)
    assert cropped.shape == (150, 200, 3)
    np.testing.assert_allclose(cropped, full[23:173, 22:222], atol=1e-6)


def test_panorama_closes_on_itself(model):
    unit = model.geometry.pixels_per_latent
    width = 10 * unit  # 80 px for the tiny model: two patches wide
    one_turn = generate_canvas(model, 60, width, seed=5, panorama=True)
    two_turns = generate_canvas(model, 60, 2 * width, seed=5, panorama=True, panorama_period=width)
    # Rendering two turns crosses the 360 degree seam inside patches: both halves equal one turn.
    np.testing.assert_allclose(two_turns[:, :width], one_turn, atol=1e-5)
    np.testing.assert_allclose(two_turns[:, width:], one_turn, atol=1e-5)
    plain = generate_canvas(model, 60, width, seed=5)
    assert np.abs(plain - one_turn).max() > 1e-3  # the panorama coordinates and wrap-around matter
    with pytest.raises(UserError, match="multiple of 8 px"):
        generate_canvas(model, 60, width + 3, panorama=True)


def test_style_fusion_with_identical_styles_equals_plain_generation(model):
    z = model.global_latents(6, 1)[0]
    plain = generate_canvas(model, 120, 150, seed=6, global_latent=z)
    fused = generate_canvas(model, 120, 150, seed=6, styles=[StyleCentre(z, position=(0.2, 0.1)),
                                                             StyleCentre(z, position=(0.8, 0.9))])
    assert np.abs(fused - plain).max() <= 1e-4


def test_style_fusion_keeps_each_style_near_its_centre(model):
    za, zb = model.global_latents(7, 2)
    height, width = 53, 485  # one patch row, ten patches
    plain_a = generate_canvas(model, height, width, seed=7, global_latent=za)
    plain_b = generate_canvas(model, height, width, seed=7, global_latent=zb)
    fused = generate_canvas(model, height, width, seed=7, fusion_blur=0,
                            styles=[StyleCentre(za, position=(0.5, 0.0)), StyleCentre(zb, position=(0.5, 1.0))])
    # Beyond the receptive field of the style boundary (column 242) each side is its own style.
    np.testing.assert_allclose(fused[:, :40], plain_a[:, :40], atol=1e-4)
    np.testing.assert_allclose(fused[:, -40:], plain_b[:, -40:], atol=1e-4)
    assert np.abs(plain_a - plain_b).max() > 0.1


@pytest.mark.parametrize("call,match", [
    (dict(global_latent=np.full(16, np.nan)), "NaN or infinite"),
    (dict(global_latent=np.zeros(15)), r"shape \(16\)"),
    (dict(styles=[StyleCentre(np.zeros(16), position=(0.5, 1.2)), StyleCentre(np.zeros(16))]), "inside the canvas"),
    (dict(styles=[StyleCentre(np.zeros(16), wplus=np.zeros((3, 16)))]), "wplus must have shape"),
    (dict(batch_patches=0), "batch_patches"),
    (dict(styles=[StyleCentre(np.zeros(16)), StyleCentre(np.zeros(16))], panorama=True), "panorama"),
])
def test_bad_canvas_inputs_are_refused(model, call, match):
    with pytest.raises(UserError, match=match):
        generate_canvas(model, 60, 80, **call)


def test_bad_canvas_sizes_are_refused(model):
    for height, width in ((0, 50), (50, -3)):
        with pytest.raises(UserError, match="between 1 and"):
            generate_canvas(model, height, width)


# -- serving (issue 6) -----------------------------------------------------------------------------------------
def test_serving_signatures_match_the_generator(model):
    functions = model.serving_functions()
    assert set(functions) == {"generate_patch", "generate_patch_nonoise", "map_latent"}
    g = model.geometry
    latents = CanvasLatents(model, CanvasPlan(g, 101, 101), seed=8)
    inputs = latents.patch(0, 1)
    z = model.global_latents(8, 1)
    noises = {f"noise_{i}": n[None] for i, n in enumerate(inputs["noises"])}
    rgb = functions["generate_patch"](global_latent=z, local_latent=inputs["local_latent"][None],
                                      coords=inputs["coords"][None], **noises)["rgb"]
    np.testing.assert_allclose(np.asarray(rgb)[0], render_patch(model, latents, 0, 1, z[0]), atol=1e-5)
    nonoise = functions["generate_patch_nonoise"](global_latent=z, local_latent=inputs["local_latent"][None],
                                                  coords=inputs["coords"][None])["rgb"]
    expected = model.generator_ema(z, inputs["local_latent"][None], inputs["coords"][None])
    np.testing.assert_allclose(np.asarray(nonoise), np.asarray(expected), atol=1e-5)
    np.testing.assert_allclose(np.asarray(functions["map_latent"](global_latent=z)["style"]),
                               np.asarray(model.generator_ema.texture.map(z)), atol=1e-6)
    names = [spec.name for spec in functions["generate_patch"].input_signature]
    assert names == ["global_latent", "local_latent", "coords"] + [f"noise_{i}" for i in range(g.num_convs)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        functions["generate_patch_nonoise"](global_latent=z * np.nan, local_latent=inputs["local_latent"][None],
                                            coords=inputs["coords"][None])
    bad_noise = dict(noises, noise_0=np.zeros((1, 5, 5, 1), "float32"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="noise_0"):
        functions["generate_patch"](global_latent=z, local_latent=inputs["local_latent"][None],
                                    coords=inputs["coords"][None], **bad_noise)


def test_serving_description_has_the_tiling_recipe(model):
    description = json.loads(json.dumps(model.serving_description()))
    tiling = description["tiling"]
    g = model.geometry
    assert description["model_type"] == "infinitygan" and description["patch_size"] == g.patch_size
    assert tiling["stride"] == [g.pixel_step] * 2 and tiling["latent_stride"] == g.latent_step
    assert tiling["layer_sizes"] == g.conv_output_sizes() and tiling["layer_strides"] == g.noise_steps()
    assert tiling["inputs"]["local_latent"]["window"] == g.window
    assert set(tiling["inputs"]) == {"global_latent", "local_latent", "coords"} | {f"noise_{i}" for i in range(6)}
    paper = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="flickr_landscape"))
    paper.generator_ema = None  # the description needs no weights
    assert "96" in paper.serving_description()["tiling"]["recipe"]


# -- training --------------------------------------------------------------------------------------------
def test_lazy_regularisation_schedule():
    model = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="tiny"))
    assert model.step_variant(1) == "r1+path" and model.step_variant(2) is None
    assert model.step_variant(5) == "path" and model.step_variant(17) == model.step_variant(33) == "r1+path"
    assert [model.step_variant(s) for s in range(1, 17)].count("path") == 3


def test_step_inputs_pair_samples_for_the_diversity_loss():
    model = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="tiny", overrides=SMALL))
    inputs = model.step_inputs(tf.constant(3, tf.int64), 6)
    again = model.step_inputs(tf.constant(3, tf.int64), 6)
    for name in ("global_latent", "coords", "ac_targets"):
        value = getattr(inputs["g"], name).numpy()
        np.testing.assert_array_equal(value, getattr(again["g"], name).numpy())  # stateless
        assert not np.array_equal(value[1::2], value[0::2])  # drawn per sample, as the official sampler does
        paired = np.asarray(model._paired(value))  # the generator passes pair them (setup_paired_inputs)
        np.testing.assert_array_equal(paired[1::2], value[0::2])
        np.testing.assert_array_equal(paired[0::2], value[0::2])
    local = inputs["g"].local_latent.numpy()
    assert np.abs(local[1::2] - local[0::2]).min() < np.abs(local[1::2] - local[0::2]).max()  # own z_l
    assert all(v.shape[0] == 6 for v in tf.nest.flatten(inputs))
    assert not np.array_equal(inputs["d"].global_latent.numpy(), inputs["g"].global_latent.numpy())
    # The coordinate targets are those of each sample's own window (fake_ac_targets of its draw).
    assert inputs["g"].coords.shape == (6, model.geometry.window, model.geometry.window, 3)
    assert inputs["g"].ac_targets.shape == (6, 3) and np.all(np.abs(inputs["g"].ac_targets.numpy()) <= 1.0)


def test_fake_coordinate_targets_follow_the_pairing_unless_official():
    """A fake's coordinate target is the window it was generated from (paired); the official code (quirk I8) keeps
    the target of the window drawn for it before the pairing replaced that window."""
    for flag, source in (("paired", 0), ("official_drawn", 1)):
        model = small_model(f"loss.fake_coord_targets={flag}")
        model.generator = model.generator_ema
        inputs = model.step_inputs(tf.constant(1, tf.int64), 2)
        _, _, targets = model.generate_training(inputs["g"])
        np.testing.assert_array_equal(targets.numpy()[1], inputs["g"].ac_targets.numpy()[source])


def test_odd_per_replica_batch_is_refused():
    model = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="tiny", overrides=SMALL))
    with pytest.raises(UserError, match="even"):
        model.train_step({"image": tf.zeros([3, 85, 85, 3])}, 3)


def test_diversity_distances_and_nan_guard():
    a = tf.constant(np.random.default_rng(0).standard_normal((4, 3, 3, 2)), tf.float32)
    same = tf.concat([a[:2], a[:2]], axis=0)  # pairs (0, 1), (2, 3) of identical vectors for angular
    pairs = tf.stack([a[0], a[0], a[1], a[1]])
    with tf.GradientTape() as tape:
        tape.watch(pairs)
        similarity = regularizers.pair_distance(pairs[0::2], pairs[1::2], "official_angular")
        total = tf.reduce_sum(similarity)
    assert np.all(np.isfinite(similarity.numpy())) and np.all(np.isfinite(tape.gradient(total, pairs).numpy()))
    np.testing.assert_allclose(similarity.numpy(), 1.0, atol=1e-3)  # a similarity: 1 for identical (quirk I1)
    l1 = regularizers.pair_distance(same[0::2], same[1::2], "l1").numpy()
    np.testing.assert_allclose(l1, np.mean(np.abs(a[0] - a[1])), rtol=1e-5)
    # Structure distances equal to latent distances give L = 1 / (1 + 1e-5).
    loss = regularizers.diversity_loss(a, a, "l1")
    np.testing.assert_allclose(float(loss), 1.0 / (1.0 + 1e-5), rtol=1e-6)


def test_config_errors_name_the_fix():
    with pytest.raises(UserError, match="full_size"):
        InfinityGanConfig(full_size=90).validate()  # patch 101 > 90
    with pytest.raises(UserError, match="ts_channels"):
        InfinityGanConfig(ts_channels=()).validate()
    with pytest.raises(UserError, match="coord_head"):
        InfinityGanConfig(coord_system="torus").validate()
    with pytest.raises(UserError, match="stddev_group"):
        load_config("infinitygan", section_classes("infinitygan"), preset="tiny", overrides=["model.stddev_group=x"])
    config = load_config("infinitygan", section_classes("infinitygan"), preset="maps")
    assert config.model.coord_system == "torus" and not config.model.coord_head


def test_torus_coordinates_have_four_periodic_channels():
    c = InfinityGanCoordinates(system="torus")
    assert c.coord_dim == 4 and c.meta_rows == c.meta_cols == 140
    coords = np.asarray(c.training_coords([139], [139], np.zeros((1, 4))))[0]
    assert coords.shape == (35, 35, 4)
    # The window starts at the last meta row/column and wraps to index 0 (v = u = -1) on both axes.
    np.testing.assert_allclose(coords[1, 1], [-1.0, 0.0, -1.0, 0.0], atol=1e-5)
    # Index 139 (v = u = +1) is the same angle as index 0: the meta-grid spans [-1, 1] inclusive, so
    # the official wrap repeats one angle (the period is 139 columns).
    np.testing.assert_allclose(coords[0, 0], coords[1, 1], atol=1e-5)
    np.testing.assert_allclose(np.square(coords[..., :2]).sum(-1), 1.0, atol=1e-5)


# -- the shared canvas engine ------------------------------------------------------------------------------
def test_canvas_engine_tiles_equal_the_library_canvas(model):
    from tfcoord.generation.tiles import plan_bands

    height, width = 150, 200
    expected = generate_canvas(model, height, width, seed=9)
    for tile in (48, 96):
        renderer = model.canvas_renderer(width, height, seed=9)
        assert renderer.tile_quantum == model.geometry.pixel_step
        canvas = np.zeros((height, width, 3), np.float32)
        for band in plan_bands(width, height, tile):
            for t, pixels in zip(band, renderer.render(band)):
                canvas[t.top:t.top + t.height, t.left:t.left + t.width] = pixels
        np.testing.assert_allclose(canvas, expected, atol=1e-5)


# -- inversion, outpainting, inbetweening (models.md §4.9) -------------------------------------------------
@pytest.fixture(scope="module")
def target(model):
    return np.clip(generate_canvas(model, 40, 48, seed=11), -1.0, 1.0)


def test_inversion_reduces_the_reconstruction_error(model, target):
    from tfcoord.models.infinitygan.inversion import invert

    result = invert(model, target, steps=40, lr=0.1, seed=1)
    assert result.reconstruction.shape == target.shape and np.isfinite(result.reconstruction).all()
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.wplus.shape == (model.generator_ema.texture.n_latent, 16)
    assert result.local_latent.shape == (result.plan.local_rows, result.plan.local_cols, 8)


def test_outpainting_keeps_the_inverted_region(model, target):
    from tfcoord.models.infinitygan.inversion import outpaint

    canvases, result, where = outpaint(model, target, 100, 160, placement=(0.5, 0.3), steps=3, num=2, seed=2)
    assert all(c.shape == (100, 160, 3) for c in canvases)
    region = (slice(where.pixel_top, where.pixel_top + 40), slice(where.pixel_left, where.pixel_left + 48))
    for canvas in canvases:  # the placed latents reproduce the reconstruction exactly (seamless placement)
        np.testing.assert_allclose(canvas[region], result.reconstruction, atol=1e-5)
    assert abs(where.pixel_left + 24 - 0.3 * 160) <= model.geometry.pixels_per_latent  # snapped to the latent grid
    assert np.abs(canvases[0] - canvases[1]).max() > 1e-2  # multi-modal: the unknown region differs


def test_inbetweening_connects_two_images(model, target):
    from tfcoord.models.infinitygan.inversion import inbetween

    canvases, results, wheres = inbetween(model, target, target[:, ::-1], 60, 260, steps=2, seed=3)
    assert canvases[0].shape == (60, 260, 3) and len(results) == 2
    assert wheres[0].pixel_left < 20 and wheres[1].pixel_left + 48 > 240  # at the two ends


@pytest.mark.parametrize("call,match", [
    (dict(placement=(0.1, 0.5)), "outside"),
    (dict(placement=(0.5, float("nan"))), "pair of relative positions"),
    (dict(height=30), "larger than the canvas"),
])
def test_outpainting_placements_out_of_bounds_are_refused(model, target, call, match):
    from tfcoord.models.infinitygan.inversion import outpaint

    options = dict(height=100, width=160, placement=(0.5, 0.5), steps=1)
    options.update(call)
    with pytest.raises(UserError, match=match):
        outpaint(model, target, options.pop("height"), options.pop("width"), **options)


def test_inversion_refuses_bad_images(model):
    from tfcoord.models.infinitygan.inversion import inbetween, invert

    with pytest.raises(UserError, match="RGB"):
        invert(model, np.zeros((20, 20)), steps=1)
    with pytest.raises(UserError, match="finite values in"):
        invert(model, np.full((20, 20, 3), 3.0), steps=1)
    image = np.zeros((40, 48, 3), "float32")
    with pytest.raises(UserError, match="overlap"):
        inbetween(model, image, image, 60, 100, placements=[(0.5, 0.4), (0.5, 0.6)], steps=1)


# -- metric hooks (ScaleInv FID, models.md §5) --------------------------------------------------
def test_images_of_any_size_are_seeded_canvases(model):
    images = model.sample_images_at(3, 2, (40, 70))
    assert images.shape == (2, 40, 70, 3) and np.abs(images).max() <= 1.0
    np.testing.assert_array_equal(images[1], np.clip(generate_canvas(model, 40, 70, seed=3001), -1, 1))


def test_field_of_view_is_the_full_size_over_the_real_size():
    paper = load_config("infinitygan", section_classes("infinitygan"), preset="flickr_landscape")
    assert InfinityGan(paper).field_of_view() == pytest.approx(197 / 128)
    assert small_model().field_of_view() == 1.0  # tiny: no pre-resize
