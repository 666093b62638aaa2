"""Run in a fresh process: two CIPS training steps (the first with lazy R1) on 2 logical CPUs vs one device.

Prints one JSON line with the largest differences; test_cips_distributed.py asserts on it.
Usage: python cips_mirrored_step.py RUN_ROOT
"""

import json
import os
import sys

os.environ["TFCOORD_LOGICAL_CPUS"] = "2"

from tfcoord.training.strategy import configure_devices  # noqa: E402

configure_devices()

import numpy as np  # noqa: E402

from tfcoord.config import load_config  # noqa: E402
from tfcoord.models import section_classes  # noqa: E402
from tfcoord.models.cips.model import Cips  # noqa: E402
from tfcoord.training.loop import Trainer  # noqa: E402

# Tiny widths, global batch 8 = 2 replicas x 4; minibatch-stddev groups of 4 consecutive samples
# (model.stddev_grouping=contiguous, the default) are the same on one device and on two replicas.
# Adam epsilon 1e-4 (as in cocogan_mirrored_step.py): with beta_1 = 0 Adam's first steps move every
# weight by about +-lr whatever its gradient, so kernel entries whose gradients cancel to ~1e-8
# turn reduction-order round-off into 1e-4 weight differences; epsilon 1e-4 keeps round-off-sized
# gradients round-off-sized while every real gradient still takes a full Adam step.
OVERRIDES = ["model.size=16", "model.hidden_size=16", "model.style_dim=16", "model.n_mlp=2",
             "model.width_multiplier=0.03125", "model.d_width_multiplier=0.03125", "train.batch_size=8",
             "log.progress_bar=false", "optim.epsilon=1e-4"]


def trainer(strategy, root):
    config = load_config("cips", section_classes("cips"), preset="tiny",
                         overrides=OVERRIDES + [f"train.strategy={strategy}"])
    t = Trainer(Cips(config), os.path.join(root, strategy))
    t._prepare()
    return t


def main(root):
    single, mirrored = trainer("default", root), trainer("mirrored", root)
    assert mirrored.strategy.num_replicas_in_sync == 2, mirrored.strategy.num_replicas_in_sync
    for name, net in single.model.network_items().items():
        mirrored.model.network_items()[name].set_weights(net.get_weights())
    initial = {name: [v.numpy().copy() for v in net.weights] for name, net in single.model.network_items().items()}
    losses = {}
    for key, t in (("single", single), ("mirrored", mirrored)):
        step_fn, batches = t._step_function(), t._dataset(0)
        losses[key] = [{k: float(v) for k, v in step_fn(next(batches), step).items()} for step in (1, 2)]
    report = {"variants": [sorted(step) for step in losses["single"]], "losses": losses["single"],
              "loss_diff": max(abs(a[k] - b[k]) / max(1.0, abs(a[k]))
                               for a, b in zip(losses["single"], losses["mirrored"]) for k in a),
              "weight_diff": {}, "replica_diff": 0.0, "change": {}}
    for name, net in single.model.network_items().items():
        other = mirrored.model.network_items()[name]
        report["weight_diff"][name] = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                                          for a, b in zip(net.weights, other.weights))
        report["change"][name] = max(float(np.max(np.abs(a - v.numpy()))) for a, v in zip(initial[name], net.weights))
        for b in other.weights:
            replicas = mirrored.strategy.experimental_local_results(b.value if hasattr(b, "value") else b)
            for replica in replicas[1:]:
                report["replica_diff"] = max(report["replica_diff"],
                                             float(np.max(np.abs(replica.numpy() - replicas[0].numpy()))))
    for name in ("g_optimizer", "d_optimizer"):
        a, b = getattr(single.model, name), getattr(mirrored.model, name)
        report[f"{name}_iterations"] = [int(a.iterations.numpy()), int(b.iterations.numpy())]
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
