"""CIPS's serving signatures (tensorflow.md §12) and the description a tiling client needs.

* ``generate_patch(z (-1, style_dim), coords (-1, h, w, C)) -> {"rgb": (-1, h, w, 3)}``: G(z, coords)
  in eval mode without noise;
* ``map_latent(z) -> {"style"}``: the mapping network;
* ``synthesize(style (-1, style_dim), coords) -> {"rgb"}``: from a style (e.g. truncated).

``coords`` is (batch, h, w, C) with dynamic h, w (or P x P with ``patch_size``); C = 2 (x, y)
or 3 (y, cos, sin) for cylindrical models. No noise (tiles stay seamless), no truncation
(apply it to ``style`` before ``synthesize``). Non-finite inputs are refused with
InvalidArgumentError.
"""

from __future__ import annotations

import tensorflow as tf

from tfcoord.errors import UserError
from tfcoord.layers.dtypes import to_float32
from tfcoord.models.base import finite_input
from tfcoord.models.cips.config import MAX_OUTPUT_SIDE
from tfcoord.serving import LatentRecipe, ServingDescription, TileCoordinatesRecipe, Tiling


def serving_functions(model, patch_size=None) -> dict:
    g = model.generator_ema
    s, c = model.config.model.style_dim, model.config.model.coord_dim
    if patch_size is not None and not 1 <= int(patch_size) <= MAX_OUTPUT_SIDE:
        raise UserError(f"patch size must be between 1 and {MAX_OUTPUT_SIDE}, got {patch_size}")
    side = None if patch_size is None else int(patch_size)
    z_spec = tf.TensorSpec([None, s], tf.float32, name="z")
    style_spec = tf.TensorSpec([None, s], tf.float32, name="style")
    coords_spec = tf.TensorSpec([None, side, side, c], tf.float32, name="coords")

    def same_batch(a, b):
        return tf.debugging.assert_equal(tf.shape(a)[0], tf.shape(b)[0],
                                         message="the latent/style and coords must have the same batch size")

    @tf.function(input_signature=[z_spec, coords_spec])
    def generate_patch(z, coords):
        z, coords = finite_input(z, "z"), finite_input(coords, "coords")
        with tf.control_dependencies([same_batch(z, coords)]):
            return {"rgb": g.synthesize(g.map(z), coords, training=False)}

    @tf.function(input_signature=[z_spec])
    def map_latent(z):
        return {"style": to_float32(g.map(finite_input(z, "z")))}  # float32 under any --precision

    @tf.function(input_signature=[style_spec, coords_spec])
    def synthesize(style, coords):
        style, coords = finite_input(style, "style"), finite_input(coords, "coords")
        with tf.control_dependencies([same_batch(style, coords)]):
            return {"rgb": g.synthesize(style, coords, training=False)}

    return {"generate_patch": generate_patch, "map_latent": map_latent, "synthesize": synthesize}


def serving_description(model) -> dict:
    cfg = model.config.model
    cylindrical = cfg.coordinate_system == "cylindrical"
    tile = min(64, cfg.size)  # the tile side proposed to clients
    native = -(-cfg.size // tile)
    if cylindrical:
        formula = (f"coords[r, c] = [y, cos(pi*t), sin(pi*t)] with y = -1 + 2*(i*{tile} + r)/({cfg.size} - 1) "
                   f"and t = -1 + 2*(j*{tile} + c)/{cfg.size} (columns wrap: t is periodic)")
    else:
        formula = (f"coords[r, c] = [x, y] with x = -1 + 2*(j*{tile} + c)/({cfg.size} - 1) and "
                   f"y = -1 + 2*(i*{tile} + r)/({cfg.size} - 1)")
    recipe = (f"Tile (i, j) is the {tile}x{tile} block at pixel rows i*{tile}.. and columns j*{tile}.. of the "
              f"{cfg.size}x{cfg.size} training grid; {formula} for its row r and column c "
              "(tfcoord.models.cips.coordinates.tile_coords). Indices outside the trained grid extrapolate with the "
              "same spacing; a denser grid (super-resolution) replaces the size in the formula by the output size. Every tile of one "
              f"image uses the same z ~ N(0, I)^{cfg.style_dim} (or map_latent(z) once and synthesize per tile). "
              "Pixels are conditionally independent: any tile size gives the same image.")
    return ServingDescription(
        model_type="cips",
        paper="Image Generators with Conditionally-Independent Pixel Synthesis (Anokhin et al., CVPR 2021)",
        extra={"architecture": f"CIPS{cfg.architecture}", "training_size": cfg.size, "style_dim": cfg.style_dim,
               "coordinate_system": cfg.coordinate_system},
        signatures={
            "generate_patch": {"doc": "G(z, coords) in eval mode without noise: rgb (batch, h, w, 3)"},
            "map_latent": {"doc": "the mapping network: z -> style w (batch, style_dim)"},
            "synthesize": {"doc": "rgb from a style w (e.g. truncated) and coords"},
        },
        output={"name": "rgb", "range": [-1.0, 1.0]},
        tiling=Tiling(
            signature="generate_patch",
            tile_size=(tile, tile),
            native_tiles=(native, native),
            anchor=("center", "start" if cylindrical else "center"),
            inputs={
                "z": LatentRecipe(shape=(cfg.style_dim,)),
                "coords": TileCoordinatesRecipe("cips", {"coordinate_system": cfg.coordinate_system,
                                                         "grid_height": cfg.size, "grid_width": cfg.size}),
            },
            recipe=recipe,
        ),
    ).to_json()
