"""Generic coordinate primitives shared by the models: grids, cylinders, patches, Fourier features.

Coordinates are trailing channels of NHWC tensors (or the last axis of a (..., D)
tensor). Functions here use ``keras.ops`` so they accept NumPy arrays and tensors of
any backend; integer index arguments may be Python ints, NumPy arrays or tensors.

* :func:`normalized_grid`, :func:`linear_position` — pixel centres mapped linearly onto [-1, 1].
* :func:`cylinder_angle`, :func:`cylindrical` — the cylinder ``[v, cos(pi theta), sin(pi theta)]``
  of 360 degree panoramas.
* :func:`merge_patches`, :func:`split_patches`, :func:`crop_patches` — patches of an image.
* :class:`FourierFeatures` — ``sin(c @ B + b)`` of coordinates.

Each model's own coordinate system lives in its folder, ``tfcoord/models/<model>/``
(``coordinates.py``, or ``geometry.py``).
"""

from __future__ import annotations

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
