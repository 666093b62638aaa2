"""Building blocks of the GAWWN networks, with the official initialisation (models.md §3.6).

* Convolutions and transposed convolutions: weights N(0, 0.02), biases 0 (Torch
  ``SpatialConvolution`` has a bias even before batch norm; the parameter counts of
  models.md §3.10 include it).
* Batch norm: synchronised across replicas (tensorflow.md §7), momentum 0.9 and epsilon
  1e-5 (Torch momentum 0.1), gamma N(1, 0.02), beta 0.
* Linear layers keep Torch's default init, weight and bias U(+-1/sqrt(fan_in)) (quirk W3).

Torch padding maps onto Keras as: conv/deconv (k4, s2, p1) = ``padding="same"`` (even
sizes); (k3, s1, p1) = ``"same"``; (k4, s1, p0) = ``"valid"``.

The networks are made of :class:`ConvUnit` and :class:`DenseUnit` (Torch's layer, BN,
activation triple) and :class:`Bottleneck` (the official residual block). Their constructor
arguments are plain numbers and strings, from which Keras 3 writes ``get_config`` itself.
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


ACTIVATIONS = {"relu": ops.relu, "leaky_relu": lambda x: ops.leaky_relu(x, 0.2), "elu": ops.elu, None: lambda x: x}


def apply_all(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def nearest_up2(x):
    """(B, H, W, C) -> (B, 2H, 2W, C), each pixel repeated 2 x 2 (a broadcast: its gradient is a cheap sum).

    Batch and rows share one axis so the broadcast stays 5-D: TFLite's int8 kernels (STRIDED_SLICE,
    MUL) take at most 5 dimensions, and full-integer export fails on a 6-D one.
    """
    _, height, width, channels = x.shape
    x = ops.reshape(x, (-1, 1, width, 1, channels)) * ops.ones((1, 2, 1, 2, 1), x.dtype)
    return ops.reshape(x, (-1, 2 * height, 2 * width, channels))


def up2_conv(upsample: str, filters: int, lowering=None, name=None):
    """The convolution of a factor-2 upsampling of G (``model.upsample``): the paper's 4 x 4 stride-2 transposed
    convolution ("deconv"), or the 3 x 3 convolution that follows a nearest-neighbour resize ("resize", which
    cannot draw the pixel checkerboard of transposed convolutions: Odena et al., Distill 2016)."""
    if upsample == "deconv":
        return deconv(filters, 4, 2, name=name, lowering=lowering)
    return conv(filters, 3, name=name)


@keras.saving.register_keras_serializable(package="tfcoord")
class ConvUnit(keras.layers.Layer):
    """``activation(BN(conv(x)))``: a (transposed) convolution, then optionally batch norm and an activation.

    Args:
        filters, kernel, stride, padding: the convolution's (Torch padding as in the module docstring).
        transposed: a transposed convolution, computed as ``lowering`` says (see :func:`deconv`).
        upsample: instead of a convolution, G's factor-2 upsampling of that kind (:func:`up2_conv`).
        norm: batch norm after the convolution.
        activation: a key of :data:`ACTIVATIONS` ("relu", "leaky_relu" with slope 0.2, "elu", None).
    """

    def __init__(self, filters, kernel=3, stride=1, padding="same", transposed=False, lowering=None, upsample=None,
                 norm=True, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.upsample, self.activation = upsample, activation
        # Batch norm made before the convolution, as the functional networks of earlier versions did: their
        # initialisers draw their seeds in the same order, so a seed gives the same initial weights.
        self.bn = batch_norm("bn") if norm else None
        if upsample is not None:
            self.conv = up2_conv(upsample, filters, name="conv")
        elif transposed:
            self.conv = deconv(filters, kernel, stride, padding, name="conv", lowering=lowering)
        else:
            self.conv = conv(filters, kernel, stride, padding, name="conv")

    def call(self, x):
        x = self.conv(nearest_up2(x) if self.upsample == "resize" else x)
        return ACTIVATIONS[self.activation](x if self.bn is None else self.bn(x))


@keras.saving.register_keras_serializable(package="tfcoord")
class DenseUnit(keras.layers.Layer):
    """``activation(BN(linear(x)))`` with Torch's linear initialisation over ``fan_in`` inputs (:func:`linear`)."""

    def __init__(self, units, fan_in, norm=True, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.bn = batch_norm("bn") if norm else None  # first, as in ConvUnit
        self.linear = linear(units, fan_in, name="linear")

    def call(self, x):
        x = self.linear(x)
        return ACTIVATIONS[self.activation](x if self.bn is None else self.bn(x))


@keras.saving.register_keras_serializable(package="tfcoord")
class Bottleneck(keras.layers.Layer):
    """The official residual block: ``relu(x + BN(conv3(relu(BN(conv3(relu(BN(conv1(x)))))))))``, ``inner``
    channels inside, ``channels`` (those of x) outside."""

    def __init__(self, inner, channels, **kwargs):
        super().__init__(**kwargs)
        self.units = [ConvUnit(inner, 1, name="unit_1"), ConvUnit(inner, 3, name="unit_2"),
                      ConvUnit(channels, 3, activation=None, name="unit_3")]

    def call(self, x):
        return ops.relu(apply_all(self.units, x) + x)


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
