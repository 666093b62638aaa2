"""COCO-GAN's coordinate system (Lin et al., ICCV 2019, §3.2): micro and macro patch coordinates.

Euclidean or cylindrical, with beyond-boundary extrapolation steps. Coordinate order is
(vertical, horizontal): dim 0 is the row axis, as in the official code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from keras import ops

from tfcoord.coords import cylinder_angle, cylindrical, linear_position


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

        Micro patches are listed row-major (the layout :func:`tfcoord.coords.merge_patches` expects).
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


def tile_coordinates(recipe: dict, tile_size, rows, cols, plan=None):
    """Micro coordinates of tile grid indices (rows, cols) from a serving description's recipe
    (``micro_rows``, ``micro_cols``, ``coordinate_system``): (n, coord_dim) float32."""
    # Micro coordinates depend only on the number of micro positions per axis; count in patches.
    geometry = CocoGanCoordinates(recipe["micro_rows"], recipe["micro_cols"], 1, 1, recipe["coordinate_system"])
    return np.asarray(geometry.micro_coords(rows, cols), "float32")
