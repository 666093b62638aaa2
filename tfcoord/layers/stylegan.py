"""StyleGAN2 building blocks shared by CIPS and InfinityGAN (Karras et al., CVPR 2020).

Equalised learning rate (tensorflow.md §4): weights are stored as drawn (N(0, 1) / lr_mul)
and scaled by ``lr_mul / sqrt(fan_in)`` in ``call``; biases are stored raw and scaled by
``lr_mul``. This keeps official PyTorch checkpoints a 1:1 copy and reproduces the
optimisation dynamics of the official code.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

SQRT2 = math.sqrt(2.0)


def fir_filter(x, taps, pad: tuple[int, int] = (0, 0), gain: float = 1.0):
    """FIR filter ``gain * outer(taps, taps) / sum(taps)^2`` of NHWC ``x`` after zero padding ``pad``
    on each spatial side (StyleGAN2 ``upfirdn2d`` without up/down sampling).

    The kernel is symmetric, so upfirdn2d's kernel flip does not matter. One depthwise
    ``valid`` convolution with a constant kernel: faster than shifted slices in TF and in
    TFLite (one XNNPACK op), and differentiable twice (R1).
    """
    x = ops.pad(x, [[0, 0], [pad[0], pad[1]], [pad[0], pad[1]], [0, 0]])
    kernel = gain * np.outer(taps, taps) / float(sum(taps)) ** 2
    kernel = np.tile(kernel[:, :, None, None], (1, 1, int(x.shape[-1]), 1)).astype("float32")
    return ops.depthwise_conv(x, ops.convert_to_tensor(kernel, dtype=x.dtype), strides=1, padding="valid")


def fused_leaky_relu(x, bias=None, negative_slope: float = 0.2, scale: float = SQRT2):
    """``leaky_relu(x + bias, 0.2) * sqrt(2)`` (StyleGAN2's FusedLeakyReLU, two ops)."""
    if bias is not None:
        x = x + bias
    return ops.leaky_relu(x, negative_slope) * scale


@keras.saving.register_keras_serializable(package="tfcoord")
class PixelNorm(keras.layers.Layer):
    """``x * rsqrt(mean(x^2, last axis) + 1e-8)`` (StyleGAN mapping-network input normalisation)."""

    def call(self, x):
        # The statistic in float32 under mixed precision (a normalisation statistic; float16 squares overflow).
        x32 = ops.cast(x, "float32")
        return ops.cast(x32 * ops.rsqrt(ops.mean(ops.square(x32), axis=-1, keepdims=True) + 1e-8), x.dtype)


@keras.saving.register_keras_serializable(package="tfcoord")
class EqualLinear(keras.layers.Layer):
    """Fully connected layer with equalised learning rate, optionally followed by FusedLeakyReLU.

    ``y = x @ (W * lr_mul / sqrt(in)) + b * lr_mul``; W stored N(0, 1) / lr_mul, b stored
    ``bias_init / lr_mul`` so that the effective initial bias is ``bias_init``.
    """

    def __init__(self, units, use_bias=True, bias_init=0.0, lr_mul=1.0, activation=None, **kwargs):
        super().__init__(**kwargs)
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"activation must be None or 'fused_lrelu', got {activation!r}")
        self.units, self.use_bias, self.bias_init, self.lr_mul = units, use_bias, bias_init, lr_mul
        self.activation = activation

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.scale = self.lr_mul / math.sqrt(fan_in)
        self.kernel = self.add_weight(shape=(fan_in, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_mul))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), name="bias",
                                        initializer=keras.initializers.Constant(self.bias_init / self.lr_mul))

    def call(self, x):
        y = ops.matmul(x, self.kernel * self.scale)
        bias = self.bias * self.lr_mul if self.use_bias else None
        if self.activation == "fused_lrelu":
            return fused_leaky_relu(y, bias)
        return y + bias if bias is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "bias_init": self.bias_init, "lr_mul": self.lr_mul, "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfcoord")
class MappingNetwork(keras.layers.Layer):
    """z -> w: PixelNorm then ``num_layers`` EqualLinear(lr_mul 0.01, FusedLeakyReLU) (StyleGAN2 §2)."""

    def __init__(self, style_dim=512, num_layers=8, lr_mul=0.01, **kwargs):
        super().__init__(**kwargs)
        self.style_dim, self.num_layers, self.lr_mul = style_dim, num_layers, lr_mul
        self.norm = PixelNorm()
        self.dense_layers = [EqualLinear(style_dim, lr_mul=lr_mul, activation="fused_lrelu", name=f"dense_{i}")
                             for i in range(num_layers)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = shape[:-1] + (self.style_dim,)

    def call(self, z):
        w = self.norm(z)
        for layer in self.dense_layers:
            w = layer(w)
        return w

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.style_dim,)

    def get_config(self):
        return {**super().get_config(), "style_dim": self.style_dim, "num_layers": self.num_layers,
                "lr_mul": self.lr_mul}


@keras.saving.register_keras_serializable(package="tfcoord")
class NoiseInjection(keras.layers.Layer):
    """``x + strength * noise`` with one learned scalar strength (initialised 0).

    The noise is an explicit (B, H, W, 1) argument, so tiles of one canvas can share
    position-indexed noise and exported signatures stay deterministic; ``None`` adds nothing.
    """

    def build(self, input_shape):
        self.strength = self.add_weight(shape=(), initializer="zeros", name="strength")

    def call(self, x, noise=None):
        return x if noise is None else x + self.strength * noise

    def compute_output_shape(self, input_shape):
        return input_shape
