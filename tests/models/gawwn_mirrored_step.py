"""Run in a fresh process: one GAWWN step on 2 logical CPUs vs one device (tensorflow.md §8.5).

Prints one JSON line per configuration with the largest differences; the test asserts on them.
Usage: python gawwn_mirrored_step.py RUN_ROOT [CONFIGURATION ...] (default: all; run one per process,
since a second MirroredStrategy in one process collides with the first's collective keys)
"""

import json
import os
import sys

from mirrored_harness import compare, max_change, paired_trainers, snapshot

COMMON = ["model.ngf=8", "model.ndf=8", "model.text_features=8", "model.keypoint_generator_width=8",
          "text.embedding_dim=16", "train.batch_size=8", "log.progress_bar=false", "optim.epsilon=1e-4"]
CONFIGURATIONS = {
    # the default preset: box model, D on joint batches, keypoint generator, fixed text encoder
    "box": [],
    # keypoint model, official separate D batches, char-CNN-GRU trained by joint embedding (all_gather)
    "keypoints": ["model.conditioning=keypoints", "model.d_joint_batch=false", "model.keypoint_generator=false",
                  "text.encoder=char-cnn-gru", "text.train_encoder=true", "text.cnn_channels=[8, 8, 8]",
                  "text.image_encoder_width=4"],
}


def main(root, names=None):
    for name, overrides in CONFIGURATIONS.items():
        if names and name not in names:
            continue
        single, mirrored = paired_trainers("gawwn", os.path.join(root, name), COMMON + overrides)
        initial = snapshot(single.model.generator.trainable_variables)
        report = compare(single, mirrored)
        report["generator_change"] = max_change(initial, single.model.generator.trainable_variables)
        print(json.dumps({"configuration": name, **report}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
