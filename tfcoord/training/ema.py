"""The exponential moving average of a generator's weights that samples are drawn from.

Every model that keeps one (CIPS, InfinityGAN always; COCO-GAN and GAWWN with ``optim.g_ema_decay``) averages
*all* weights, non-trainable ones included (batch-norm statistics, spectral-norm vectors, constant inputs), after
G's update, in cross-replica context (tensorflow.md §8.2).
"""

from __future__ import annotations

from keras import ops


def warmup_decay(decay, step):
    """``min(decay, (1 + step) / (10 + step))``: tf.train.ExponentialMovingAverage's warm-up, so a short run's
    average is not stuck with its first weights."""
    step = ops.cast(step, "float32")
    return ops.minimum(decay, (1.0 + step) / (10.0 + step))


def update_moving_average(average_network, network, decay) -> None:
    """``e <- decay e + (1 - decay) w`` for every weight of ``network`` and its twin in ``average_network``."""
    for average, weight in zip(average_network.weights, network.weights):
        average.assign(decay * average + (1.0 - decay) * weight)
