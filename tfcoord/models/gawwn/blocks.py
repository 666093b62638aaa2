"""Building blocks of the GAWWN networks, with the official initialisation (models.md §3.6).

* Convolutions and transposed convolutions: weights N(0, 0.02), biases 0 (Torch
  ``SpatialConvolution`` has a bias even before batch norm; the parameter counts of
  models.md §3.10 include it).
* Batch norm: synchronised across replicas (tensorflow.md §7), momentum 0.9 and epsilon
  1e-5 (Torch momentum 0.1), gamma N(1, 0.02), beta 0.
* Linear layers keep Torch's default init, weight and bias U(+-1/sqrt(fan_in)) (quirk W3).

Torch padding maps onto Keras as: conv/deconv (k4, s2, p1) = ``padding="same"`` (even
sizes); (k3, s1, p1) = ``"same"``; (k4, s1, p0) = ``"valid"``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tfcoord.layers.transposed_conv import LoweredConv2DTranspose
from tfcoord.models.gawwn.coordinates import map_cell

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv(filters, kernel, stride=1, padding="same", name=None):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=name,
                               kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
                               bias_initializer="zeros")


def deconv(filters, kernel, stride=1, padding="same", name=None, lowering=None):
    """Transposed conv; ``lowering`` "matmul" / "subpixel" computes it as ordinary ops (same variables)."""
    options = dict(strides=stride, padding=padding, name=name, bias_initializer="zeros",
                   kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02))
    if lowering is not None:
        return LoweredConv2DTranspose(filters, kernel, lowering=lowering, **options)
    return keras.layers.Conv2DTranspose(filters, kernel, **options)


def batch_norm(name=None):
    # Synchronised statistics are TensorFlow-only (P20); other backends train on one device.
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=keras.backend.backend() == "tensorflow",
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), beta_initializer="zeros", name=name)


def linear(units, fan_in: int, name=None):
    """``nn.Linear`` with Torch's default init U(+-1/sqrt(fan_in)) for weight and bias."""
    limit = 1.0 / math.sqrt(fan_in)
    return keras.layers.Dense(units, name=name, kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
                              bias_initializer=keras.initializers.RandomUniform(-limit, limit))


def tile_vector(vector, size: int):
    """(B, C) -> (B, size, size, C): Torch's ``Replicate`` twice."""
    return ops.tile(ops.expand_dims(ops.expand_dims(vector, 1), 1), (1, size, size, 1))


def keypoint_maps(keypoints, size: int = 16):
    """K binary (size x size) maps, (B, size, size, K), from keypoints (B, K, 3) = (x, y, visibility).

    A visible part (v > 0.1) sets one cell: ``row = clamp(floor(size * y + 0.5), 1, size) - 1``,
    likewise for the column (models.md §3.2; the official loader rounds 1-based pixels).
    """
    x, y, visibility = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]
    # One-hot rows and columns as comparisons with the cell indices: the same values as ops.one_hot, whose
    # int64 indices TFLite's GPU delegate cannot cast.
    cells = ops.arange(size, dtype="int32")
    rows = ops.cast(ops.equal(ops.expand_dims(map_cell(y, size), -1), cells), keypoints.dtype)  # (B, K, size)
    cols = ops.cast(ops.equal(ops.expand_dims(map_cell(x, size), -1), cells), keypoints.dtype)
    maps = ops.expand_dims(rows, -1) * ops.expand_dims(cols, -2)  # (B, K, size, size)
    maps = maps * ops.expand_dims(ops.expand_dims(ops.cast(visibility > 0.1, maps.dtype), -1), -1)
    return ops.transpose(maps, (0, 2, 3, 1))
