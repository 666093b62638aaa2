"""COCO-GAN on the canvas engine: a canvas of micro patches around the training grid.

Canvas micro row r (of ``ceil(H / m)``) is micro index ``r - (rows - R_h) // 2``: the
training image sits in the middle and a larger canvas extends it beyond the boundary
on every side with the same coordinate spacing (extrapolation). A cylindrical model
instead continues around the cylinder horizontally (micro column ``c mod R_w``), so a
canvas wider than the training panorama repeats the 360 degree view seamlessly. One
latent, drawn from the seed, covers the canvas.
"""

from __future__ import annotations

import math

import numpy as np

from tfcoord.coords import merge_patches
from tfcoord.errors import UserError


class CocoGanCanvas:
    """Renderer for :func:`tfcoord.generation.canvas.render_canvas`."""

    def __init__(self, model, width: int, height: int, seed: int, panorama: bool = False, checkpoint: str = "",
                 xla: bool = False):
        geometry = model.geometry
        if panorama and geometry.system != "cylindrical":
            raise UserError("--panorama needs a COCO-GAN trained with model.coordinate_system=cylindrical "
                            "(e.g. the panorama_tiny or mp3d_panorama preset)")
        self.model, self.geometry, self.seed, self.checkpoint = model, geometry, seed, checkpoint
        self.micro = geometry.micro_size
        self.tile_quantum = self.micro
        self.default_tile = self.micro * max(1, 64 // self.micro)
        rows, cols = math.ceil(height / self.micro), math.ceil(width / self.micro)
        self.row_offset = (rows - geometry.micro_rows) // 2
        self.col_offset = 0 if geometry.system == "cylindrical" else (cols - geometry.micro_cols) // 2
        self.z = model.latents(seed, 1)
        self.generate_patches = model.sampler.patch_function(xla)

    def describe(self) -> dict:
        return {"model": "cocogan", "checkpoint": self.checkpoint, "seed": self.seed, "micro": self.micro,
                "system": self.geometry.system}

    def micro_coords(self, tile) -> np.ndarray:
        """(rows, cols, coord_dim) micro coordinates covering ``tile`` (rounded up to whole patches)."""
        rows = np.arange(tile.top // self.micro, math.ceil((tile.top + tile.height) / self.micro)) - self.row_offset
        cols = np.arange(tile.left // self.micro, math.ceil((tile.left + tile.width) / self.micro)) - self.col_offset
        if self.geometry.system == "cylindrical":
            cols = cols % self.geometry.micro_cols
        row_idx, col_idx = np.meshgrid(rows, cols, indexing="ij")
        return np.asarray(self.geometry.micro_coords(row_idx, col_idx))

    def render(self, tiles):
        grids = [self.micro_coords(t) for t in tiles]
        coords = np.concatenate([g.reshape(-1, g.shape[-1]) for g in grids])
        patches = np.asarray(self.generate_patches(np.repeat(self.z, len(coords), 0), coords))
        images, start = [], 0
        for tile, grid in zip(tiles, grids):
            count = grid.shape[0] * grid.shape[1]
            image = np.asarray(merge_patches(patches[start:start + count], grid.shape[0], grid.shape[1]))[0]
            images.append(image[:tile.height, :tile.width])
            start += count
        return images
