"""Run in a fresh process: two CIPS training steps (the first with lazy R1) on 2 logical CPUs vs one
device (see mirrored_harness.py).

Prints one JSON line with the largest differences; test_cips_distributed.py asserts on it.
Usage: python cips_mirrored_step.py RUN_ROOT
"""

import json
import sys

from mirrored_harness import compare, max_change, paired_trainers, snapshot

# Tiny widths, global batch 8 = 2 replicas x 4; minibatch-stddev groups of 4 consecutive samples
# (model.stddev_grouping=contiguous, the default) are the same on one device and on two replicas.
OVERRIDES = ["model.size=16", "model.hidden_size=16", "model.style_dim=16", "model.n_mlp=2",
             "model.width_multiplier=0.03125", "model.d_width_multiplier=0.03125", "train.batch_size=8",
             "log.progress_bar=false", "optim.epsilon=1e-4"]
STEPS = (1, 2)


def main(root):
    single, mirrored = paired_trainers("cips", root, OVERRIDES)
    networks = single.model.network_items()
    initial = {name: snapshot(net.weights) for name, net in networks.items()}
    report = compare(single, mirrored, STEPS, group_by="network")
    report["variants"] = [sorted(losses) for losses in report["losses"]]
    report["change"] = {name: max_change(initial[name], net.weights) for name, net in networks.items()}
    for name in ("g_optimizer", "d_optimizer"):
        a, b = getattr(single.model, name), getattr(mirrored.model, name)
        report[f"{name}_iterations"] = [int(a.iterations.numpy()), int(b.iterations.numpy())]
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
