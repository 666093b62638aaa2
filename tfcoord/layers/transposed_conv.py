"""Transposed convolutions computed as a matmul or as a sub-pixel convolution.

Two transposed convolutions of DCGAN-style generators run badly on mobile CPU kernels
(XNNPACK's deconvolution, timed on this CPU): the projection of a 1 x 1 map
to k x k (``valid``; 4-5x slower than the equal matmul) and the last k = 4, stride-2 layer
to 3 RGB channels (5x slower than the equal sub-pixel convolution). Both are linear maps
that ordinary ops compute exactly, so :class:`LoweredConv2DTranspose` keeps the variables
of ``keras.layers.Conv2DTranspose`` (kernel ``(k, k, filters, in)``, bias; checkpoints and
converted weights load unchanged) and computes the same numbers (up to float round-off) as:

* ``"matmul"``: ``valid`` padding on a 1 x 1 input: ``y = x @ reshape(kernel)``, i.e. each
  output pixel ``(i, j)`` is ``sum_c x_c kernel[i, j, :, c]``;
* ``"subpixel"``: k = 4, stride 2, ``same`` padding (output 2n): a 3 x 3 ``same``
  convolution to ``4 * filters`` channels followed by depth-to-space (Shi et al., CVPR
  2016). With ``out[o] = sum_{i, t: o = 2 i + t - 1} x[i] K[t]``, output row ``2m`` reads
  input rows ``m - 1, m`` through taps ``3, 1`` and row ``2m + 1`` reads ``m, m + 1``
  through taps ``2, 0``: the 3 x 3 window ``m - 1 .. m + 1`` with one zero tap per phase.
"""

from __future__ import annotations

import itertools

import numpy as np
import keras
from keras import ops

# Kernel tap feeding output phase d (0: even rows, 1: odd rows) from window row a (input m + a - 1).
_SUBPIXEL_TAPS = {0: (3, 1, None), 1: (None, 2, 0)}
LOWERINGS = ("matmul", "subpixel")


def _subpixel_index_table() -> np.ndarray:
    """(3, 3, 2, 2) indices into the 16 flattened 4 x 4 taps (16 = a zero tap) of each window row/column and phase."""
    table = np.full((3, 3, 2, 2), 16, np.int32)
    for a, b, dy, dx in itertools.product(range(3), range(3), range(2), range(2)):
        ty, tx = _SUBPIXEL_TAPS[dy][a], _SUBPIXEL_TAPS[dx][b]
        if ty is not None and tx is not None:
            table[a, b, dy, dx] = ty * 4 + tx
    return table


_SUBPIXEL_INDEX = _subpixel_index_table()  # a constant: built once, not on every call


@keras.saving.register_keras_serializable(package="tfcoord")
class LoweredConv2DTranspose(keras.layers.Conv2DTranspose):
    """``Conv2DTranspose`` computed as a matmul (``lowering="matmul"``) or a sub-pixel conv (``"subpixel"``).

    Args:
        lowering: ``"matmul"`` (``padding="valid"``, stride 1, applied to 1 x 1 inputs) or
            ``"subpixel"`` (``kernel_size=4``, ``strides=2``, ``padding="same"``).
        Others: as ``keras.layers.Conv2DTranspose`` (channels last, no dilation).

    Example:
        >>> layer = LoweredConv2DTranspose(8, 4, strides=2, padding="same", lowering="subpixel")
        >>> layer(ops.ones((2, 16, 16, 4))).shape
        (2, 32, 32, 8)
    """

    def __init__(self, filters, kernel_size, lowering: str = "subpixel", **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if lowering not in LOWERINGS:
            raise ValueError(f"lowering must be one of {LOWERINGS}, got {lowering!r}")
        if self.data_format != "channels_last" or any(rate != 1 for rate in self.dilation_rate):
            raise ValueError("LoweredConv2DTranspose supports channels_last without dilation only")
        if lowering == "subpixel" and (tuple(self.kernel_size) != (4, 4) or tuple(self.strides) != (2, 2)
                                       or self.padding != "same"):
            raise ValueError("the subpixel lowering needs kernel_size=4, strides=2, padding='same', "
                             f"got {self.kernel_size}, {self.strides}, {self.padding!r}")
        if lowering == "matmul" and (tuple(self.strides) != (1, 1) or self.padding != "valid"):
            raise ValueError(f"the matmul lowering needs strides=1, padding='valid', got {self.strides}, "
                             f"{self.padding!r}")
        self.lowering = lowering

    def build(self, input_shape):
        if self.lowering == "matmul" and tuple(input_shape[1:3]) != (1, 1):
            raise ValueError(f"the matmul lowering projects 1 x 1 inputs, got spatial size {tuple(input_shape[1:3])}")
        super().build(input_shape)

    def call(self, inputs):
        kernel_h, kernel_w, filters, in_channels = self.kernel.shape
        if self.lowering == "matmul":
            # (in, k, k, out): row c holds every output pixel's weight on input channel c.
            weights = ops.reshape(ops.transpose(self.kernel, (3, 0, 1, 2)), (in_channels, -1))
            outputs = ops.reshape(ops.matmul(ops.reshape(inputs, (-1, in_channels)), weights),
                                  (-1, kernel_h, kernel_w, filters))
        else:
            taps = ops.reshape(self.kernel, (kernel_h * kernel_w, filters, in_channels))
            taps = ops.concatenate([taps, ops.zeros((1, filters, in_channels), taps.dtype)], axis=0)
            weights = ops.take(taps, _SUBPIXEL_INDEX, axis=0)  # (3, 3, 2, 2, out, in)
            weights = ops.reshape(ops.transpose(weights, (0, 1, 5, 2, 3, 4)), (3, 3, in_channels, 4 * filters))
            phases = ops.conv(inputs, weights, padding="same")  # (B, h, w, (dy, dx, out))
            height = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]
            width = inputs.shape[2] if inputs.shape[2] is not None else ops.shape(inputs)[2]
            phases = ops.reshape(phases, (-1, height, width, 2, 2, filters))
            outputs = ops.reshape(ops.transpose(phases, (0, 1, 3, 2, 4, 5)), (-1, 2 * height, 2 * width, filters))
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "lowering": self.lowering}
