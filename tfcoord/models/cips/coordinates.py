"""CIPS's coordinates (Anokhin et al., CVPR 2021, §3.1-3.2; models.md §2.2-2.4, §2.8).

Pixel grids and tiles, cylinders (panoramas), foveated point sets, the tile recipe of the
serving description, and the learned coordinate embedding. CIPS coordinates are (x, y):
channel 0 varies along the width, channel 1 along the height. The Fourier features are
:class:`tfcoord.coords.FourierFeatures`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tfcoord.coords import cylindrical


def axis(index, num_positions: int):
    """Position ``-1 + 2 j / (n - 1)`` of pixel j on an n-pixel axis (CIPS ``linspace(-1, 1, n)``).

    NumPy float64; indices outside 0 .. n-1 extrapolate with the same spacing. The same
    formula gives every tile of an image, so a tile's coordinates are bit-identical to the
    matching crop of the full grid.
    """
    index = np.asarray(index, np.float64)
    if num_positions == 1:
        return np.zeros_like(index)
    return -1.0 + index * (2.0 / (num_positions - 1))


def tile_coords(top: int, left: int, height: int, width: int, full_height: int, full_width: int):
    """(height, width, 2) float32 (x, y) coordinates of the tile at pixel (top, left) of a full image.

    ``tile_coords(0, 0, H, W, H, W)`` is the whole grid; a denser grid (super-resolution)
    is simply a larger ``full_height`` x ``full_width``.
    """
    xs = axis(np.arange(left, left + width), full_width)
    ys = axis(np.arange(top, top + height), full_height)
    return np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).astype("float32")


def cylinder_coords(top: int, left: int, height: int, width: int, full_height: int, full_width: int):
    """(height, width, 3) float32 cylindrical coordinates ``[y, cos(pi theta), sin(pi theta)]`` (paper Fig. 11).

    Column j of a ``full_width`` panorama sits at ``theta = -1 + 2 j / full_width``, so column
    ``full_width`` is column 0 again: the panorama is cyclic horizontally. Columns beyond the
    width wrap around.
    """
    ys = axis(np.arange(top, top + height), full_height)
    theta = -1.0 + 2.0 * np.arange(left, left + width, dtype=np.float64) / full_width  # cylinder_angle
    y_grid, t_grid = np.meshgrid(ys, theta, indexing="ij")
    return np.asarray(cylindrical(y_grid.astype("float32"), t_grid.astype("float32")), "float32")


def tile_coordinates(recipe: dict, tile_size, rows, cols, plan=None):
    """(n, h, w, C) coordinates of tiles at grid indices (rows, cols), from a CIPS serving description.

    ``recipe`` is the description's ``tiling.inputs.coords`` entry: ``coordinate_system``
    ("euclidean" or "cylindrical") and the grid (``grid_height``, ``grid_width``) whose
    spacing the tiles use (the training size; a larger grid is a denser, super-resolved
    image). The spec registers it as the ``cips`` tile coordinate system.
    """
    h, w = (int(v) for v in tile_size)
    make = cylinder_coords if recipe.get("coordinate_system") == "cylindrical" else tile_coords
    tiles = [make(int(r) * h, int(c) * w, h, w, int(recipe["grid_height"]), int(recipe["grid_width"]))
             for r, c in zip(np.ravel(rows), np.ravel(cols))]
    return np.stack(tiles).astype("float32")


def foveated_points(height: int, width: int, gaze=(0.0, 0.0), fovea_sigma: float = 0.25,
                    min_density: float = 0.08, seed: int = 0):
    """An irregular foveated pixel set: dense around ``gaze``, sparse elsewhere (CIPS §4.4).

    Pixel p is kept with probability ``max(min_density, exp(-|p - gaze|^2 / (2 sigma^2)))``,
    distances in the [-1, 1] coordinate units; the four corners are always kept so that an
    interpolation fills the whole frame. Deterministic for ``seed``.

    Args:
        gaze: (x, y) of the gaze point in [-1, 1].
    Returns:
        ``(rows, cols)`` integer pixel indices (N,) each; their coordinates are
        ``tile_coords(0, 0, H, W, H, W)[rows, cols]``.
    """
    grid = tile_coords(0, 0, height, width, height, width).astype(np.float64)
    distance2 = np.sum(np.square(grid - np.asarray(gaze, np.float64)), axis=-1)
    density = np.maximum(min_density, np.exp(-distance2 / (2.0 * fovea_sigma ** 2)))
    keep = np.random.default_rng(seed).random((height, width)) < density
    keep[0, 0] = keep[0, -1] = keep[-1, 0] = keep[-1, -1] = True
    rows, cols = np.nonzero(keep)
    return rows, cols


def _embedding_positions(coord, size: int, sampling: str):
    """Continuous texel position of a coordinate along an axis of ``size`` texels (models.md §2.4)."""
    if sampling == "official":  # grid_sample(align_corners=False): texel centres at (2k + 1)/S - 1
        return ((coord + 1.0) * float(size) - 1.0) * 0.5
    return (coord + 1.0) * (0.5 * float(size - 1))  # aligned: the native grid hits the texels


def sample_embedding(table, coords, sampling: str = "aligned", wrap_x: bool = False):
    """Bilinear sample of a learned (S_h, S_w, C) table at continuous (x, y) coordinates (..., 2).

    ``sampling="aligned"`` puts coordinate -1 / +1 on the first / last texel, so the native
    ``linspace(-1, 1, S)`` grid reproduces the table; ``"official"`` reproduces the official
    evaluation path, ``grid_sample(mode="bilinear", padding_mode="border",
    align_corners=False)`` (quirk C1, a half-texel shift). Outside the table the position is
    clamped (``padding_mode="border"``), or with ``wrap_x`` the x axis is periodic with period
    S_w (cylinders: x is the angle theta in [-1, 1), texel j at ``-1 + 2 j / S_w``).
    Gather-based (``ops.take`` on the flattened table): any tile, any backend, TFLite GATHER
    (tensorflow.md §10.3); gradients reach the table and the coordinates.
    """
    size_h, size_w = int(table.shape[0]), int(table.shape[1])
    flat = ops.reshape(table, (size_h * size_w, -1))
    if wrap_x:
        px = (coords[..., 0] + 1.0) * (0.5 * float(size_w))
        px = px - ops.floor(px / float(size_w)) * float(size_w)  # [0, S_w)
    else:
        px = ops.clip(_embedding_positions(coords[..., 0], size_w, sampling), 0.0, float(size_w - 1))
    py = ops.clip(_embedding_positions(coords[..., 1], size_h, sampling), 0.0, float(size_h - 1))
    x0, y0 = ops.floor(px), ops.floor(py)
    fx, fy = px - x0, py - y0
    if wrap_x:
        x0 = ops.where(x0 >= float(size_w), x0 - float(size_w), x0)
        x1 = ops.where(x0 + 1.0 >= float(size_w), x0 + 1.0 - float(size_w), x0 + 1.0)
    else:
        x1 = ops.minimum(x0 + 1.0, float(size_w - 1))
    y1 = ops.minimum(y0 + 1.0, float(size_h - 1))

    def tap(yy, xx):
        return ops.take(flat, ops.cast(yy * float(size_w) + xx, "int32"), axis=0)

    def e(weight):
        return ops.expand_dims(weight, -1)

    return (tap(y0, x0) * e((1.0 - fx) * (1.0 - fy)) + tap(y0, x1) * e(fx * (1.0 - fy))
            + tap(y1, x0) * e((1.0 - fx) * fy) + tap(y1, x1) * e(fx * fy))


@keras.saving.register_keras_serializable(package="tfcoord")
class CoordinateEmbedding(keras.layers.Layer):
    """CIPS learned coordinate embedding: a (size, size, channels) table sampled at continuous coordinates.

    The official ``ConstantInput`` (N(0, 1) init). ``call(lookup_coords)`` samples it with
    :func:`sample_embedding` (``sampling`` "aligned" or "official", ``wrap_x`` for cylinders);
    the official training path reads ``table`` itself on the native grid.
    """

    def __init__(self, size, channels, sampling="aligned", wrap_x=False, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.channels = channels
        self.sampling = sampling
        self.wrap_x = wrap_x

    def build(self, coords_shape=None):
        self.table = self.add_weight(shape=(self.size, self.size, self.channels), name="table",
                                     initializer=keras.initializers.RandomNormal(stddev=1.0))

    def call(self, lookup_coords):
        return sample_embedding(self.table, lookup_coords, self.sampling, self.wrap_x)

    def compute_output_shape(self, coords_shape):
        return tuple(coords_shape[:-1]) + (self.channels,)
