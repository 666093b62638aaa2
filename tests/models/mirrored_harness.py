"""The two-strategy harness of tests/models/*_mirrored_step.py: the same training step on one device
and under MirroredStrategy on 2 logical CPUs (tensorflow.md §8.5), and their largest differences.

Importing this module splits the CPU into two logical devices, so it must come before anything
runs a TensorFlow op; each script runs in a fresh process (a second MirroredStrategy in one process
reuses the first one's collective keys with other shapes, which the runtime refuses).

Adam epsilon 1e-4 in every script: weights whose true gradient is exactly 0 or cancels to round-off
(e.g. biases feeding straight into batch norm or a demodulation) get a gradient that depends on the
reduction order across replicas; Adam's first step normalises any non-zero gradient to about +-lr,
turning that round-off into 1e-4-sized weight differences. epsilon 1e-4 keeps round-off-sized
gradients round-off-sized while every real gradient (>> 1e-4) still takes a full Adam step.
"""

import os

os.environ["TFCOORD_LOGICAL_CPUS"] = "2"

from tfcoord.training.strategy import configure_devices  # noqa: E402

configure_devices()

import numpy as np  # noqa: E402

from tfcoord.config import load_config  # noqa: E402
from tfcoord.models import model_class, section_classes  # noqa: E402
from tfcoord.training.loop import Trainer  # noqa: E402


def trainer(model_type, strategy, root, overrides, preset="tiny"):
    """A prepared Trainer (networks, optimizers, data) of the preset with ``overrides`` under ``strategy``."""
    config = load_config(model_type, section_classes(model_type), preset=preset,
                         overrides=list(overrides) + [f"train.strategy={strategy}"])
    t = Trainer(model_class(model_type)(config), os.path.join(root, strategy))
    t._prepare()
    return t


def paired_trainers(model_type, root, overrides, preset="tiny"):
    """(single-device, 2-replica mirrored) trainers holding the same initial weights."""
    single = trainer(model_type, "default", root, overrides, preset)
    mirrored = trainer(model_type, "mirrored", root, overrides, preset)
    assert mirrored.strategy.num_replicas_in_sync == 2, mirrored.strategy.num_replicas_in_sync
    for name, net in single.model.network_items().items():
        mirrored.model.network_items()[name].set_weights(net.get_weights())
    return single, mirrored


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def max_change(before, variables) -> float:
    return max(float(np.max(np.abs(a - v.numpy()))) for a, v in zip(before, variables))


def run_steps(t, steps=(1,)) -> list[dict]:
    """The loss dicts of training steps ``steps`` on consecutive batches of the run's data stream."""
    step_fn, batches = t._step_function(), t._dataset(0)
    return [{k: float(v) for k, v in step_fn(next(batches), step).items()} for step in steps]


def compare(single, mirrored, steps=(1,), group_by="kind") -> dict:
    """Run ``steps`` on both trainers; the largest differences of losses, weights and replicas.

    ``loss_diff`` is relative to max(1, |loss|) (losses reach 1e2, where a float32 ulp is 1e-5);
    ``weight_diff`` is grouped by variable kind (``trainable`` or the variable's name, e.g.
    ``moving_mean``, ``u``) or by network (``group_by="network"``); ``replica_diff`` is the
    largest difference between the replicas of any mirrored variable.
    """
    losses = {"single": run_steps(single, steps), "mirrored": run_steps(mirrored, steps)}
    report = {"losses": losses["single"][0] if len(steps) == 1 else losses["single"],
              "loss_keys": sorted(losses["single"][-1]),
              "loss_diff": max(abs(a[k] - b[k]) / max(1.0, abs(a[k]))
                               for a, b in zip(losses["single"], losses["mirrored"]) for k in a),
              "weight_diff": {}, "replica_diff": 0.0}
    for name, net in single.model.network_items().items():
        other = mirrored.model.network_items()[name]
        for a, b in zip(net.weights, other.weights):
            group = name if group_by == "network" else ("trainable" if a.trainable else a.path.rsplit("/", 1)[-1])
            diff = float(np.max(np.abs(a.numpy() - b.numpy())))
            report["weight_diff"][group] = max(report["weight_diff"].get(group, 0.0), diff)
            replicas = mirrored.strategy.experimental_local_results(b.value if hasattr(b, "value") else b)
            for replica in replicas[1:]:
                report["replica_diff"] = max(report["replica_diff"],
                                             float(np.max(np.abs(replica.numpy() - replicas[0].numpy()))))
    return report
