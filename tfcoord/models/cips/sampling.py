"""CIPS's sampler: latents, truncation and rendering with the EMA generator (eval mode).

Any coordinate set is a valid request (tiles, denser grids, foveated sets, cylinders,
per-pixel styles); see :mod:`tfcoord.models.cips.applications`. Each pixel depends only on
its coordinate and style, so rendering in chunks of bounded memory gives the one-call image.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tfcoord.models.cips.coordinates import cylinder_coords, tile_coords
from tfcoord.errors import UserError
from tfcoord.layers.dtypes import to_float32
from tfcoord.models.cips.config import MAX_OUTPUT_PIXELS, MAX_OUTPUT_SIDE

# Pixels per generator call when rendering large images (bounds activation memory: a
# 512-channel float32 activation of 65 536 pixels is 134 MB).
DEFAULT_PIXELS_PER_CALL = 65536


class CipsSampler:
    """Draws with ``generator`` (a built :class:`~tfcoord.models.cips.generator.CipsGenerator`, the
    EMA copy) for the ``model`` config section ``model_cfg``; ``Cips.sampler`` is one."""

    def __init__(self, generator, model_cfg):
        self.generator, self.model_cfg = generator, model_cfg
        self._mean_styles = {}
        self._synthesis_functions = {}

    def latents(self, seed: int, num: int) -> np.ndarray:
        """z ~ N(0, I) for ``num`` images, deterministic for ``seed``."""
        return np.random.default_rng(seed).standard_normal((num, self.model_cfg.style_dim)).astype("float32")

    def mean_style(self, num: int = 4096, seed: int = 2**20) -> np.ndarray:
        """w-bar, the mean of ``num`` mapped latents (the truncation centre; the official notebook uses 100)."""
        key = (num, seed)
        if key not in self._mean_styles:
            z = self.latents(seed, num)
            self._mean_styles[key] = np.mean(np.asarray(self._map(tf.constant(z))), axis=0, keepdims=True)
        return self._mean_styles[key]

    def styles(self, z, truncation: float = 1.0, mean_style=None) -> np.ndarray:
        """Styles w (B, style_dim) of latents z, with the truncation trick ``w-bar + psi (w - w-bar)``.

        ``model.truncate_space="z"`` reproduces quirk C2, the official forward without
        ``input_is_latent``: ``z' = w-bar + psi (z - w-bar)``, then mapped.
        """
        z = np.asarray(z, "float32")
        if z.ndim != 2 or z.shape[1] != self.model_cfg.style_dim:
            raise UserError(f"latents must have shape (batch, {self.model_cfg.style_dim}), got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise UserError("latents must be finite (found NaN or infinity)")
        if truncation >= 1.0:
            return np.asarray(self._map(tf.constant(z)))
        centre = self.mean_style() if mean_style is None else np.asarray(mean_style, "float32")
        if self.model_cfg.truncate_space == "z":
            return np.asarray(self._map(tf.constant(centre + truncation * (z - centre))))
        w = np.asarray(self._map(tf.constant(z)))
        return (centre + truncation * (w - centre)).astype("float32")

    @functools.cached_property
    def _map(self):
        return tf.function(lambda z: to_float32(self.generator.map(z)), reduce_retracing=True)

    def _synthesis_function(self, rank: int, per_pixel: bool, with_noise: bool, xla: bool = False):
        """A tf.function per input structure: shapes vary freely, ranks never (no unknown-rank traces).

        ``xla``: compiled with XLA (one compilation per input shape; the canvas engine's tiles
        have few distinct shapes)."""
        key = (rank, per_pixel, with_noise, xla)
        if key not in self._synthesis_functions:
            synthesize = functools.partial(self.generator.synthesize, training=False)
            self._synthesis_functions[key] = tf.function(synthesize, reduce_retracing=True,
                                                         jit_compile=True if xla else None)
        return self._synthesis_functions[key]

    def check_coords(self, coords, what="coords"):
        """Validate a coordinate array for generation; returns it as float32 (B, ..., C)."""
        coords = np.asarray(coords)
        dim = self.model_cfg.coord_dim
        if coords.ndim not in (3, 4):
            raise UserError(f"{what} must have shape (batch, height, width, {dim}) or (batch, points, {dim}), "
                            f"got rank {coords.ndim} {coords.shape}")
        if coords.shape[-1] != dim:
            system = "(y, cos, sin) for a cylindrical model" if dim == 3 else "(x, y)"
            raise UserError(f"{what} must have {dim} channels {system} in the last axis, got {coords.shape[-1]}")
        if not np.issubdtype(coords.dtype, np.number):
            raise UserError(f"{what} must be numeric, got dtype {coords.dtype}")
        pixels = int(np.prod(coords.shape[1:-1]))
        if pixels > MAX_OUTPUT_PIXELS or max(coords.shape[1:-1]) > MAX_OUTPUT_SIDE:
            raise UserError(f"{what} asks for {coords.shape[1:-1]} = {pixels} pixels per image; the limit is "
                            f"{MAX_OUTPUT_PIXELS} pixels (4096x4096) and {MAX_OUTPUT_SIDE} per side; "
                            "render larger images tile by tile (python -m tfcoord.generate --width W --height H)")
        if not np.all(np.isfinite(coords)):
            raise UserError(f"{what} must be finite (found NaN or infinity)")
        return coords.astype("float32")

    def check_style(self, style, coords):
        """Validate a per-image (B, S) style or a per-pixel style field (B, ..., S) matching ``coords``."""
        style = np.asarray(style)
        s = self.model_cfg.style_dim
        if style.ndim == 2:
            if style.shape[1] != s:
                raise UserError(f"style must have {s} channels, got shape {style.shape}")
        elif style.shape[:-1] != coords.shape[:-1] or style.shape[-1] != s:
            raise UserError(f"a style field must have shape {coords.shape[:-1] + (s,)} (the coordinates' batch and "
                            f"grid plus {s} style channels), got {style.shape}")
        if style.shape[0] != coords.shape[0]:
            raise UserError(f"style batch {style.shape[0]} does not match the coordinates' batch {coords.shape[0]}")
        if not np.all(np.isfinite(style)):
            raise UserError("style must be finite (found NaN or infinity)")
        return style.astype("float32")

    def render(self, style, coords, noise=None, pixels_per_call: int = DEFAULT_PIXELS_PER_CALL,
               xla: bool = False) -> np.ndarray:
        """RGB of G_ema at arbitrary coordinates (eval mode), at most ``pixels_per_call`` pixels per call.

        Args:
            style: (B, S) per image, or a per-pixel style field with the coordinates' leading shape.
            coords: (B, H, W, C) grid or (B, N, C) point set (C = model.coord_dim).
            noise: ``None`` (no per-pixel noise: deterministic, tileable) or an explicit array
                (B, ..., L) with L = ``generator.num_noise_layers``.
            pixels_per_call: the most pixels per network call (bounds memory).
            xla: run the synthesis network compiled with XLA.

        Calls take whole images (several when they are small) or row bands / point ranges of
        one image: since each pixel depends only on its coordinate and style, the result does
        not depend on the chunking, and memory stays bounded for any batch and size.
        """
        coords = self.check_coords(coords)
        style = self.check_style(style, coords)
        if noise is not None:
            noise = np.asarray(noise, "float32")
            layers = self.generator.num_noise_layers
            if noise.shape != coords.shape[:-1] + (layers,):
                raise UserError(f"noise must have shape {coords.shape[:-1] + (layers,)}, got {noise.shape}")
        per_pixel = style.ndim > 2
        batch, axis_len = coords.shape[0], coords.shape[1]
        row_pixels = coords.shape[2] if coords.ndim == 4 else 1
        image_pixels = axis_len * row_pixels
        if image_pixels <= pixels_per_call:  # whole images, several per call
            batch_step, row_step = max(1, pixels_per_call // image_pixels), axis_len
        else:  # bands of rows (or runs of points) of one image per call
            batch_step, row_step = 1, max(1, pixels_per_call // row_pixels)
        synthesize = self._synthesis_function(coords.ndim, per_pixel, noise is not None, xla)
        out = np.empty(coords.shape[:-1] + (3,), "float32")
        for b in range(0, batch, batch_step):
            images = slice(b, b + batch_step)
            for start in range(0, axis_len, row_step):
                part = (images, slice(start, start + row_step))
                s = style[part] if per_pixel else style[images]
                args = [tf.constant(s), tf.constant(coords[part])]
                if noise is not None:
                    args.append(tf.constant(noise[part]))
                out[part] = np.asarray(synthesize(*args))
        return out

    def random_noise(self, seed: int, leading_shape) -> np.ndarray:
        """Per-pixel N(0, 1) noise for every StyledConv (the official "random" mode, reproducible by seed)."""
        shape = tuple(leading_shape) + (self.generator.num_noise_layers,)
        return np.random.default_rng(seed).standard_normal(shape).astype("float32")

    def grid(self, height: int, width: int, top: int = 0, left: int = 0, full_height: int | None = None,
             full_width: int | None = None) -> np.ndarray:
        """Coordinates (H, W, C) of the tile at (top, left) of a ``full_height x full_width`` image.

        Euclidean: (x, y) on ``linspace(-1, 1, n)``; a denser full grid than ``model.size`` is
        super-resolution. Cylindrical: (y, cos, sin) of a horizontally cyclic panorama.
        """
        full_height = full_height or height
        full_width = full_width or width
        for name, value in (("height", height), ("width", width)):
            if not 1 <= value <= MAX_OUTPUT_SIDE:
                raise UserError(f"{name} must be between 1 and {MAX_OUTPUT_SIDE} pixels, got {value}")
        if min(full_height, full_width) < 1:
            raise UserError(f"the full image must be at least 1x1 pixels, got {full_height}x{full_width}")
        if self.model_cfg.coordinate_system == "cylindrical":
            return cylinder_coords(top, left, height, width, full_height, full_width)
        return tile_coords(top, left, height, width, full_height, full_width)

    def generate(self, z, height: int | None = None, width: int | None = None, truncation: float = 1.0,
                 noise: str = "none", noise_seed: int = 0) -> np.ndarray:
        """Whole images (B, H, W, 3) from latents at any size (default: the training size)."""
        size = self.model_cfg.size
        height, width = height or size, width or size
        coords = np.broadcast_to(self.grid(height, width), (len(z), height, width, self.model_cfg.coord_dim))
        noise_maps = self.random_noise(noise_seed, coords.shape[:-1]) if noise == "random" else None
        return self.render(self.styles(z, truncation), coords, noise=noise_maps)
