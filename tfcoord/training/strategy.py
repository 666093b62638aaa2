"""Choosing a ``tf.distribute`` strategy.

``auto`` is MirroredStrategy when more than one GPU is visible, else the default
strategy. Setting ``TFCOORD_LOGICAL_CPUS=N`` splits the CPU into N logical devices
before TensorFlow starts, and ``mirrored`` then mirrors over them: how multi-GPU
code is exercised on a CPU-only machine (tensorflow.md §8.5). It must be applied
before any TensorFlow op runs, hence :func:`configure_devices` first thing in a CLI.

``multi_worker`` is MultiWorkerMirroredStrategy over the cluster that ``TF_CONFIG``
describes. Its collectives must be configured before the first TensorFlow op too
("Collective ops must be configured at program startup"), so the CLI creates it with
:func:`start_strategy` right after :func:`configure_devices`; later calls of
:func:`make_strategy` return that same object (one per process).
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfcoord.errors import UserError
from tfcoord.training.cluster import cluster_role

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")
LOGICAL_CPUS_ENV = "TFCOORD_LOGICAL_CPUS"
_multi_worker_strategy = None


def configure_devices() -> None:
    """Apply ``TFCOORD_LOGICAL_CPUS`` (a no-op when unset)."""
    value = os.environ.get(LOGICAL_CPUS_ENV)
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{LOGICAL_CPUS_ENV} must be a positive integer, got {value!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(value))
    except RuntimeError:
        pass  # already initialised (e.g. configured twice in one process): keep what exists


def start_strategy(name: str) -> None:
    """Create the strategies that must exist before the first TensorFlow op (``multi_worker``).

    Blocks until every worker of the cluster has started (tf.distribute's own barrier).
    """
    if name == "multi_worker":
        make_strategy(name)


def make_strategy(name: str) -> tf.distribute.Strategy:
    global _multi_worker_strategy
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        if _multi_worker_strategy is None:
            cluster_role()  # a clear line for a missing or malformed TF_CONFIG, before TensorFlow parses it
            # AUTO: ring all-reduce on CPUs, NCCL where every worker has GPUs.
            options = tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        return _multi_worker_strategy
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else cpus[0].name)
    devices = [d.name for d in gpus] if gpus else [d.name for d in cpus]
    return tf.distribute.MirroredStrategy(devices)
