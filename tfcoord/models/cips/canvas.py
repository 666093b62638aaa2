"""CIPS on the canvas engine: any W x H image, rendered tile by tile with bounded memory.

The canvas is the model's image on a ``W x H`` grid spanning [-1, 1] on both axes
(pixel (r, c) at ``x = -1 + 2 c / (W - 1)``, ``y = -1 + 2 r / (H - 1)``): the training
size reproduces the training grid, a larger canvas is super-resolution by a denser grid
(paper Fig. 9). A cylindrical model renders a 360 degree panorama: column c at
``theta = -1 + 2 c / W``, so the last column continues into the first. Every tile is an
exact crop of the full grid and no noise is used, so the image does not depend on the
tile or batch size (conditional independence). One latent, drawn from the seed, covers
the canvas.
"""

from __future__ import annotations

import numpy as np

from tfcoord.models.cips.applications import check_cylindrical


class CipsCanvas:
    """Renderer for :func:`tfcoord.generation.canvas.render_canvas`."""

    tile_quantum = 1

    def __init__(self, model, width: int, height: int, seed: int, panorama: bool = False, checkpoint: str = "",
                 xla: bool = False):
        cfg = model.config.model
        if panorama:
            check_cylindrical(cfg)
        self.model, self.width, self.height, self.seed, self.checkpoint = model, width, height, seed, checkpoint
        self.xla = xla
        self.default_tile = min(256, max(cfg.size, 64))
        self.sampler = model.sampler
        self.style = self.sampler.styles(self.sampler.latents(seed, 1))

    def describe(self) -> dict:
        cfg = self.model.config.model
        return {"model": "cips", "checkpoint": self.checkpoint, "seed": self.seed, "size": cfg.size,
                "system": cfg.coordinate_system, "noise": "none"}

    def render(self, tiles):
        images = [None] * len(tiles)
        by_shape = {}
        for index, tile in enumerate(tiles):
            by_shape.setdefault((tile.height, tile.width), []).append(index)
        for (h, w), indices in by_shape.items():  # one network call per tile shape
            coords = np.stack([self.sampler.grid(h, w, tiles[i].top, tiles[i].left, self.height, self.width)
                               for i in indices])
            rgb = self.sampler.render(np.repeat(self.style, len(indices), axis=0), coords, xla=self.xla)
            for i, image in zip(indices, rgb):
                images[i] = image
        return images
