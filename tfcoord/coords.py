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
"""

from __future__ import annotations

import dataclasses
import math

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
