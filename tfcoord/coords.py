"""Every coordinate system of tfcoord, in one place.

Coordinates are trailing channels of NHWC tensors (or the last axis of a (..., D)
tensor). Functions here use ``keras.ops`` so they accept NumPy arrays and tensors of
any backend; integer index arguments may be Python ints, NumPy arrays or tensors.

Systems:

* :func:`normalized_grid` — pixel centres mapped linearly onto [-1, 1] per axis.
* :class:`CocoGanCoordinates` — COCO-GAN (Lin et al., ICCV 2019, §3.2) micro and
  macro patch coordinates, Euclidean or cylindrical, with beyond-boundary
  extrapolation steps. Coordinate order is (vertical, horizontal): dim 0 is the
  row axis, as in the official code.
* CIPS (Anokhin et al., CVPR 2021) — :func:`cips_tile_coords` (x, y) pixel grids and tiles,
  :func:`cips_cylinder_coords` panoramas, :func:`foveated_points`, :class:`FourierFeatures`
  and the learned :class:`CoordinateEmbedding` sampled by :func:`sample_embedding`.
* :class:`InfinityGanCoordinates` — InfinityGAN (Lin et al., ICLR 2022, §3.1)
  ``[tanh(v), cos(pi u), sin(pi u)]`` on the local-latent grid: the jittered training
  meta-grid, test-time canvas windows, panorama mode (period = canvas width), torus (maps).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

# Official COCO-GAN snaps cos/sin values this close to zero to exactly 0, so that
# cos(pi/2) is 0 and not 6e-17.
CYLINDRICAL_SNAP = 1e-6


def normalized_grid(height: int, width: int, dtype="float32"):
    """(height, width, 2) grid of (x, y) = (column, row) positions, each ``linspace(-1, 1, n)``.

    This is CIPS's pixel coordinate system: ``x' = 2x/(W-1) - 1``, ``y' = 2y/(H-1) - 1``.
    A side of length 1 maps to 0.
    """
    xs = np.linspace(-1.0, 1.0, width) if width > 1 else np.zeros(1)
    ys = np.linspace(-1.0, 1.0, height) if height > 1 else np.zeros(1)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    return grid.astype(dtype)


def linear_position(index, num_positions: int):
    """Position ``-1 + 2 j / (n - 1)`` of index ``j`` on an n-point grid over [-1, 1].

    Indices outside 0 .. n-1 extrapolate with the same spacing (COCO-GAN
    beyond-boundary generation). A one-point grid sits at 0.
    """
    if num_positions == 1:
        return ops.zeros_like(ops.cast(index, "float32"))
    return -1.0 + 2.0 * ops.cast(index, "float32") / float(num_positions - 1)


def cylinder_angle(index, num_positions: int):
    """Horizontal angle ``theta = -1 + 2 j / n`` (in units of pi) of column ``j`` of a cycle of n columns.

    ``theta`` covers [-1, 1) so that the last column is one step before the first again.
    """
    return -1.0 + 2.0 * ops.cast(index, "float32") / float(num_positions)


def cylindrical(vertical, theta):
    """COCO-GAN's cylindrical coordinate ``[c_v, cos(pi theta), sin(pi theta)]`` (last axis)."""
    angle = math.pi * ops.cast(theta, "float32")
    cos, sin = ops.cos(angle), ops.sin(angle)
    cos = ops.where(ops.abs(cos) < CYLINDRICAL_SNAP, 0.0, cos)
    sin = ops.where(ops.abs(sin) < CYLINDRICAL_SNAP, 0.0, sin)
    return ops.stack([ops.cast(vertical, "float32"), cos, sin], axis=-1)


