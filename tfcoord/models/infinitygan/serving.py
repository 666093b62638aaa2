"""InfinityGAN's serving signatures and the tiling recipe a client needs (tensorflow.md §12, models.md §4.9).

* ``generate_patch(global_latent (-1, D), local_latent (-1, -1, -1, C), coords (-1, -1, -1, 3),
  noise_0 ... noise_{L-1} (-1, -1, -1, 1)) -> {"rgb"}``: the EMA generator on one window per row,
  any window size (the network is padding-free: a 35^2 window gives a 101^2 patch, a larger
  window a larger image). The noise maps are explicit inputs so that tiles cut from one noise
  canvas overlap seamlessly.
* ``generate_patch_nonoise``: the same without noise inputs (no noise is injected).
* ``map_latent(global_latent) -> {"style"}``: the mapping network z_g -> w (for clients that
  cache the style; the patch signatures map internally).

Inputs with NaN or Inf are refused (``InvalidArgumentError``); wrong ranks or channel counts are
refused by the TensorSpecs.
"""

from __future__ import annotations

import inspect

import tensorflow as tf

from tfcoord.errors import UserError
from tfcoord.generation.fields import GENERATORS, RECIPE
from tfcoord.models.base import finite_input
from tfcoord.models.infinitygan.sampling import (FIELD_LOCAL, FIELD_NOISE, GLOBAL_SEED_PATH, LOCAL_FIELD_TILE,
                                                 NOISE_FIELD_TILE)
from tfcoord.serving import CanvasFieldRecipe, LatentRecipe, ServingDescription, TileCoordinatesRecipe, Tiling


def _check_window(local_latent, coords, noises, geometry):
    """Graph assertions that the windows fit together (sizes of the patch geometry)."""
    side = tf.shape(local_latent)[1:3]
    checks = [tf.debugging.assert_equal(tf.shape(coords)[1:3], side,
                                        message="coords must cover the same window as local_latent"),
              tf.debugging.assert_greater_equal(side, 2 * geometry.ss_padding + 4,
                                                message=f"local_latent windows must be at least "
                                                        f"{2 * geometry.ss_padding + 4} latents per side")]
    expected_sizes = geometry.conv_output_sizes(side - 2 * geometry.ss_padding)
    for i, (noise, expected) in enumerate(zip(noises, expected_sizes)):
        checks.append(tf.debugging.assert_equal(tf.shape(noise)[1:3], expected,
                                                message=f"noise_{i} must be {geometry.conv_output_sizes()[i]} px "
                                                        f"for a {geometry.window}-latent window (layer {i} size)"))
    return checks


