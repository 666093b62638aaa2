"""Feature unfolding: the k x k neighbourhood of every position concatenated on the channels.

InfinityGAN's structure synthesiser (Lin et al., ICLR 2022, §3.1) is a neural implicit
function whose receptive field comes from *feature unfolding*::

    f'(i, j) = concat{ f(i + n, j + m) : n, m in [-k/2, k/2] }

followed by a per-position (modulated) fully connected layer; together they equal a
k x k ``valid`` convolution (tensorflow.md §10.2). The unfolding is written as k*k
slices and one concatenation: ``tf.image.extract_patches`` is a Flex op in TFLite
(P11) and ``keras.ops.image.extract_patches`` is an identity-kernel conv (P22).
Channel order of the output is (row offset, column offset, channel), the order of a
conv kernel ``(k, k, C, O)`` reshaped to ``(k*k*C, O)``.
"""

from __future__ import annotations

import keras
from keras import ops


def unfold(x, kernel_size: int):
    """(B, H, W, C) -> (B, H - k + 1, W - k + 1, k*k*C) without padding ('valid').

    Args:
        x: NHWC features (static or dynamic spatial size).
        kernel_size: k, the side of the neighbourhood (2 * radius + 1 for InfinityGAN).

    Example::

        unfold(ops.ones((1, 35, 35, 259)), 7).shape   # (1, 29, 29, 12691)
    """
    k = int(kernel_size)
    if k == 1:
        return x
    shape = ops.shape(x)
    height, width = shape[1], shape[2]
    return ops.concatenate([x[:, i:height - k + 1 + i, j:width - k + 1 + j, :]
                            for i in range(k) for j in range(k)], axis=-1)


@keras.saving.register_keras_serializable(package="tfcoord")
class Unfold(keras.layers.Layer):
    """Layer form of :func:`unfold` (no weights)."""

    def __init__(self, kernel_size, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size

    def call(self, x):
        return unfold(x, self.kernel_size)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        k = self.kernel_size
        shrink = [None if s is None else s - k + 1 for s in (height, width)]
        return (batch, shrink[0], shrink[1], channels * k * k)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}
