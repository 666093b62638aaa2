"""The batch normalisation of COCO-GAN's last generator block and prediction heads.

The official code uses ``tf.contrib.layers.batch_norm(decay=0.9, epsilon=1e-5, scale=True,
updates_collections=None)`` (ops.py), which runs TensorFlow's fused batch norm and moves
the averages inside the forward pass. Two of its habits differ from
``keras.layers.BatchNormalization``, and ``moving_stats`` selects them:

* ``"per_call"`` (default): every training call moves the averages with its batch
  moments, the variance biased, one call after the other (Keras).
* ``"official_tf1"``: the fused kernel hands the moving average the Bessel-corrected
  variance ``var * n / (n - 1)``; and all calls of one ``sess.run`` read the averages
  before any of them writes, so their updates add up from the step's starting value,
  ``m <- m - (1 - decay) * sum_k (m - stat_k)``. Head A sees real and fake features in
  one step; pass them as ``groups`` of one call to get this.

Batch moments are global over replicas (:func:`tfcoord.layers.conditional_norm.global_moments`),
so several replicas normalise as one device holding the whole batch.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcoord.layers.conditional_norm import global_moments

MOVING_STATS = ("per_call", "official_tf1")


@keras.saving.register_keras_serializable(package="tfcoord")
class BatchNorm(keras.layers.Layer):
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` over all axes but the last.

    Args:
        momentum: decay of the moving averages (official 0.9).
        epsilon: added to the variance.
        moving_stats: ``"per_call"`` or ``"official_tf1"`` (see the module docstring).

    Call arguments:
        x: ``(B, ..., C)``.
        training: normalise with batch moments and move the averages.
        groups: the batch holds this many equal parts, each normalised with its own
            moments (as separate calls would), with one combined update.

    Example:
        >>> norm = BatchNorm(moving_stats="official_tf1")
        >>> y = norm(ops.concatenate([h_real, h_fake]), training=True, groups=2)
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, moving_stats="per_call", **kwargs):
        super().__init__(**kwargs)
        if moving_stats not in MOVING_STATS:
            raise ValueError(f"moving_stats must be one of {MOVING_STATS}, got {moving_stats!r}")
        self.momentum = momentum
        self.epsilon = epsilon
        self.moving_stats = moving_stats

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.gamma = self.add_weight(shape=channels, initializer="ones", autocast=False, name="gamma")
        self.beta = self.add_weight(shape=channels, initializer="zeros", autocast=False, name="beta")
        stat = dict(shape=channels, trainable=False, autocast=False, aggregation="mean")
        self.moving_mean = self.add_weight(initializer="zeros", name="moving_mean", **stat)
        self.moving_variance = self.add_weight(initializer="ones", name="moving_variance", **stat)

    def _normalize(self, x, mean, variance):
        return (x - mean) / ops.sqrt(variance + self.epsilon) * self.gamma + self.beta

    def call(self, x, training=False, groups=1):
        dtype = x.dtype
        x = ops.cast(x, keras.backend.result_type(x.dtype, "float32"))  # half precision overflows
        if not training:
            return ops.cast(self._normalize(x, self.moving_mean, self.moving_variance), dtype)
        axes = tuple(range(len(x.shape) - 1))
        parts = [x] if groups == 1 else ops.split(x, groups, axis=0)
        outputs, means, variances = [], [], []
        for part in parts:
            mean, variance, count = global_moments(part, axes, return_count=True)
            outputs.append(self._normalize(part, mean, variance))
            if self.moving_stats == "official_tf1":
                variance = variance * count / ops.maximum(count - 1.0, 1.0)  # TF's fused batch norm
            means.append(mean)
            variances.append(variance)
        decay = self.momentum
        for moving, stats in ((self.moving_mean, means), (self.moving_variance, variances)):
            if self.moving_stats == "official_tf1":
                start = ops.convert_to_tensor(moving)
                moving.assign(start - (1.0 - decay) * sum(start - stat for stat in stats))
            else:
                for stat in stats:
                    moving.assign(decay * moving + (1.0 - decay) * stat)
        output = outputs[0] if groups == 1 else ops.concatenate(outputs, axis=0)
        return ops.cast(output, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "moving_stats": self.moving_stats}
