"""Conditional batch normalisation of COCO-GAN (Lin et al., ICCV 2019).

The paper normalises a feature map per channel and modulates it with a scale and
shift predicted from the generator's condition (latent ⊕ micro coordinate):

    α_k = γ_k(cond) · (ω_k − μ_k) / σ_k + β_k

(models.md §1.4). γ and β are plain linear maps of the condition (with bias, no
spectral norm, no "+1"). μ and σ² are the biased moments of the batch over
(B, H, W) in training and moving recorders at inference. The official code divides
by sqrt(var² + ε) instead of sqrt(var + ε) (quirk Q1); `variance_mode` selects it.

Under `tf.distribute` the batch moments are global: the per-replica counts and
sums, then the sums of squared deviations from the global mean, are all-reduced
(tensorflow.md §7), so two replicas normalise exactly like one device holding the
whole batch.
"""

import keras
from keras import ops

VARIANCE_MODES = ("paper", "official_squared")


def global_moments(x, axes=(0, 1, 2), return_count=False):
    """Biased mean and variance of `x` over `axes`, across all replicas in sync.

    Inside a `tf.distribute` replica context with more than one replica the
    counts and sums are summed over replicas (the all-reduce is differentiable:
    its gradient is the all-reduce of the gradients). Outside a strategy, under the
    default strategy and on non-TensorFlow backends these are the moments of the
    local batch. Like `tf.nn.moments`, the variance is biased and taken in two
    passes (mean first, then the mean squared deviation): E[x²] − E[x]² loses most
    digits in float32 when a channel's mean is large next to its spread (head A's
    hidden units: 7e-4 off in its output). Half-precision inputs are reduced in
    float32 (a float16 count overflows at 65 504). With `return_count` the global
    number of reduced elements comes third.
    """
    if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
        x = ops.cast(x, "float32")
    shape = ops.shape(x)
    count = 1
    for axis in axes:
        count = count * shape[axis]
    count = ops.reshape(ops.cast(count, x.dtype), (1,))
    sums = _all_reduce_sum(ops.concatenate([count, ops.sum(x, axis=axes)], axis=0))
    count, mean = sums[0], sums[1:] / sums[0]
    squared_deviations = _all_reduce_sum(ops.sum(ops.square(x - mean), axis=axes))
    variance = squared_deviations / count
    return (mean, variance, count) if return_count else (mean, variance)


def _all_reduce_sum(value):
    # tf.distribute is TensorFlow-only (tensorflow.md §15); other backends train on one device.
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


@keras.saving.register_keras_serializable(package="tfcoord")
class ConditionalBatchNorm(keras.layers.Layer):
    """COCO-GAN conditional batch normalisation (Lin et al. 2019, models.md §1.4).

    Computes `γ(c) · (x − μ) / d + β(c)` per channel, with `γ = Dense(c → C)` and
    `β = Dense(c → C)` (glorot-uniform kernels, zero biases: TF-slim defaults of
    the official code), μ, var the global batch moments over (B, H, W) when training
    and the recorders `moving_mean`, `moving_variance` otherwise, and
    `d = sqrt(var + ε)` (`variance_mode="paper"`) or `d = sqrt(var² + ε)`
    (`"official_squared"`, quirk Q1, needed for converted official checkpoints).
    Training calls update the recorders `rec ← momentum·rec + (1 − momentum)·stat`.

    Args:
        epsilon: ε of the denominator.
        momentum: recorder decay (official 0.99).
        variance_mode: `"paper"` or `"official_squared"`.

    Call arguments:
        x: features `(B, H, W, C)`.
        condition: `(B, D)`, e.g. latent ⊕ micro coordinates.
        training: normalise with batch moments and update the recorders.
        update_stats: set False to leave the recorders alone on a training call
            (official COCO-GAN updates them only in the generator's own step).

    Example:
        >>> cbn = ConditionalBatchNorm()
        >>> y = cbn(keras.random.normal((4, 8, 8, 16)), keras.random.normal((4, 130)),
        ...         training=True)
    """

    def __init__(self, epsilon=1e-5, momentum=0.99, variance_mode="paper", **kwargs):
        super().__init__(**kwargs)
        if variance_mode not in VARIANCE_MODES:
            raise ValueError(f"variance_mode must be one of {VARIANCE_MODES}, got {variance_mode!r}")
        self.epsilon, self.momentum, self.variance_mode = epsilon, momentum, variance_mode

    def build(self, x_shape, condition_shape):
        channels = x_shape[-1]
        self.gamma_dense = keras.layers.Dense(channels, dtype=self.dtype_policy, name="gamma")
        self.beta_dense = keras.layers.Dense(channels, dtype=self.dtype_policy, name="beta")
        self.gamma_dense.build(condition_shape)
        self.beta_dense.build(condition_shape)
        # autocast=False: the recorders stay float32 under mixed precision.
        self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False, autocast=False,
                                           aggregation="mean", name="moving_mean")
        self.moving_variance = self.add_weight(shape=(channels,), initializer="ones", trainable=False,
                                               autocast=False, aggregation="mean", name="moving_variance")

    def call(self, x, condition, training=False, update_stats=True):
        if training:
            mean, variance = global_moments(x)
            if update_stats:
                momentum = self.momentum
                self.moving_mean.assign(momentum * self.moving_mean + (1.0 - momentum) * mean)
                self.moving_variance.assign(momentum * self.moving_variance + (1.0 - momentum) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        if self.variance_mode == "official_squared":
            variance = ops.square(variance)
        denominator = ops.sqrt(variance + self.epsilon)
        normalized = (x - ops.cast(mean, x.dtype)) / ops.cast(denominator, x.dtype)
        gamma = self.gamma_dense(condition)[:, None, None, :]
        beta = self.beta_dense(condition)[:, None, None, :]
        return gamma * normalized + beta

    def compute_output_shape(self, x_shape, condition_shape):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "momentum": self.momentum,
                "variance_mode": self.variance_mode}
