"""Regularisers of the StyleGAN2 recipe and InfinityGAN's diversity loss, per example or per batch.

R1 and the path length are per-example terms (B,) the caller averages over the global batch; the diversity loss
and the path-length mean are batch statistics, reduced across replicas with
:func:`tfcoord.gan.distribute.replica_sum` (tensorflow.md §8.3).
"""

from __future__ import annotations

import math

from keras import ops

from tfcoord.gan.distribute import num_replicas, replica_sum

# Keeps arccos away from +-1, where its gradient is infinite (the NaN users report, issue #4).
COSINE_LIMIT = 1.0 - 1e-6
DIVERSITY_EPS = 1e-5  # official InfinityGAN ``1 / (x_dist / z_dist + 1e-5)``
DISTANCE_FLOOR = 1e-8


def r1_penalty(gradients):
    """Per-example squared gradient norm of D at real images (Mescheder et al. 2018)."""
    return ops.sum(ops.square(gradients), axis=tuple(range(1, len(gradients.shape))))


def lazy_r1_loss(penalty, gamma: float, interval: int):
    """Per-example lazy R1 loss ``gamma / 2 * interval * R1``: applied every ``interval`` steps, it is scaled by
    the interval so that its mean strength is that of R1 every step (StyleGAN2, Appendix B)."""
    return (0.5 * gamma * interval) * penalty


def lazy_step_due(step, interval: int) -> bool:
    """Whether trainer step ``step`` (counted from 1) regularises: the official loops regularise at iterations
    ``i % interval == 0`` counted from 0."""
    return (step - 1) % interval == 0


def path_lengths(style_gradients):
    """Per-example path length: ``sqrt(mean(grad^2))`` over the (n_latent, D) style axes (official ``grad_reduce``)."""
    return ops.sqrt(ops.mean(ops.square(style_gradients), axis=tuple(range(1, len(style_gradients.shape)))))


def pair_distance(a, b, kind: str):
    """Distance of the pairs (a[i], b[i]) per pair (B/2,).

    ``l1``: mean absolute difference (the paper's distance). ``official_angular``: InfinityGAN's official
    ``angular_similarity = 1 - arccos(cos(a, b)) / pi`` -- a similarity, not a distance (quirk I1) --
    with the cosine clipped so that the arccos gradient stays finite.
    """
    a = ops.reshape(a, (ops.shape(a)[0], -1))
    b = ops.reshape(b, (ops.shape(b)[0], -1))
    if kind == "official_angular":
        norms = ops.sqrt(ops.sum(ops.square(a), axis=1) * ops.sum(ops.square(b), axis=1))
        cosine = ops.sum(a * b, axis=1) / ops.maximum(norms, DISTANCE_FLOOR)
        cosine = ops.clip(cosine, -COSINE_LIMIT, COSINE_LIMIT)
        return 1.0 - ops.arccos(cosine) / math.pi
    return ops.mean(ops.abs(a - b), axis=1)


def diversity_loss(local_latent, structure_latent, kind: str):
    """Mode-seeking diversity loss (InfinityGAN §3.4) on the pairs (0, 1), (2, 3), ... of this replica's batch.

    ``L = 1 / (d(z_S,a, z_S,b) / d(z_l,a, z_l,b) + 1e-5)`` with the distances averaged over every
    pair of the *global* batch (all-reduced), as the official code averages over its whole batch;
    pairs share z_g and coordinates and differ only in z_l. Returns this replica's share, i.e. the
    loss divided by the number of replicas, so the trainer's sum over replicas is the loss.
    """
    pairs = ops.shape(local_latent)[0] // 2
    z_dist = ops.sum(pair_distance(local_latent[0::2], local_latent[1::2], kind))
    x_dist = ops.sum(pair_distance(structure_latent[0::2], structure_latent[1::2], kind))
    totals = replica_sum(ops.stack([z_dist, x_dist, ops.cast(pairs, "float32")]))
    z_mean = totals[0] / totals[2]
    x_mean = totals[1] / totals[2]
    loss = 1.0 / (x_mean / ops.maximum(z_mean, DISTANCE_FLOOR) + DIVERSITY_EPS)
    return loss / float(num_replicas())
