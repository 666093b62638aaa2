"""Run in a fresh process: one COCO-GAN step on 2 logical CPUs vs one device (tensorflow.md §8.5).

Prints one JSON line with the largest differences; the test asserts on it.
Usage: python cocogan_mirrored_step.py RUN_ROOT
"""

import json
import os
import sys

os.environ["TFCOORD_LOGICAL_CPUS"] = "2"

from tfcoord.training.strategy import configure_devices  # noqa: E402

configure_devices()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcoord.config import load_config  # noqa: E402
from tfcoord.models import section_classes  # noqa: E402
from tfcoord.models.cocogan.model import CocoGan  # noqa: E402
from tfcoord.training.loop import Trainer  # noqa: E402

# Biases that feed straight into (conditional) batch norm have a true gradient of exactly 0,
# so their computed gradient is round-off, which differs with the reduction order across
# replicas. Adam's first step normalises any non-zero gradient to about +-lr, turning that
# round-off into 1e-4-sized weight differences. epsilon 1e-4 keeps round-off-sized
# gradients round-off-sized while every real gradient (>> 1e-4) still takes a full Adam step.
OVERRIDES = ["model.ngf=8", "model.ndf=8", "train.batch_size=8", "log.progress_bar=false",
             "model.content_head=true", "loss.content_weight=1.0", "optim.epsilon=1e-4"]


def trainer(strategy, root):
    config = load_config("cocogan", section_classes("cocogan"), preset="tiny",
                         overrides=OVERRIDES + [f"train.strategy={strategy}"])
    t = Trainer(CocoGan(config), os.path.join(root, strategy))
    t._prepare()
    return t


def networks(t):
    return t.model.network_items()


def main(root):
    single, mirrored = trainer("default", root), trainer("mirrored", root)
    assert mirrored.strategy.num_replicas_in_sync == 2, mirrored.strategy.num_replicas_in_sync
    for name, net in networks(single).items():
        networks(mirrored)[name].set_weights(net.get_weights())
    initial = [v.numpy().copy() for v in single.model.generator.trainable_variables]
    losses = {}
    for key, t in (("single", single), ("mirrored", mirrored)):
        step = t._step_function()
        losses[key] = {k: float(v) for k, v in step(next(t._dataset(0)), 1).items()}
    # Losses reach 1e2 (alpha = 100), where a float32 ulp is 1e-5: compare relatively.
    report = {"loss_diff": max(abs(losses["single"][k] - losses["mirrored"][k]) / max(1.0, abs(losses["single"][k]))
                               for k in losses["single"]),
              "losses": losses["single"], "weight_diff": {}, "replica_diff": 0.0}
    for name, net in networks(single).items():
        other = networks(mirrored)[name]
        for a, b in zip(net.weights, other.weights):
            kind = "trainable" if a.trainable else a.path.rsplit("/", 1)[-1]
            diff = float(np.max(np.abs(a.numpy() - b.numpy())))
            report["weight_diff"][kind] = max(report["weight_diff"].get(kind, 0.0), diff)
            replicas = mirrored.strategy.experimental_local_results(b.value if hasattr(b, "value") else b)
            for replica in replicas[1:]:
                report["replica_diff"] = max(report["replica_diff"],
                                             float(np.max(np.abs(replica.numpy() - replicas[0].numpy()))))
    report["generator_change"] = max(float(np.max(np.abs(a - v.numpy())))
                                     for a, v in zip(initial, single.model.generator.trainable_variables))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
