"""Padding-free modulated convolutions (StyleGAN2 weight demodulation, InfinityGAN's seamless variant).

StyleGAN2 (Karras et al., CVPR 2020, Eq. 1-3) modulates the kernel by a per-sample style
``s`` and demodulates by ``d_o = 1/sqrt(sum_{i,k} (s_i w_iko)^2 + eps)``. Computing
``conv(x * s, w) * d`` instead never materialises per-sample kernels (tensorflow.md §5.2).

InfinityGAN (Lin et al., ICLR 2022, §3.2) removes every zero padding from the generator so
that any output pixel depends only on its own neighbourhood of the latent canvas: that is
what makes independently generated patches agree exactly where they overlap. Hence here:

* plain convs are ``valid`` (n -> n - k + 1);
* the up conv is a stride-2 transposed conv without padding (n -> 2n + 1), whose outer
  row/column (touched by the implicit zero border) is dropped (2n - 1), then the
  ``[1, 2, 1]`` blur (x4 for the zero insertion) is applied ``valid`` (2n - 3);
* the RGB skip is upsampled by the same ``[1, 2, 1]`` transposed filter with the border
  dropped (n -> 2n - 1), which is exactly linear interpolation with aligned corners.

Spatially varying styles (InfinityGAN's spatial style fusion, §3.3): ``style`` may be a
(B, H, W, D) map. It is centre-cropped to the input, modulated per pixel and demodulated per
pixel with ``d_o(p) = 1/sqrt(sum_i s_i(p)^2 sum_k w_iko^2 + eps)`` (the official
approximation; exact for 1x1 kernels); for the plain conv the demodulation map is cropped
like the output, for the up conv it is resized to the output with aligned corners.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tfcoord.layers.stylegan import EqualLinear, fir_filter
from tfcoord.layers.unfold import unfold

DEMOD_EPS = 1e-8


def center_crop(x, height, width):
    """Centre crop of NHWC ``x`` to ``height`` x ``width`` (the size difference must be even)."""
    shape = ops.shape(x)
    top = (shape[1] - height) // 2
    left = (shape[2] - width) // 2
    return x[:, top:top + height, left:left + width, :]


def _interleave(even, odd, axis: int):
    """Merge ``even`` (n items along ``axis``) and ``odd`` (n - 1 items) into 2n - 1 items."""
    pad = [[0, 0]] * 4
    pad[axis] = [0, 1]
    odd = ops.pad(odd, pad)
    # concatenate, not stack: TFLite's PACK is not an XNNPACK op and would split the graph.
    stacked = ops.concatenate([ops.expand_dims(even, axis + 1), ops.expand_dims(odd, axis + 1)], axis=axis + 1)
    shape = ops.shape(even)
    new_shape = [shape[0], shape[1], shape[2], shape[3]]
    new_shape[axis] = 2 * shape[axis]
    merged = ops.reshape(stacked, new_shape)
    if axis == 1:
        return merged[:, :2 * shape[1] - 1]
    return merged[:, :, :2 * shape[2] - 1]


def upsample_linear(x):
    """(B, n, m, C) -> (B, 2n - 1, 2m - 1, C): linear interpolation with aligned corners.

    Equals InfinityGAN's padding-free skip upsampling (transposed conv with
    ``outer([1,2,1], [1,2,1]) / 16 * 4``, stride 2, border dropped) and the bilinear
    ``align_corners=True`` resize from n to 2n - 1 used for per-pixel demodulation.
    """
    x = _interleave(x, (x[:, :-1] + x[:, 1:]) * 0.5, axis=1)
    return _interleave(x, (x[:, :, :-1] + x[:, :, 1:]) * 0.5, axis=2)


def blur_121(x):
    """``[1,2,1]^T [1,2,1] / 16 * 4`` FIR filter, ``valid`` (n -> n - 2).

    The factor 4 compensates the zeros inserted by the stride-2 transposed conv.
    """
    return fir_filter(x, (1.0, 2.0, 1.0), gain=4.0)


@keras.saving.register_keras_serializable(package="tfcoord")
class ModulatedConv2D(keras.layers.Layer):
    """Modulated (and optionally demodulated) k x k convolution without padding.

    Kernel stored ``(k, k, I, O)`` N(0, 1) and scaled by ``1/sqrt(I k k)`` at run time
    (equalised learning rate); the style affine is ``EqualLinear(D -> I, bias_init=1)``
    (sublayer ``modulation``).

    Args:
        filters: output channels O.
        kernel_size: k (odd).
        demodulate: StyleGAN2 weight demodulation.
        upsample: stride-2 padding-free transposed conv + ``[1,2,1]`` blur (k must be 3):
            n -> 2n - 3. Otherwise a ``valid`` conv: n -> n - k + 1.
        unfold: compute the plain conv as feature unfolding + one matmul (InfinityGAN's
            structure synthesiser formulation; numerically the same conv).

    ``call(x, style)``: ``x`` (B, H, W, I); ``style`` (B, D) or a per-pixel (B, Hs, Ws, D) map
    with Hs >= H, Ws >= W (centre-cropped to the input).
    """

    def __init__(self, filters, kernel_size, demodulate=True, upsample=False, unfold=False, **kwargs):
        super().__init__(**kwargs)
        if upsample and kernel_size != 3:
            raise ValueError("the padding-free up conv is defined for 3x3 kernels only")
        self.filters, self.kernel_size, self.demodulate = filters, kernel_size, demodulate
        self.upsample, self.unfold = upsample, unfold
        self.modulation = None

    def build(self, x_shape, style_shape):
        in_channels = int(x_shape[-1])
        k = self.kernel_size
        self.in_channels = in_channels
        self.scale = 1.0 / math.sqrt(in_channels * k * k)
        self.kernel = self.add_weight(shape=(k, k, in_channels, self.filters), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=1.0))
        if self.modulation is None:
            self.modulation = EqualLinear(in_channels, bias_init=1.0, name="modulation")
        self.modulation.build(tuple(style_shape))

    def output_size(self, size):
        """Output side for an input side (None stays None)."""
        if size is None:
            return None
        return 2 * size - 3 if self.upsample else size - self.kernel_size + 1

    def compute_output_shape(self, x_shape, style_shape):
        return (x_shape[0], self.output_size(x_shape[1]), self.output_size(x_shape[2]), self.filters)

    def call(self, x, style):
        kernel = self.kernel * self.scale
        per_pixel = len(style.shape) == 4
        if per_pixel:
            style = center_crop(style, ops.shape(x)[1], ops.shape(x)[2])
            s = self.modulation(style)  # (B, H, W, I)
        else:
            s = ops.expand_dims(ops.expand_dims(self.modulation(style), 1), 1)  # (B, 1, 1, I)
        x = x * s
        if self.upsample:
            # conv_transpose wants (k, k, O, I); PyTorch's conv_transpose2d and this are both the
            # adjoint of cross-correlation, so the forward-layout kernel needs no flip.
            y = ops.conv_transpose(x, ops.transpose(kernel, (0, 1, 3, 2)), strides=2, padding="valid")
            y = y[:, 1:-1, 1:-1, :]
        elif self.unfold and self.kernel_size > 1:
            k = self.kernel_size
            y = ops.matmul(unfold(x, k), ops.reshape(kernel, (k * k * self.in_channels, self.filters)))
        elif self.kernel_size == 1:
            y = ops.matmul(x, ops.reshape(kernel, (self.in_channels, self.filters)))
        else:
            y = ops.conv(x, kernel, strides=1, padding="valid")
        if self.demodulate:
            # Demodulation statistics in float32 under mixed precision (float16 squares overflow).
            kernel_energy = ops.sum(ops.square(ops.cast(kernel, "float32")), axis=(0, 1))  # (I, O)
            demod = ops.rsqrt(ops.matmul(ops.square(ops.cast(s, "float32")), kernel_energy) + DEMOD_EPS)
            demod = ops.cast(demod, y.dtype)  # (B, 1|H, 1|W, O)
            if per_pixel:
                if self.upsample:
                    demod = upsample_linear(demod)  # n -> 2n - 1 = the output before the blur
                elif self.kernel_size > 1:
                    r = self.kernel_size // 2
                    demod = demod[:, r:-r, r:-r, :]
            y = y * demod
        if self.upsample:
            y = blur_121(y)
        return y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "demodulate": self.demodulate, "upsample": self.upsample, "unfold": self.unfold}


@keras.saving.register_keras_serializable(package="tfcoord")
class PaddingFreeToRGB(keras.layers.Layer):
    """InfinityGAN's skip-to-RGB: modulated 1x1 conv to RGB (no demodulation) + bias, plus the
    previous RGB upsampled without padding (n -> 2n - 1) and centre-cropped to this size.

    ``call(x, style, skip=None)``; ``style`` (B, D) or a per-pixel map (centre-cropped).
    """

    def __init__(self, channels=3, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = ModulatedConv2D(channels, 1, demodulate=False, name="conv")

    def build(self, x_shape, style_shape, skip_shape=None):
        self.conv.build(x_shape, style_shape)
        self.bias = self.add_weight(shape=(self.channels,), name="bias", initializer="zeros")

    def compute_output_shape(self, x_shape, style_shape, skip_shape=None):
        return tuple(x_shape[:3]) + (self.channels,)

    def call(self, x, style, skip=None):
        rgb = self.conv(x, style) + self.bias
        if skip is not None:
            shape = ops.shape(rgb)
            rgb = rgb + center_crop(upsample_linear(skip), shape[1], shape[2])
        return rgb

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
