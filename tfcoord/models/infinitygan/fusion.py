"""Spatial style fusion: several global styles placed on one canvas, blended smoothly (models.md §4.9).

Lin et al. (ICLR 2022, §3.3, official ``test_managers/fused_generation.py``): each pixel of the
covered canvas takes the one-hot of its nearest style centre; the K maps are blurred (box
"mean" or Gaussian, replicate padding) and carried back through the generator to the input
of every layer -- a valid 3x3 conv adds one (replicated) sample per side, an up conv
(n -> 2n - 3) pads one sample per side and resizes to n with aligned corners, every
structure-synthesiser layer pads ``radius`` samples per side. Each layer then modulates with
the per-position mixture ``sum_k map_k(p) style_k`` (z_g for G_S, w+ slot i for conv i; the
ToRGB after conv 2b+1 uses conv 2b+1's map, centre-cropped), see
:class:`~tfcoord.layers.modulated_conv.ModulatedConv2D` for the per-pixel demodulation.

The maps are canvas-sized arrays indexed like the noise, so patches cut windows from them and
stay seamless. With identical styles every mixture equals that style: the result equals plain
generation (up to float rounding of the per-pixel demodulation).
"""

from __future__ import annotations

import numpy as np

from tfcoord.errors import UserError


def _pad_edge(maps, pad: int):
    return np.pad(maps, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def _box_blur_axis(maps, kernel: int, axis: int):
    pad = kernel // 2
    widths = [(0, 0)] * 3
    widths[axis] = (pad, kernel - 1 - pad)
    padded = np.pad(maps, widths, mode="edge").astype(np.float64)
    cumulative = np.cumsum(padded, axis=axis)
    cumulative = np.concatenate([np.zeros_like(np.take(cumulative, [0], axis=axis)), cumulative], axis=axis)
    n = maps.shape[axis]
    upper = np.take(cumulative, np.arange(kernel, kernel + n), axis=axis)
    lower = np.take(cumulative, np.arange(0, n), axis=axis)
    return (upper - lower) / kernel


def _gaussian_blur_axis(maps, kernel: int, axis: int):
    sigma = max(kernel / 6.0, 1e-3)
    taps = np.exp(-0.5 * ((np.arange(kernel) - (kernel - 1) / 2.0) / sigma) ** 2)
    taps /= taps.sum()
    pad = kernel // 2
    widths = [(0, 0)] * 3
    widths[axis] = (pad, kernel - 1 - pad)
    padded = np.pad(maps, widths, mode="edge")
    n = maps.shape[axis]
    out = np.zeros(maps.shape, np.float64)
    for i, tap in enumerate(taps):
        out += tap * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def blur(maps, kernel: int, kind: str = "mean"):
    """Separable blur of (H, W, K) maps with replicate padding; the output keeps the size.

    ``mean`` is the official box filter; ``gaussian`` uses sigma = kernel / 6 (the official
    code passes std 1 whatever the kernel size, which hardly blurs; tfcoord scales it).
    """
    if kernel <= 1:
        return np.asarray(maps, np.float64)
    if kind not in ("mean", "gaussian"):
        raise UserError(f"fusion blur type must be 'mean' or 'gaussian', got {kind!r}")
    blur_axis = _box_blur_axis if kind == "mean" else _gaussian_blur_axis
    return blur_axis(blur_axis(maps, kernel, 0), kernel, 1)


def resize_align_corners(maps, height: int, width: int):
    """Bilinear resize of (H, W, K) with aligned corners (PyTorch ``align_corners=True``)."""

    def axis_weights(n_in, n_out):
        if n_out == 1 or n_in == 1:
            src = np.zeros(n_out)
        else:
            src = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        low = np.clip(np.floor(src).astype(int), 0, n_in - 1)
        high = np.clip(low + 1, 0, n_in - 1)
        return low, high, src - low

    r0, r1, fr = axis_weights(maps.shape[0], height)
    c0, c1, fc = axis_weights(maps.shape[1], width)
    rows = maps[r0] * (1 - fr)[:, None, None] + maps[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


def check_positions(positions) -> np.ndarray:
    """Style centres as (K, 2) relative (row, col) positions inside [0, 1]; UserError otherwise."""
    array = np.asarray(positions, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < 1:
        raise UserError(f"style centres must be a list of (row, col) pairs, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0.0) or np.any(array > 1.0):
        bad = [tuple(p) for p in array.tolist() if not all(0.0 <= v <= 1.0 for v in p)]
        raise UserError(f"style centres must lie inside the canvas: relative (row, col) positions in [0, 1], "
                        f"got {bad}")
    return array


class FusionMaps:
    """Per-layer canvas maps of the style weights, with per-patch windows."""

    def __init__(self, plan, ss_map, conv_maps):
        self.plan, self.ss_map, self.conv_maps = plan, ss_map, conv_maps

    def patch(self, row: int, col: int) -> dict:
        g = self.plan.geometry
        top, left = row * g.latent_step, col * g.latent_step
        convs = [m[row * step:row * step + size, col * step:col * step + size]
                 for m, size, step in zip(self.conv_maps, g.conv_input_sizes(), g.input_steps())]
        return {"ss": self.ss_map[top:top + g.window, left:left + g.window], "convs": convs}

    def whole(self) -> dict:
        return {"ss": self.ss_map, "convs": self.conv_maps}


def fusion_maps(plan, positions, blur_kernel: int = 127, blur_type: str = "mean") -> FusionMaps:
    """The style-weight maps of a canvas for style centres at relative ``positions`` of the requested canvas."""
    positions = check_positions(positions)
    if blur_kernel < 0:
        raise UserError(f"the fusion blur kernel must be >= 0 px, got {blur_kernel}")
    g = plan.geometry
    height, width = plan.canvas_height, plan.canvas_width
    top, left = plan.offset
    centres = np.stack([top + positions[:, 0] * (plan.height - 1), left + positions[:, 1] * (plan.width - 1)], 1)
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    nearest = np.zeros((height, width), np.int64)
    best = np.full((height, width), np.inf)
    for k, (centre_row, centre_col) in enumerate(centres):  # nearest centre, first one on ties
        distance = (rows - centre_row) ** 2 + (cols - centre_col) ** 2
        closer = distance < best
        nearest[closer], best = k, np.minimum(best, distance)
    pixel_map = blur(np.eye(len(centres))[nearest], blur_kernel, blur_type)  # (H, W, K)
    # Carry the map back to the input of every conv (last to first).
    conv_maps = [None] * g.num_convs
    current = pixel_map
    heights, widths = g.canvas_input_sizes(plan.rows), g.canvas_input_sizes(plan.cols)
    for i in reversed(range(g.num_convs)):
        padded = _pad_edge(current, 1)
        if i % 2 == 0:  # up conv: n -> 2n - 3
            padded = resize_align_corners(padded, heights[i], widths[i])
        assert padded.shape[:2] == (heights[i], widths[i]), (padded.shape, heights[i], widths[i])
        conv_maps[i] = padded.astype(np.float32)
        current = padded
    ss_map = _pad_edge(current, g.ss_padding).astype(np.float32)
    assert ss_map.shape[:2] == (plan.local_rows, plan.local_cols)
    return FusionMaps(plan, ss_map, conv_maps)
