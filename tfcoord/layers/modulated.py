"""Modulated fully connected layers: StyleGAN2 weight (de)modulation for 1x1 layers (CIPS "ModFC").

StyleGAN2 (Karras et al., CVPR 2020, Eq. 1-3) modulates the weights of each sample,
``w'_io = s_i w_io`` and demodulates ``w''_io = w'_io / sqrt(sum_i w'_io^2 + eps)``.
For a 1x1 layer this equals scaling the *input* and the *output* (tensorflow.md §5.1)::

    y = ((x * s) @ W) * d,    d_o = rsqrt(sum_i s_i^2 W_io^2 + 1e-8)

so no per-sample weight tensor (B, I, O) is ever built: one matmul of the activations
and one tiny (B, I) @ (I, O) matmul for ``d``. The style may also vary per pixel
(CIPS pixel-wise style interpolation, models.md §2.8): ``s`` then has the activations'
leading shape and ``d`` is computed per pixel, which is exact for 1x1 layers.

Weights follow the official layout after conversion: ``kernel`` (I, O) stored N(0, 1) and
scaled by ``1/sqrt(I)`` at run time; ``modulation_kernel`` (S, I) and ``modulation_bias`` (I)
form the official ``modulation`` EqualLinear (N(0, 1) weights scaled by ``1/sqrt(S)``, bias
initialised to 1).
"""

from __future__ import annotations

import math

import keras
from keras import ops


def expand_like(v, x):
    """A per-sample (B, C) vector as (B, 1, ..., 1, C) to broadcast against ``x`` of higher rank
    (``expand_dims``, not ``[:, None]``: P5); per-pixel values (same rank as ``x``) are returned as they are."""
    for _ in range(len(x.shape) - len(v.shape)):
        v = ops.expand_dims(v, 1)
    return v


@keras.saving.register_keras_serializable(package="tfcoord")
class ModulatedDense(keras.layers.Layer):
    """Fused modulated fully connected layer ("ModFC"), optionally demodulated.

    Args:
        units: output channels O.
        demodulate: divide each output channel by the norm of its modulated weights.

    ``call(x, style, input_scale=None)``: ``x`` (B, ..., I) — a (B, H, W, I) pixel grid or a
    (B, N, I) point set; ``style`` (B, S) per sample or (B, ..., S) per pixel (the leading shape
    of ``x``); ``input_scale`` an optional per-channel factor of ``x`` (see :meth:`modulate`).
    Returns (B, ..., O).

    Example::

        layer = ModulatedDense(512)
        y = layer(features, style)          # (B, H, W, 1024), (B, 512) -> (B, H, W, 512)
    """

    def __init__(self, units, demodulate=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.demodulate = demodulate

    def build(self, x_shape, style_shape, input_scale_shape=None):
        in_channels, style_dim = int(x_shape[-1]), int(style_shape[-1])
        self.scale = 1.0 / math.sqrt(in_channels)
        self.kernel = self.add_weight(shape=(in_channels, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        # The affine map A: style -> s, an EqualLinear (lr_mul 1) whose bias starts at 1.
        self.modulation_scale = 1.0 / math.sqrt(style_dim)
        self.modulation_kernel = self.add_weight(shape=(style_dim, in_channels), name="modulation_kernel",
                                                 initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.modulation_bias = self.add_weight(shape=(in_channels,), name="modulation_bias", initializer="ones")

    def build_for(self, in_channels: int, style_dim: int):
        """Build with explicit sizes (the Keras idiom when the caller knows them)."""
        self.build((None, in_channels), (None, style_dim))

    def styles(self, style):
        """The per-input-channel scales ``s = A(style)``: (..., S) -> (..., I)."""
        return ops.matmul(style, self.modulation_kernel * self.modulation_scale) + self.modulation_bias

    def modulated_weight_norm(self, s):
        """``d = rsqrt(s^2 @ (W/sqrt(I))^2 + 1e-8)`` for styles ``s`` (..., I) -> (..., O).

        Summed in float32 under mixed precision (float16 squares overflow past 256, bfloat16 sums lose
        digits), returned in the compute dtype.
        """
        weight = ops.cast(self.kernel, "float32") * self.scale
        d = ops.rsqrt(ops.matmul(ops.square(ops.cast(s, "float32")), ops.square(weight)) + 1e-8)
        return ops.cast(d, s.dtype)

    def modulate(self, x, style, input_scale=None):
        """The parts of the layer: ``((x * input_scale * s) @ W / sqrt(I), d)``, d None without demodulation.

        ``input_scale`` is an optional per-channel factor of ``x`` ((B, I), or per pixel) folded
        into the style scaling, so a caller that keeps its activations pre-scaled saves a pass
        over them; d depends on ``s`` only. The layer's output is the first part times d.
        """
        s = self.styles(style)
        factor = s if input_scale is None else s * input_scale
        y = ops.matmul(x * expand_like(factor, x), self.kernel * self.scale)
        return y, (self.modulated_weight_norm(s) if self.demodulate else None)

    def call(self, x, style, input_scale=None):
        y, d = self.modulate(x, style, input_scale)
        return y if d is None else y * expand_like(d, y)

    def compute_output_shape(self, x_shape, style_shape, input_scale_shape=None):
        return tuple(x_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "demodulate": self.demodulate}


@keras.saving.register_keras_serializable(package="tfcoord")
class ToRGB(keras.layers.Layer):
    """StyleGAN2 ToRGB for 1x1 layers: modulated, *not* demodulated, to 3 channels, plus bias and the skip.

    ``call(x, style, skip=None) -> x' @ W + b (+ skip)``; the official CIPS sums the ToRGB
    outputs of all stages (no upsampling).
    """

    def __init__(self, channels=3, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = ModulatedDense(channels, demodulate=False, name="conv")

    def build(self, x_shape, style_shape, skip_shape=None, input_scale_shape=None):
        self.conv.build(x_shape, style_shape)
        self.bias = self.add_weight(shape=(self.channels,), name="bias", initializer="zeros")

    def build_for(self, in_channels: int, style_dim: int):
        self.build((None, in_channels), (None, style_dim))

    def call(self, x, style, skip=None, input_scale=None):
        y = self.conv(x, style, input_scale) + self.bias
        return y if skip is None else y + skip

    def compute_output_shape(self, x_shape, style_shape=None, skip_shape=None, input_scale_shape=None):
        return tuple(x_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