@dataclasses.dataclass(frozen=True)
class CocoGanCoordinates:
    """COCO-GAN's patch geometry and coordinates.

    The full image (``full_height`` x ``full_width``) is cut into micro patches of
    ``micro_size``; a macro patch is an N x N block of them (N = macro/micro). With
    ``R = full/micro`` micro positions per axis:

    * micro coordinate of micro index j: ``c'' = -1 + 2 j / (R - 1)``;
    * macro coordinate of macro index i: ``c' = -1 + 2 i / (R - N)``; its micro
      patches have indices ``i + t``, t = 0 .. N-1, and its top-left pixel is
      ``i * micro_size``.

    N2M2 (R = 4): micro {-1, -1/3, 1/3, 1}, macro {-1, 0, 1}. Extrapolation by s steps
    extends the indices to -s .. R-1+s (micro) and -s .. R-N+s (macro) with the same
    spacing. The cylindrical system replaces the horizontal coordinate by
    ``(cos(pi theta), sin(pi theta))``, ``theta = -1 + 2 j / R_w``: horizontal indices
    wrap modulo R_w and never extrapolate.
    """

    full_height: int
    full_width: int
    macro_size: int
    micro_size: int
    system: str = "euclidean"  # or "cylindrical"

    @property
    def coord_dim(self) -> int:
        return 3 if self.system == "cylindrical" else 2

    @property
    def micro_per_macro(self) -> int:
        """N: micro patches per macro patch side."""
        return self.macro_size // self.micro_size

    @property
    def micro_rows(self) -> int:
        return self.full_height // self.micro_size

    @property
    def micro_cols(self) -> int:
        return self.full_width // self.micro_size

    def macro_rows(self, extrapolation_steps: int = 0) -> int:
        """Number of macro positions along the vertical axis."""
        return self.micro_rows - self.micro_per_macro + 1 + 2 * extrapolation_steps

    def macro_cols(self, extrapolation_steps: int = 0) -> int:
        if self.system == "cylindrical":
            return self.micro_cols
        return self.micro_cols - self.micro_per_macro + 1 + 2 * extrapolation_steps

    # -- values ---------------------------------------------------------------------
    def micro_coords(self, row, col):
        """Coordinate of the micro patch at micro indices (row, col); shape (..., coord_dim)."""
        vertical = linear_position(row, self.micro_rows)
        if self.system == "cylindrical":
            return cylindrical(vertical, cylinder_angle(col, self.micro_cols))
        return ops.stack([vertical, linear_position(col, self.micro_cols)], axis=-1)

    def macro_coords(self, row, col):
        """Coordinate of the macro patch whose top-left micro patch has indices (row, col)."""
        n = self.micro_per_macro
        vertical = linear_position(row, self.micro_rows - n + 1)
        if self.system == "cylindrical":
            return cylindrical(vertical, cylinder_angle(col, self.micro_cols))
        return ops.stack([vertical, linear_position(col, self.micro_cols - n + 1)], axis=-1)

    def micro_coords_of_macro(self, row, col):
        """Coordinates of the N x N micro patches of macro patch (row, col): (..., N*N, coord_dim).

        Micro patches are listed row-major (the layout :func:`merge_patches` expects).
        """
        n = self.micro_per_macro
        offsets = np.arange(n)
        row = ops.expand_dims(ops.convert_to_tensor(row, "int32"), -1)
        col = ops.expand_dims(ops.convert_to_tensor(col, "int32"), -1)
        rows = ops.repeat(row + offsets, n, axis=-1)  # t_row major
        cols = ops.tile(col + offsets, [1] * (len(ops.shape(col)) - 1) + [n])
        if self.system == "cylindrical":
            cols = cols % self.micro_cols
        return self.micro_coords(rows, cols)

    def macro_pixel_offset(self, row, col):
        """Top-left pixel (row, col) of macro patch (row, col) in the full image.

        Equals ``(c' + 1) / 2 * (F - S_macro)`` per axis; cylindrical columns wrap.
        """
        col_offset = col * self.micro_size
        if self.system == "cylindrical":
            col_offset = col_offset % self.full_width
        return row * self.micro_size, col_offset

    def full_micro_grid(self, extrapolation_steps: int = 0):
        """(rows, cols, coord_dim) coordinates of every micro patch of the full image.

        With s extrapolation steps the grid gains s micro patches on each side (top,
        bottom, and for the Euclidean system left and right), so the image grows by
        ``2 s micro_size`` per extended axis.
        """
        s = extrapolation_steps
        rows = np.arange(-s, self.micro_rows + s)
        cols = np.arange(self.micro_cols) if self.system == "cylindrical" else np.arange(-s, self.micro_cols + s)
        row_idx, col_idx = np.meshgrid(rows, cols, indexing="ij")
        return self.micro_coords(row_idx, col_idx)


def merge_patches(patches, rows: int, cols: int):
    """COCO-GAN's merge function phi: (B * rows * cols, h, w, C) row-major patches -> (B, rows*h, cols*w, C)."""
    shape = ops.shape(patches)
    h, w, c = shape[1], shape[2], shape[3]
    grid = ops.reshape(patches, (-1, rows, cols, h, w, c))
    grid = ops.transpose(grid, (0, 1, 3, 2, 4, 5))
    return ops.reshape(grid, (-1, rows * h, cols * w, c))


