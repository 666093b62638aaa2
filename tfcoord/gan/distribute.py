"""Reductions of a training step across replicas (tensorflow.md §8.3); the identity on one device."""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def average(per_example, global_batch_size: int):
    """Sum over this replica's examples divided by the global batch (tf.nn.compute_average_loss), so the
    trainer's sum of the replicas' gradients is the gradient of the global mean."""
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def num_replicas() -> int:
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def replica_sum(value):
    """Sum of ``value`` over the replicas (identity on one device); differentiable (the gradient of an
    all-sum is an all-sum), so a loss built from global statistics gets the global gradient."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def all_gather(value):
    """``value`` of every replica concatenated along axis 0 (differentiable); itself on one replica."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_gather(value, axis=0)


def gather_features(image, text, labels):
    """Every replica's image features, text features and labels (the negatives of a joint-embedding loss), in
    one all-gather.

    One collective instead of three: separate all-gathers of float and int tensors next to
    synchronised batch norms were issued in different orders on different replicas.
    """
    width = image.shape[-1]
    joined = all_gather(ops.concatenate([image, text, ops.expand_dims(ops.cast(labels, image.dtype), -1)], axis=-1))
    return joined[:, :width], joined[:, width:-1], ops.cast(joined[:, -1], labels.dtype)
