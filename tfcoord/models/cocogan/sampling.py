"""COCO-GAN's sampler: micro patches at any coordinates and full images assembled by phi (eval mode)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfcoord.coords import merge_patches


class CocoGanSampler:
    """Draws with ``generator`` (G, or its EMA copy) on the patch grids of ``geometry``
    (:class:`~tfcoord.models.cocogan.coordinates.CocoGanCoordinates`); ``CocoGan.sampler`` is one."""

    def __init__(self, generator, geometry):
        self.generator, self.geometry = generator, geometry
        self._functions = {}

    def micro_patches(self, z, micro_coords):
        """G in eval mode on explicit micro coordinates: z (B, z_dim), coords (B, coord_dim)."""
        return self.generator([z, micro_coords], training=False)

    def patch_function(self, xla: bool = False):
        """:meth:`micro_patches` as a tf.function; ``xla``: compiled with XLA (``generate ... --xla``)."""
        if xla not in self._functions:
            self._functions[xla] = tf.function(self.micro_patches, reduce_retracing=True,
                                               jit_compile=True if xla else None)
        return self._functions[xla]

    def generate_full(self, z, extrapolation_steps: int = 0, batch_patches: int = 256):
        """Full images (B, rows * micro, cols * micro, 3) in [-1, 1] of latents z (B, z_dim), assembled from all
        their micro patches (eval mode), ``batch_patches`` per generator call (bounds memory).

        ``extrapolation_steps`` adds micro patches beyond the training boundary on each side (Euclidean: every
        side; cylindrical: top and bottom only). Patch (r, c) covers rows ``r*micro:(r+1)*micro``.
        """
        z = np.asarray(z, "float32")
        grid = np.asarray(self.geometry.full_micro_grid(extrapolation_steps))
        rows, cols, coord_dim = grid.shape
        coords = np.tile(grid.reshape(1, rows * cols, coord_dim), (len(z), 1, 1)).reshape(-1, coord_dim)
        z_per_patch = np.repeat(z, rows * cols, axis=0)
        generate = self.patch_function()
        patches = [np.asarray(generate(z_per_patch[i:i + batch_patches], coords[i:i + batch_patches]))
                   for i in range(0, len(coords), batch_patches)]
        return np.asarray(merge_patches(np.concatenate(patches), rows, cols))