def split_patches(images, rows: int, cols: int):
    """Inverse of :func:`merge_patches`: (B, rows*h, cols*w, C) -> (B * rows * cols, h, w, C)."""
    shape = ops.shape(images)
    h, w, c = shape[1] // rows, shape[2] // cols, shape[3]
    grid = ops.reshape(images, (-1, rows, h, cols, w, c))
    grid = ops.transpose(grid, (0, 1, 3, 2, 4, 5))
    return ops.reshape(grid, (-1, h, w, c))


def crop_patches(images, top, left, size: int, wrap_columns: bool = False):
    """COCO-GAN's crop function psi: cut a ``size`` x ``size`` patch at (top, left) from each image.

    ``top``/``left`` are (B,) integer tensors; with ``wrap_columns`` the columns are
    taken modulo the width (360 degree panoramas). Gather-based, so it runs on device
    and is differentiable with respect to the images.
    """
    shape = ops.shape(images)
    width = shape[2]
    steps = ops.arange(size, dtype="int32")
    top = ops.cast(top, "int32")
    left = ops.cast(left, "int32")
    row_idx = ops.expand_dims(top, -1) + steps  # (B, size)
    col_idx = ops.expand_dims(left, -1) + steps
    if wrap_columns:
        col_idx = col_idx % width
    rows = ops.take_along_axis(images, ops.reshape(row_idx, (-1, size, 1, 1)), axis=1)
    return ops.take_along_axis(rows, ops.reshape(col_idx, (-1, 1, size, 1)), axis=2)


# ---------------------------------------------------------------------------------------------
# CIPS (Anokhin et al., CVPR 2021, §3.1-3.2): pixel grids and tiles, cylinders, foveated point
# sets, Fourier features and the learned coordinate embedding (models.md §2.2-2.4, §2.8).
# CIPS coordinates are (x, y): channel 0 varies along the width, channel 1 along the height.
# ---------------------------------------------------------------------------------------------


def cips_axis(index, num_positions: int):
    """Position ``-1 + 2 j / (n - 1)`` of pixel j on an n-pixel axis (CIPS ``linspace(-1, 1, n)``).

    NumPy float64; indices outside 0 .. n-1 extrapolate with the same spacing. The same
    formula gives every tile of an image, so a tile's coordinates are bit-identical to the
    matching crop of the full grid.
    """
    index = np.asarray(index, np.float64)
    if num_positions == 1:
        return np.zeros_like(index)
    return -1.0 + index * (2.0 / (num_positions - 1))


def cips_tile_coords(top: int, left: int, height: int, width: int, full_height: int, full_width: int):
    """(height, width, 2) float32 (x, y) coordinates of the tile at pixel (top, left) of a full image.

    ``cips_tile_coords(0, 0, H, W, H, W)`` is the whole grid; a denser grid (super-resolution)
    is simply a larger ``full_height`` x ``full_width``.
    """
    xs = cips_axis(np.arange(left, left + width), full_width)
    ys = cips_axis(np.arange(top, top + height), full_height)
    return np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).astype("float32")


def cips_cylinder_coords(top: int, left: int, height: int, width: int, full_height: int, full_width: int):
    """(height, width, 3) float32 cylindrical coordinates ``[y, cos(pi theta), sin(pi theta)]`` (paper Fig. 11).

    Column j of a ``full_width`` panorama sits at ``theta = -1 + 2 j / full_width``, so column
    ``full_width`` is column 0 again: the panorama is cyclic horizontally. Columns beyond the
    width wrap around.
    """
    ys = cips_axis(np.arange(top, top + height), full_height)
    theta = -1.0 + 2.0 * np.arange(left, left + width, dtype=np.float64) / full_width  # cylinder_angle
    y_grid, t_grid = np.meshgrid(ys, theta, indexing="ij")
    return np.asarray(cylindrical(y_grid.astype("float32"), t_grid.astype("float32")), "float32")


