"""Run in a fresh process: one COCO-GAN step on 2 logical CPUs vs one device (see mirrored_harness.py).

Prints one JSON line with the largest differences; test_cocogan_distributed.py asserts on it.
Usage: python cocogan_mirrored_step.py RUN_ROOT
"""

import json
import sys

from mirrored_harness import compare, max_change, paired_trainers, snapshot

# The content head and its loss on, so that every COCO-GAN loss term crosses the replicas.
OVERRIDES = ["model.ngf=8", "model.ndf=8", "train.batch_size=8", "log.progress_bar=false",
             "model.content_head=true", "loss.content_weight=1.0", "optim.epsilon=1e-4"]


def main(root):
    single, mirrored = paired_trainers("cocogan", root, OVERRIDES)
    initial = snapshot(single.model.generator.trainable_variables)
    report = compare(single, mirrored)
    report["generator_change"] = max_change(initial, single.model.generator.trainable_variables)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
