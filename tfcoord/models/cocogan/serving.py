"""COCO-GAN's serving signatures and the description a tiling client needs (tensorflow.md §12).

* ``generate_patch(z (-1, z_dim), micro_coords (-1, coord_dim)) -> {"rgb": (-1, m, m, 3)}``:
  one micro patch per row, G(z, c'') in eval mode. Any real coordinate is accepted
  (beyond-boundary generation, paper §4.3).
* ``generate_full(z (-1, z_dim)) -> {"rgb": (-1, H, W, 3)}``: every micro patch of the
  trained full image, the coordinates baked in, assembled by phi.

Inputs with NaN or Inf are refused (``InvalidArgumentError``); a wrong rank or latent
size is refused by the signature's ``TensorSpec`` before the graph runs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfcoord.coords import merge_patches
from tfcoord.errors import UserError
from tfcoord.models.base import finite_input
from tfcoord.serving import LatentRecipe, ServingDescription, TileCoordinatesRecipe, Tiling


def serving_functions(model, patch_size=None) -> dict:
    cfg, geometry, generator = model.config.model, model.geometry, model.sampling_generator
    if patch_size not in (None, cfg.micro_size):
        raise UserError(f"COCO-GAN generates micro patches of exactly {cfg.micro_size} pixels "
                        f"(model.micro_size); pass --patch {cfg.micro_size}, not {patch_size}")
    z_spec = tf.TensorSpec([None, cfg.z_dim], tf.float32, name="z")
    coords_spec = tf.TensorSpec([None, geometry.coord_dim], tf.float32, name="micro_coords")

    @tf.function(input_signature=[z_spec, coords_spec])
    def generate_patch(z, micro_coords):
        z, micro_coords = finite_input(z, "z"), finite_input(micro_coords, "micro_coords")
        same_batch = tf.debugging.assert_equal(tf.shape(z)[0], tf.shape(micro_coords)[0],
                                               message="z and micro_coords must have the same number of rows")
        with tf.control_dependencies([same_batch]):
            return {"rgb": generator([z, micro_coords], training=False)}

    grid = np.asarray(geometry.full_micro_grid())
    rows, cols, coord_dim = grid.shape

    @tf.function(input_signature=[z_spec])
    def generate_full(z):
        z = finite_input(z, "z")
        coords = tf.tile(tf.constant(grid.reshape(rows * cols, coord_dim)), [tf.shape(z)[0], 1])
        patches = generator([tf.repeat(z, rows * cols, axis=0), coords], training=False)
        return {"rgb": merge_patches(patches, rows, cols)}

    return {"generate_patch": generate_patch, "generate_full": generate_full}


def serving_description(model) -> dict:
    cfg, geometry = model.config.model, model.geometry
    m, rows, cols = cfg.micro_size, geometry.micro_rows, geometry.micro_cols
    cylindrical = geometry.system == "cylindrical"
    if cylindrical:
        formula = (f"micro_coords = (linear_position(i, {rows}), cos(pi*t), sin(pi*t)) with "
                   f"t = cylinder_angle(j, {cols}) = -1 + 2*j/{cols}; |cos|, |sin| < 1e-6 are set to 0; "
                   f"columns wrap (j and j + {cols} are the same patch)")
    else:
        formula = f"micro_coords = (linear_position(i, {rows}), linear_position(j, {cols}))"
    recipe = (f"Tile (i, j) is the {m}x{m} micro patch at pixel rows i*{m}.. and columns j*{m}.. of the "
              f"{cfg.full_size[0]}x{cfg.full_size[1]} trained image (i, j = 0 .. {rows - 1}, 0 .. {cols - 1}); "
              f"{formula}, where linear_position(k, n) = -1 + 2*k/(n-1) (tfcoord.coords). Indices outside the "
              "trained grid extrapolate with the same spacing (beyond-boundary generation). Every tile of one "
              f"image uses the same z, drawn once from U(-1, 1)^{cfg.z_dim}.")
    return ServingDescription(
        model_type="cocogan",
        paper="COCO-GAN: Generation by Parts via Conditional Coordinating (Lin et al., ICCV 2019)",
        extra={"full_size": list(cfg.full_size)},
        signatures={
            "generate_patch": {"doc": "one micro patch per row: G(z, micro_coords) in eval mode"},
            "generate_full": {"doc": "full images: all micro patches of each z at the trained coordinates"},
        },
        output={"name": "rgb", "range": [-1.0, 1.0]},
        tiling=Tiling(
            signature="generate_patch",
            tile_size=(m, m),
            native_tiles=(rows, cols),
            # A larger canvas extends the grid equally on both sides (as --extrapolate does); a
            # panorama keeps theta = -1 at its left edge and wraps.
            anchor=("center", "start" if cylindrical else "center"),
            inputs={
                "z": LatentRecipe(shape=(cfg.z_dim,), distribution="uniform", low=-1.0, high=1.0),
                "micro_coords": TileCoordinatesRecipe("cocogan", {"coordinate_system": geometry.system,
                                                                  "micro_rows": rows, "micro_cols": cols}),
            },
            recipe=recipe,
        ),
    ).to_json()