def cips_serving_tile_coordinates(recipe: dict, tile_size, rows, cols):
    """(n, h, w, C) coordinates of tiles at grid indices (rows, cols), from a CIPS serving description.

    ``recipe`` is the description's ``tiling.inputs.coords`` entry: ``coordinate_system``
    ("euclidean" or "cylindrical") and the grid (``grid_height``, ``grid_width``) whose
    spacing the tiles use (the training size; a larger grid is a denser, super-resolved
    image). Register as ``export.tiling.COORDINATE_SYSTEMS["cips"]``.
    """
    h, w = (int(v) for v in tile_size)
    make = cips_cylinder_coords if recipe.get("coordinate_system") == "cylindrical" else cips_tile_coords
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
        ``cips_tile_coords(0, 0, H, W, H, W)[rows, cols]``.
    """
    grid = cips_tile_coords(0, 0, height, width, height, width).astype(np.float64)
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
class FourierFeatures(keras.layers.Layer):
    """CIPS Fourier features ``sin(c @ B + b)`` with a learned B (paper Eq. 3; official ``LFF``).

    Initialisation as the official 1x1 conv with ``is_first``: B ~ U(+-sqrt(9 / in)),
    b ~ U(+-1/sqrt(in)) (PyTorch's default conv bias), ``in`` = coordinate channels (2, or 3
    for cylinders). Input (..., in), output (..., units).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, coords_shape):
        in_features = int(coords_shape[-1])
        limit = math.sqrt(9.0 / in_features)
        self.kernel = self.add_weight(shape=(in_features, self.units), name="kernel",
                                      initializer=keras.initializers.RandomUniform(-limit, limit))
        bias_limit = 1.0 / math.sqrt(in_features)
        self.bias = self.add_weight(shape=(self.units,), name="bias",
                                    initializer=keras.initializers.RandomUniform(-bias_limit, bias_limit))

    def call(self, coords):
        return ops.sin(ops.matmul(coords, self.kernel) + self.bias)

    def compute_output_shape(self, coords_shape):
        return tuple(coords_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tfcoord")
class CoordinateEmbedding(keras.layers.Layer):
    """CIPS learned coordinate embedding: a (size, size, channels) table sampled at continuous coordinates.

    The official ``ConstantInput`` (N(0, 1) init). ``call(lookup_coords)`` samples it with
    :func:`sample_embedding` (``sampling`` "aligned" or "official", ``wrap_x`` for cylinders);
    ``table_for(batch)`` returns the raw table, which the official training path uses on the
    native grid.
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

    def get_config(self):
        return {**super().get_config(), "size": self.size, "channels": self.channels,
                "sampling": self.sampling, "wrap_x": self.wrap_x}


# ---------------------------------------------------------------------------------------------
# InfinityGAN (Lin et al., ICLR 2022, §3.1; official coord_handler.py, models.md §4.3)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InfinityGanCoordinates:
    """InfinityGAN's coordinates of the local-latent grid, ``[tanh(v), cos(pi u), sin(pi u)]``.

    v is vertical (rows), u horizontal (columns); the paper writes
    ``c = (tanh(i_y), cos(i_x / T), sin(i_x / T))``. The vertical coordinate saturates
    (sky stays up, ground down), the horizontal one is periodic (scenery repeats sideways).

    * Training meta-grid: ``meta_rows`` x ``meta_cols`` = (window + V) x round(window / 0.25)
      = 45 x 140 for the paper, ``v_raw(i) = step * (i - (meta_rows - 1) / 2)`` with
      ``step = 2 * cut / (ts_input_size + V - 1)`` = 0.3 (so v_raw in [-6.6, 6.6]) and
      ``u(j) = 2 j / (meta_cols - 1) - 1``. Each sample takes a window x window crop at row
      ``row_start`` in 0..V-1 and column ``col_start`` in 0..meta_cols-1 (columns wrap), plus a
      uniform jitter of +-half a step on v_raw and on u (quirk I5: the official code jitters the
      cos and the sin channel independently, ``jitter="official_per_channel"``).
    * Test time (no jitter): for a canvas of R latent rows, ``v_raw(i) = step * (i - (R-1)/2)``
      (vertically centred) and ``u(j) = 2 j / (meta_cols - 1) - 1`` (period ``meta_cols - 1``
      columns, starting at -1); in panorama mode ``u(j) = 2 j / P - 1`` with P the canvas width,
      so a 360 degree canvas closes on itself.
    * ``system="torus"`` (the maps configuration): ``[cos pi v, sin pi v, cos pi u, sin pi u]`` with
      ``v(i) = 2 i / (meta_cols - 1) - 1`` on a meta_cols x meta_cols meta-grid that wraps on both axes.
    """

    window: int = 35  # local-latent window side: ts_input_size + 2 * structure padding
    ts_input_size: int = 11
    vertical_positions: int = 10  # V, coord_vert_sample_size
    horizontal_occupy_ratio: float = 0.25
    vertical_cut: float = 3.0  # coord_vert_cut_pt
    system: str = "landscape"  # or "torus"
    jitter: str = "shared"  # or "official_per_channel" (quirk I5)

    @property
    def coord_dim(self) -> int:
        return 4 if self.system == "torus" else 3

    @property
    def meta_cols(self) -> int:
        return int(round(self.window / self.horizontal_occupy_ratio))

    @property
    def meta_rows(self) -> int:
        return self.meta_cols if self.system == "torus" else self.window + self.vertical_positions

    @property
    def row_starts(self) -> int:
        """Number of training window rows (V; every row of the torus)."""
        return self.meta_rows if self.system == "torus" else self.vertical_positions

    @property
    def vertical_step(self) -> float:
        """Spacing of v_raw between latent rows (0.3 for the paper)."""
        return 2.0 * self.vertical_cut / (self.ts_input_size + self.vertical_positions - 1)

    @property
    def horizontal_step(self) -> float:
        return 2.0 / (self.meta_cols - 1)

    # -- raw (pre-activation) values ----------------------------------------------------------
    def vertical_raw(self, rows, total_rows: int):
        """v_raw of latent rows ``rows`` of a grid with ``total_rows`` rows (centred)."""
        if self.system == "torus":
            return ops.cast(rows, "float32") * self.horizontal_step - 1.0
        return (ops.cast(rows, "float32") - (total_rows - 1) / 2.0) * self.vertical_step

    def horizontal_raw(self, cols, period: int | None = None):
        """u of latent columns ``cols``: ``2 j / (meta_cols - 1) - 1``, or ``2 j / period - 1``."""
        scale = self.horizontal_step if period is None else 2.0 / period
        return ops.cast(cols, "float32") * scale - 1.0

    def encode(self, vertical, horizontal_cos, horizontal_sin=None):
        """Raw values -> coordinate channels (last axis). ``horizontal_sin`` defaults to the cos input.

        Landscape: ``[tanh(v), cos(pi u_c), sin(pi u_s)]``; torus: ``[cos pi v, sin pi v, cos pi u, sin pi u]``
        (for the torus ``vertical`` may be a pair (v_cos, v_sin) of raw inputs).
        """
        if horizontal_sin is None:
            horizontal_sin = horizontal_cos
        if self.system == "torus":
            v_cos, v_sin = vertical if isinstance(vertical, tuple) else (vertical, vertical)
            return ops.stack([ops.cos(math.pi * v_cos), ops.sin(math.pi * v_sin),
                              ops.cos(math.pi * horizontal_cos), ops.sin(math.pi * horizontal_sin)], axis=-1)
        return ops.stack([ops.tanh(vertical), ops.cos(math.pi * horizontal_cos),
                          ops.sin(math.pi * horizontal_sin)], axis=-1)

    # -- training ------------------------------------------------------------------------------
    def training_coords(self, row_start, col_start, jitter):
        """Coordinates of training windows: (B, window, window, coord_dim).

        Args:
            row_start, col_start: (B,) integer window origins on the meta-grid
                (``0 <= row_start < row_starts``, ``0 <= col_start < meta_cols``).
            jitter: (B, 4) uniform draws in [-1, 1], scaled here to +-half a grid step:
                column 0 jitters v (the torus' cos-v channel), 1 jitters u (cos channel), and with
                ``jitter="official_per_channel"`` 2 jitters the sin-u channel and 3 the torus'
                sin-v channel independently (quirk I5); otherwise columns 2 and 3 are unused.
        """
        n = self.window
        offsets = ops.arange(n, dtype="int32")
        rows = ops.expand_dims(ops.cast(row_start, "int32"), -1) + offsets  # (B, n)
        cols = (ops.expand_dims(ops.cast(col_start, "int32"), -1) + offsets) % self.meta_cols
        if self.system == "torus":
            rows = rows % self.meta_rows
        half_v = (self.horizontal_step if self.system == "torus" else self.vertical_step) / 2.0
        half_u = self.horizontal_step / 2.0
        jitter = ops.cast(jitter, "float32")
        per_channel = self.jitter == "official_per_channel"
        v = self.vertical_raw(rows, self.meta_rows) + ops.expand_dims(jitter[:, 0] * half_v, -1)  # (B, n)
        u = self.horizontal_raw(cols) + ops.expand_dims(jitter[:, 1] * half_u, -1)
        u_sin = self.horizontal_raw(cols) + ops.expand_dims(jitter[:, 2] * half_u, -1) if per_channel else u
        v_rows = ops.expand_dims(v, 2) * ops.ones((1, 1, n))  # (B, n, n)
        u_cols = ops.expand_dims(u, 1) * ops.ones((1, n, 1))
        u_sin_cols = ops.expand_dims(u_sin, 1) * ops.ones((1, n, 1))
        if self.system == "torus":
            v_sin = self.vertical_raw(rows, self.meta_rows) + ops.expand_dims(jitter[:, 3] * half_v, -1) \
                if per_channel else v
            v_sin_rows = ops.expand_dims(v_sin, 2) * ops.ones((1, 1, n))
            return self.encode((v_rows, v_sin_rows), u_cols, u_sin_cols)
        return self.encode(v_rows, u_cols, u_sin_cols)

    def fake_ac_targets(self, row_start, col_start):
        """Targets of D's coordinate head for generated windows: (B, 3) = [2 r / (V-1) - 1, cos, sin]."""
        vertical = 2.0 * ops.cast(row_start, "float32") / max(1, self.row_starts - 1) - 1.0
        angle = math.pi * self.horizontal_raw(col_start)
        return ops.stack([vertical, ops.cos(angle), ops.sin(angle)], axis=-1)

    # -- test time -----------------------------------------------------------------------------
    def canvas_coords(self, row_start: int, num_rows: int, col_start: int, num_cols: int, total_rows: int,
                      period: int | None = None) -> np.ndarray:
        """Coordinates of rows ``row_start..+num_rows`` and columns ``col_start..+num_cols`` of a canvas
        of ``total_rows`` latent rows, (num_rows, num_cols, coord_dim) float32 NumPy.

        Every value depends only on its absolute canvas position, so the windows of two
        overlapping patches agree exactly. ``period`` (panorama mode) makes u periodic in the
        canvas width: column j and j + period get the same coordinate.
        """
        return infinitygan_canvas_coords(self.system, self.vertical_step, self.meta_cols - 1, row_start, num_rows,
                                         col_start, num_cols, total_rows, period)


def infinitygan_canvas_coords(system: str, vertical_step: float, horizontal_period: int, row_start: int,
                              num_rows: int, col_start: int, num_cols: int, total_rows: int,
                              period: int | None = None) -> np.ndarray:
    """:meth:`InfinityGanCoordinates.canvas_coords` from the numbers a serving description carries
    (``coordinate_system``, ``vertical_step``, ``horizontal_period`` = meta_cols - 1), so that
    export/tiling.py builds exactly the library's coordinates without the model's config."""
    rows = np.arange(row_start, row_start + num_rows, dtype=np.float64)
    cols = np.arange(col_start, col_start + num_cols, dtype=np.float64)
    if period is not None:
        cols = np.mod(cols, period)
    horizontal_step = 2.0 / horizontal_period
    if system == "torus":
        v = rows * horizontal_step - 1.0
        v_channels = [np.cos(np.pi * v), np.sin(np.pi * v)]
    else:
        v_channels = [np.tanh((rows - (total_rows - 1) / 2.0) * vertical_step)]
    u = cols * (horizontal_step if period is None else 2.0 / period) - 1.0
    channels = [np.repeat(c[:, None], num_cols, axis=1) for c in v_channels]
    channels += [np.repeat(f(np.pi * u)[None, :], num_rows, axis=0) for f in (np.cos, np.sin)]
    return np.stack(channels, axis=-1).astype(np.float32)


# -- GAWWN (Reed et al., NeurIPS 2016; models.md §3.2) -------------------------------------------
# Where GAWWN draws is given in fractions of the image (origin top left, x to the right, y down):
# boxes as (ymin, xmin, ymax, xmax) inside the networks and the serving signatures (the data
# pipeline's box order), (x, y, w, h) on the command line and in the JSONL annotations;
# keypoints as (x, y, visibility) rows. A box becomes the spatial transformer's affine map in
# tfcoord.layers.box_warp.box_to_affine; a keypoint becomes one cell of a 16 x 16 map here.


def gawwn_box_corners(x, y, w, h):
    """(x, y, w, h) fractions -> (ymin, xmin, ymax, xmax), the order GAWWN's networks take."""
    return y, x, y + h, x + w


def gawwn_map_cell(value, size: int = 16):
    """The 0-based cell of a fraction on a ``size``-cell axis: ``clamp(floor(size * v + 0.5), 1, size) - 1``.

    The official loader rounds 1-based pixels of the 16 x 16 map, so the cell borders sit half
    a cell off the pixel grid; values at 0 and 1 land in the first and last cell.
    """
    return ops.cast(ops.clip(ops.floor(size * value + 0.5), 1.0, float(size)) - 1.0, "int32")
