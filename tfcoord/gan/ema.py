"""The exponential moving average of a generator's weights that samples are drawn from.

One weight set for every model: *all* weights, non-trainable ones included (batch-norm statistics,
spectral-norm vectors, constant inputs), after G's update, in cross-replica context (tensorflow.md §8.2).
For the StyleGAN2 family this is the official ``accumulate``, which walks ``named_parameters()``, including
InfinityGAN's constant input that tfcoord keeps non-trainable. The training-parity fixtures
(tests/models/test_{cips,infinitygan}_train_parity.py) check the EMA after one step but cannot tell the two weight
sets apart: g_ema starts equal to g and the non-trainable weights do not move in that step. Models differ only in
the decay and its warm-up.
"""

from __future__ import annotations

from keras import ops


def warmup_decay(decay, step):
    """``min(decay, (1 + step) / (10 + step))``: tf.train.ExponentialMovingAverage's warm-up, so a short run's
    average is not stuck with its first weights."""
    step = ops.cast(step, "float32")
    return ops.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_step(average_network, network, decay, warmup_step=None) -> None:
    """One EMA update after G's step; nothing when the model keeps no average (``average_network`` None).

    ``warmup_step``: G's step count, for :func:`warmup_decay` (COCO-GAN and GAWWN); None for the StyleGAN2
    recipe's constant decay (CIPS, InfinityGAN).
    """
    if average_network is None:
        return
    if warmup_step is not None:
        decay = warmup_decay(decay, warmup_step)
    for average, weight in zip(average_network.weights, network.weights):  # e <- decay e + (1 - decay) w
        average.assign(decay * average + (1.0 - decay) * weight)