def serving_functions(model, patch_size=None) -> dict:
    cfg, geometry = model.config.model, model.geometry
    generator = model.generator_ema
    if patch_size not in (None, geometry.patch_size):
        # A window of n TS-input latents gives 16n - 75 px; only the reachable sizes are exact.
        raise UserError(f"InfinityGAN patches are {geometry.patch_size} px (model geometry); pass --patch "
                        f"{geometry.patch_size}")
    # Dynamic windows by default (any number of latents: larger windows give larger images);
    # with ``patch_size`` (TFLite) every spatial size is the one of a single patch.
    window = None if patch_size is None else geometry.window
    sizes = [None] * geometry.num_convs if patch_size is None else geometry.conv_output_sizes()
    base = [tf.TensorSpec([None, cfg.global_latent_dim], tf.float32, name="global_latent"),
            tf.TensorSpec([None, window, window, cfg.local_latent_dim], tf.float32, name="local_latent"),
            tf.TensorSpec([None, window, window, model.coordinates.coord_dim], tf.float32, name="coords")]
    noise_specs = [tf.TensorSpec([None, size, size, 1], tf.float32, name=f"noise_{i}")
                   for i, size in enumerate(sizes)]

    def render(global_latent, local_latent, coords, noises):
        global_latent = finite_input(global_latent, "global_latent")
        local_latent, coords = finite_input(local_latent, "local_latent"), finite_input(coords, "coords")
        noises = [finite_input(n, f"noise_{i}") for i, n in enumerate(noises)]
        with tf.control_dependencies(_check_window(local_latent, coords, noises, geometry)):
            rgb = generator(global_latent, local_latent, coords, noises if noises else None)
        return {"rgb": rgb}

    def generate_patch(*args):
        return render(args[0], args[1], args[2], list(args[3:]))

    # Named parameters global_latent, local_latent, coords, noise_0 ... (their number depends on the model),
    # so that the function can be called with keywords like the SavedModel signature.
    generate_patch.__signature__ = inspect.Signature(
        [inspect.Parameter(spec.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for spec in base + noise_specs])
    generate_patch = tf.function(generate_patch, input_signature=base + noise_specs)

    @tf.function(input_signature=base)
    def generate_patch_nonoise(global_latent, local_latent, coords):
        return render(global_latent, local_latent, coords, [])

    @tf.function(input_signature=base[:1])
    def map_latent(global_latent):
        return {"style": generator.texture.map(finite_input(global_latent, "global_latent"))}

    return {"generate_patch": generate_patch, "generate_patch_nonoise": generate_patch_nonoise,
            "map_latent": map_latent}


def serving_description(model) -> dict:
    cfg, geometry, coordinates = model.config.model, model.geometry, model.coordinates
    sizes, steps, units = geometry.conv_output_sizes(), geometry.noise_steps(), geometry.output_units()
    window, step, pad = geometry.window, geometry.latent_step, geometry.ss_padding
    ppl = geometry.pixels_per_latent
    if cfg.coord_system == "torus":
        period = coordinates.meta_cols - 1
        coords_formula = (f"coords[i, j] = (cos(pi*v), sin(pi*v), cos(pi*u), sin(pi*u)) with v = 2*i/{period} - 1 "
                          f"and u = 2*j/{period} - 1")
    else:
        coords_formula = (f"coords[i, j] = (tanh(v), cos(pi*u), sin(pi*u)) with "
                          f"v = {coordinates.vertical_step!r}*(i - (R-1)/2) "
                          f"(R = {window} + {step}*(n-1), the latent rows of the whole canvas, so the horizon is "
                          f"centred) and u = 2*j/{coordinates.meta_cols - 1} - 1 (or u = 2*(j mod Wp)/Wp - 1 for a "
                          f"360 degree panorama of Wp latent columns)")
    global_path = ", ".join(str(k) for k in GLOBAL_SEED_PATH)
    portable = GENERATORS["portable"]
    recipe = (
        f"A canvas of n x m tiles covers ({geometry.patch_size} + {geometry.pixel_step}*(n-1)) x "
        f"({geometry.patch_size} + {geometry.pixel_step}*(m-1)) px; tile (i, j) is the {geometry.patch_size} px patch "
        f"at pixel ({geometry.pixel_step}*i, {geometry.pixel_step}*j). Neighbouring tiles overlap by "
        f"{geometry.patch_size - geometry.pixel_step} px and agree exactly there if their inputs are windows of "
        f"shared canvases: local_latent = a standard-normal canvas of ({window} + {step}*(n-1)) x "
        f"({window} + {step}*(m-1)) x {cfg.local_latent_dim}, window rows {step}*i .. {step}*i+{window}, "
        f"columns {step}*j .. {step}*j+{window}; coords = the same window of {coords_formula}, i, j = canvas latent "
        f"indices; noise_l = a standard-normal canvas of (s_l + t_l*(n-1)) x (s_l + t_l*(m-1)), window at "
        f"(t_l*i, t_l*j) of size s_l, with s = {sizes} and t = {steps}; global_latent = one z_g ~ N(0, 1)^"
        f"{cfg.global_latent_dim} for the whole canvas. To draw the library's canvas for a seed S (what "
        f"tfcoord's generate draws; generator '{portable}', integer operations any language reimplements): "
        f"position (y, x), channel c of a canvas_field input with seed_path p holds value(S, p, y, x, c), and "
        f"global_latent[c] = value(S, [{global_path}], 0, 0, c), with {RECIPE}. (Generator "
        f"'{GENERATORS['legacy']}', images of seeds before that recipe: global_latent = numpy.random.default_rng("
        f"[S, {global_path}]).standard_normal((1, {cfg.global_latent_dim})) cast to float32; position (y, x) of a "
        f"field with field_tile T and C channels holds numpy.random.default_rng([S, *p, y // T, x // T])"
        f".standard_normal((T, T, C), dtype=float32)[y % T, x % T].) Other canvas sizes: generate the next reachable "
        f"size and centre-crop (top-left of the crop at ((covered - wanted) // 2) per axis). A 360 degree panorama "
        f"of width W "
        f"(a multiple of {ppl} px) has Wp = W/{ppl} latent columns, takes field columns modulo Wp*units_per_latent "
        f"and is cropped from column 0. The structure synthesiser consumes {pad} latents per side, so the "
        f"texture-synthesiser input of a tile is {geometry.ts_input_size} latents, {ppl} px each.")

    def field(channels, window_, stride, seed_path, tile, unit):
        # field_tile: the tile of the legacy generator (the portable one keys every value by its position).
        return CanvasFieldRecipe(channels=channels, window=window_, stride=stride, seed_path=tuple(seed_path),
                                 field_tile=tile, units_per_latent=unit, generator=portable)

    noise_inputs = {f"noise_{i}": field(1, sizes[i], steps[i], (FIELD_NOISE, i), NOISE_FIELD_TILE, units[i])
                    for i in range(geometry.num_convs)}
    return ServingDescription(
        model_type="infinitygan",
        paper="InfinityGAN: Towards Infinite-Pixel Image Synthesis (Lin et al., ICLR 2022)",
        extra={"patch_size": geometry.patch_size},
        signatures={
            "generate_patch": {"doc": "one patch per row from windows of the canvas latents, coordinates and noise"},
            "generate_patch_nonoise": {"doc": "generate_patch without noise inputs (no noise injected)"},
            "map_latent": {"doc": "the mapping network: global_latent -> style w"},
        },
        output={"name": "rgb", "range": [-1.0, 1.0]},
        tiling=Tiling(
            signature="generate_patch",
            tile_size=(geometry.patch_size, geometry.patch_size),
            stride=(geometry.pixel_step, geometry.pixel_step),
            native_tiles=(1, 1),
            anchor=("start", "start"),
            crop="center",
            panorama_pixels_per_latent=ppl,
            inputs={
                "global_latent": LatentRecipe(shape=(cfg.global_latent_dim,), generator=portable,
                                              seed_path=tuple(GLOBAL_SEED_PATH)),
                "local_latent": field(cfg.local_latent_dim, window, step, (FIELD_LOCAL,), LOCAL_FIELD_TILE, 1),
                "coords": TileCoordinatesRecipe("infinitygan", {
                    "window": window, "stride": step, "coordinate_system": cfg.coord_system,
                    "vertical_step": coordinates.vertical_step, "horizontal_period": coordinates.meta_cols - 1}),
                **noise_inputs,
            },
            recipe=recipe,
            extra={"latent_stride": step, "overlap": geometry.patch_size - geometry.pixel_step,
                   "layer_sizes": list(sizes), "layer_strides": list(steps)},
        ),
    ).to_json()
