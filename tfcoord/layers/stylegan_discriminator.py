"""The StyleGAN2 residual discriminator (Karras et al., CVPR 2020, Fig. 7b), used by CIPS and InfinityGAN.

Architecture (models.md §2.5, §4.6)::

    FromRGB: EqualConv 1x1 (in_channels -> C(S)) + FusedLeakyReLU
    n ResBlocks:  conv3x3 -> blur[1,3,3,1] + conv3x3 stride 2        (main path)
                  blur[1,3,3,1] + conv1x1 stride 2, no bias, linear  (skip)
                  (main + skip) / sqrt(2)
    minibatch stddev (one extra channel)
    conv3x3 + FusedLeakyReLU
    flatten -> EqualLinear(flat -> L, lrelu) -> EqualLinear(L -> 1)

Every convolution after a blur is ``valid`` with stride 2 and the blur pads as the
official ``ConvLayer(downsample=True)`` does (2 each side before a 3x3 conv, 1 before
a 1x1 conv), so odd sizes work the official way: 101 -> 50 -> 25 -> 12 -> 6 -> 3
(InfinityGAN) and 256 -> 128 -> ... -> 4 (CIPS).

Channel widths follow StyleGAN2: ``C(r) = min(512, 16384 * channel_multiplier / r)``
for the resolution bucket r, times ``width_multiplier`` (InfinityGAN's
``d_extra_multiplier``; tests use tiny widths). The number of ResBlocks is
``round(log2(input_size)) - 2``; the first (FromRGB) width is that of the bucket
``2**round(log2(input_size))`` (InfinityGAN rounds 101 up to 128; for powers of two
this is the official CIPS ``int(log2(size))``).

Layout: NHWC; the flattened features are in (h, w, c) order. Official PyTorch flattens
(c, h, w): :func:`official_weight_map` permutes the first linear layer's rows.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from tfcoord.layers.stylegan import SQRT2, EqualLinear, fir_filter, fused_leaky_relu

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
MAX_CHANNELS = 512


def discriminator_channels(resolution: int, channel_multiplier: int = 2, width_multiplier: float = 1.0) -> int:
    """StyleGAN2's width for resolution bucket ``resolution``: 512 up to 32, then 256·cm at 64, 128·cm at 128, ..."""
    return int(round(min(MAX_CHANNELS, 16384 * channel_multiplier // resolution) * width_multiplier))


def size_bucket_log2(input_size: int) -> int:
    """``round(log2(input_size))``: 7 for 101 (InfinityGAN), 8 for 256."""
    return int(round(math.log2(input_size)))


def downsampled_side(side: int) -> int:
    """Side after one ResBlock: pad 2 + blur (4 taps) + 3x3 valid stride 2 = ``floor(side / 2)``."""
    return (side + 4 - 3 - 3) // 2 + 1


def final_side(input_size: int) -> int:
    """Spatial side of the last feature map (4 for powers of two, 3 for 101)."""
    side = input_size
    for _ in range(size_bucket_log2(input_size) - 2):
        side = downsampled_side(side)
    return side


def official_infinitygan_stddev_group(batch_size: int) -> int:
    """InfinityGAN's ``_smallest_divisor_larger_than(batch, 4)`` (quirk I3): 16 -> 16 (whole batch), 32 -> 4."""
    for divisor in range(4, int(math.sqrt(batch_size))):
        if batch_size % divisor == 0:
            return divisor
    return batch_size


def blur(x, pad: tuple[int, int], taps=BLUR_TAPS):
    """StyleGAN2's ``[1,3,3,1]`` downsampling blur after zero padding ``pad`` (:func:`fir_filter`)."""
    return fir_filter(x, taps, pad)


@keras.saving.register_keras_serializable(package="tfcoord")
class EqualConv2D(keras.layers.Layer):
    """StyleGAN2 ``ConvLayer``: optional blur + stride-2 valid conv, equalised lr, optional FusedLeakyReLU.

    Kernel stored ``(k, k, I, O)`` N(0, 1), scaled by ``1/sqrt(I k k)`` at run time. With
    ``activate`` the bias belongs to the FusedLeakyReLU; without it the conv has a bias
    only if ``use_bias``.

    Args:
        filters: output channels.
        kernel_size: k (odd).
        downsample: blur then stride 2, ``valid`` (else stride 1, zero padding ``k // 2``).
        use_bias: a learned bias (official ``bias``).
        activate: FusedLeakyReLU (``leaky_relu(x + b, 0.2) * sqrt(2)``).
    """

    def __init__(self, filters, kernel_size, downsample=False, use_bias=True, activate=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.downsample = filters, kernel_size, downsample
        self.use_bias, self.activate = use_bias, activate

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        k = self.kernel_size
        self.scale = 1.0 / math.sqrt(in_channels * k * k)
        self.kernel = self.add_weight(shape=(k, k, in_channels, self.filters), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")

    def call(self, x):
        kernel = self.kernel * self.scale
        if self.downsample:
            # Official pad for a 2x blur-downsample before a k x k conv: p = (4 - 2) + (k - 1).
            p = len(BLUR_TAPS) - 2 + self.kernel_size - 1
            x = blur(x, ((p + 1) // 2, p // 2))
            if self.kernel_size == 1:
                # A 1x1 stride-2 conv is a subsample and a matmul. Written so because TF 2.21's oneDNN
                # filter gradient of the 1x1 stride-2 conv corrupts the heap for narrow inputs (4 or 8
                # channels: InfinityGAN's D at d_extra_multiplier 1/32 aborts or segfaults).
                y = ops.matmul(x[:, ::2, ::2, :], ops.reshape(kernel, (-1, self.filters)))
            else:
                y = ops.conv(x, kernel, strides=2, padding="valid")
        elif self.kernel_size == 1:
            y = ops.matmul(x, ops.reshape(kernel, (-1, self.filters)))
        else:
            y = ops.conv(x, kernel, strides=1, padding="same")  # = zero padding k // 2 for odd k
        if self.activate:
            return fused_leaky_relu(y, self.bias)
        return y + self.bias if self.bias is not None else y

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.downsample:
            p = len(BLUR_TAPS) - 2 + self.kernel_size - 1
            height, width = [None if s is None else (s + p - 3 - self.kernel_size) // 2 + 1 for s in (height, width)]
        return (batch, height, width, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "downsample": self.downsample, "use_bias": self.use_bias, "activate": self.activate}


@keras.saving.register_keras_serializable(package="tfcoord")
class DiscriminatorResBlock(keras.layers.Layer):
    """``(conv3x3 -> blur + conv3x3/2) + (blur + conv1x1/2, linear, no bias)``, divided by sqrt(2)."""

    def __init__(self, in_channels, filters, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.filters = in_channels, filters
        self.conv1 = EqualConv2D(in_channels, 3, name="conv1")
        self.conv2 = EqualConv2D(filters, 3, downsample=True, name="conv2")
        self.skip = EqualConv2D(filters, 1, downsample=True, use_bias=False, activate=False, name="skip")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build(input_shape)
        self.skip.build(input_shape)

    def call(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) * (1.0 / SQRT2)

    def compute_output_shape(self, input_shape):
        return self.skip.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "filters": self.filters}


def minibatch_stddev(x, group_size: int, num_features: int = 1, grouping: str = "strided"):
    """StyleGAN's minibatch standard deviation as an extra channel (Karras et al. 2018, §3).

    ``grouping="strided"`` follows the official ``view(group, -1, ...)``: with ``M = B / group``,
    sample i belongs to group ``i mod M``. ``"contiguous"`` groups consecutive samples
    (group ``i // group``), so a global batch split into replicas in order forms the same
    groups on one device and on several (two replicas equal one device). ``group_size`` 0
    means the whole batch; otherwise the group is ``min(B, group_size)`` (B must be
    divisible by it, as in the official code).
    """
    batch = ops.shape(x)[0]
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if group_size == 0:
        group = batch
    elif isinstance(batch, int):
        group = min(batch, group_size)
    else:
        group = ops.minimum(batch, group_size)
    features = x
    x = ops.cast(x, "float32")  # the statistic in float32 under mixed precision
    if grouping == "contiguous":
        y = ops.reshape(x, (-1, group, height, width, num_features, channels // num_features))
        y = ops.sqrt(ops.var(y, axis=1) + 1e-8)  # population variance, as torch var(unbiased=False)
        y = ops.repeat(ops.mean(y, axis=(1, 2, 4)), group, axis=0)  # sample i -> group i // group
    else:
        y = ops.reshape(x, (group, -1, height, width, num_features, channels // num_features))
        y = ops.sqrt(ops.var(y, axis=0) + 1e-8)
        y = ops.tile(ops.mean(y, axis=(1, 2, 4)), (group, 1))  # (M, F); sample i -> group i mod M
    y = ops.expand_dims(ops.expand_dims(y, 1), 1) * ops.ones_like(x[:, :, :, :1])
    return ops.concatenate([features, ops.cast(y, features.dtype)], axis=-1)


@keras.saving.register_keras_serializable(package="tfcoord")
class StyleGan2Discriminator(keras.layers.Layer):
    """StyleGAN2 residual discriminator for square ``input_size`` images (any size >= 8, odd allowed).

    Args:
        input_size: side of the (square) input images, e.g. 256 (CIPS) or 101 (InfinityGAN).
        channel_multiplier: StyleGAN2 ``channel_multiplier`` (2 in the CIPS and InfinityGAN papers).
        in_channels: input channels (3 = RGB; CIPS without ``--img2dis`` uses 5 = RGB + coords).
        width_multiplier: scales every width incl. the linear layer (InfinityGAN ``d_extra_multiplier``;
            small values give tiny test networks).
        stddev_group: minibatch-stddev group size; 4 in StyleGAN2/CIPS; 0 = the whole batch (InfinityGAN's
            official value for batch 16, see :func:`official_infinitygan_stddev_group`).
        stddev_features: minibatch-stddev feature groups (1).
        stddev_grouping: "strided" (official ``view(group, -1)``) or "contiguous" (consecutive
            samples; identical groups for any replica count), see :func:`minibatch_stddev`.

    ``call(images, training=False) -> (logits (B,), features (B, flat))``; ``features`` is the
    flattened output of the final 3x3 conv (``flat = L * s * s``, s = :func:`final_side`, (h, w, c)
    order), i.e. the input of the final linear layers, where another head (InfinityGAN's coordinate
    head) can attach. ``feature_dim`` holds ``flat`` after construction.

    Example::

        d = StyleGan2Discriminator(101, width_multiplier=1 / 16)
        d.build((None, 101, 101, 3))
        logits, features = d(images)          # (B,), (B, 32 * 3 * 3)
    """

    def __init__(self, input_size, channel_multiplier=2, in_channels=3, width_multiplier=1.0, stddev_group=4,
                 stddev_features=1, stddev_grouping="strided", **kwargs):
        super().__init__(**kwargs)
        if input_size < 8:
            raise ValueError(f"input_size must be >= 8, got {input_size}")
        self.input_size = input_size
        self.channel_multiplier = channel_multiplier
        self.in_channels = in_channels
        self.width_multiplier = width_multiplier
        self.stddev_group = stddev_group
        self.stddev_features = stddev_features
        if stddev_grouping not in ("strided", "contiguous"):
            raise ValueError(f"stddev_grouping must be 'strided' or 'contiguous', got {stddev_grouping!r}")
        self.stddev_grouping = stddev_grouping
        log_size = size_bucket_log2(input_size)

        def width(resolution):
            return discriminator_channels(resolution, channel_multiplier, width_multiplier)

        self.block_channels = [width(2 ** (i - 1)) for i in range(log_size, 2, -1)]
        self.linear_channels = int(round(MAX_CHANNELS * width_multiplier))
        self.side = final_side(input_size)
        self.feature_dim = self.linear_channels * self.side * self.side
        self.from_rgb = EqualConv2D(width(2 ** log_size), 1, name="from_rgb")
        widths = [width(2 ** log_size)] + self.block_channels
        self.blocks = [DiscriminatorResBlock(widths[i], c, name=f"resblock_{i}")
                       for i, c in enumerate(self.block_channels)]
        self.final_conv = EqualConv2D(self.linear_channels, 3, name="final_conv")
        self.final_linear = EqualLinear(self.linear_channels, activation="fused_lrelu", name="final_linear")
        self.output_linear = EqualLinear(1, name="output_linear")

    def build(self, input_shape=None):
        shape = (None, self.input_size, self.input_size, self.in_channels)
        self.from_rgb.build(shape)
        shape = self.from_rgb.compute_output_shape(shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        assert shape[1] == self.side, (shape, self.side)
        self.final_conv.build(shape[:3] + (shape[3] + self.stddev_features,))
        self.final_linear.build((None, self.feature_dim))
        self.output_linear.build((None, self.linear_channels))

    def call(self, images, training=False):
        x = self.from_rgb(images)
        for block in self.blocks:
            x = block(x)
        x = minibatch_stddev(x, self.stddev_group, self.stddev_features, self.stddev_grouping)
        features = ops.reshape(self.final_conv(x), (-1, self.feature_dim))
        logits = self.output_linear(self.final_linear(features))
        return logits[:, 0], features

    def compute_output_spec(self, images, training=False):
        batch = images.shape[0]
        return (keras.KerasTensor((batch,), images.dtype), keras.KerasTensor((batch, self.feature_dim), images.dtype))

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size,
                "channel_multiplier": self.channel_multiplier, "in_channels": self.in_channels,
                "width_multiplier": self.width_multiplier, "stddev_group": self.stddev_group,
                "stddev_features": self.stddev_features, "stddev_grouping": self.stddev_grouping}

    # -- official PyTorch weights -------------------------------------------------------------------
    def official_weight_map(self, prefix: str = "") -> dict:
        """``{official state-dict name: (variable, numpy transform)}`` for the official StyleGAN2 D.

        Names follow rosinality's layout used by CIPS and InfinityGAN (``convs.0`` FromRGB,
        ``convs.{1..n}`` ResBlocks, ``final_conv``, ``final_linear.{0,1}``); the fixed blur
        kernels (``*.kernel`` buffers) are not weights and are not listed. Transforms map the
        PyTorch tensor to the Keras layout: conv ``(O, I, k, k) -> (k, k, I, O)``, linear
        ``(O, I) -> (I, O)``, and the first linear's rows from (c, h, w) to (h, w, c) order.
        """

        def conv(w):
            return np.transpose(w, (2, 3, 1, 0))

        def first_linear(w):  # (O, C*s*s) rows in (c, h, w) -> kernel (s*s*C, O) rows in (h, w, c)
            out_dim = w.shape[0]
            w = w.reshape(out_dim, self.linear_channels, self.side, self.side)
            return np.transpose(w, (2, 3, 1, 0)).reshape(-1, out_dim)

        same, linear, p = np.asarray, np.transpose, prefix
        entries = {f"{p}convs.0.0.weight": (self.from_rgb.kernel, conv),
                   f"{p}convs.0.1.bias": (self.from_rgb.bias, same)}
        for i, block in enumerate(self.blocks, start=1):
            entries.update({
                f"{p}convs.{i}.conv1.0.weight": (block.conv1.kernel, conv),
                f"{p}convs.{i}.conv1.1.bias": (block.conv1.bias, same),
                f"{p}convs.{i}.conv2.1.weight": (block.conv2.kernel, conv),
                f"{p}convs.{i}.conv2.2.bias": (block.conv2.bias, same),
                f"{p}convs.{i}.skip.1.weight": (block.skip.kernel, conv),
            })
        entries.update({
            f"{p}final_conv.0.weight": (self.final_conv.kernel, conv),
            f"{p}final_conv.1.bias": (self.final_conv.bias, same),
            f"{p}final_linear.0.weight": (self.final_linear.kernel, first_linear),
            f"{p}final_linear.0.bias": (self.final_linear.bias, same),
            f"{p}final_linear.1.weight": (self.output_linear.kernel, linear),
            f"{p}final_linear.1.bias": (self.output_linear.bias, same),
        })
        return entries
