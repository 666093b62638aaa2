"""Run in a fresh process: one GAWWN step on 2 logical CPUs vs one device (tensorflow.md §8.5).

Prints one JSON line per configuration with the largest differences; the test asserts on them.
Usage: python gawwn_mirrored_step.py RUN_ROOT [CONFIGURATION ...] (default: all; run one per process,
since a second MirroredStrategy in one process collides with the first's collective keys)
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
from tfcoord.models.gawwn.model import Gawwn  # noqa: E402
from tfcoord.training.loop import Trainer  # noqa: E402

# Adam epsilon 1e-4: see cocogan_mirrored_step.py (biases feeding batch norm have a true gradient
# of 0, whose round-off Adam would otherwise blow up to a full step).
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


def trainer(strategy, root, overrides):
    config = load_config("gawwn", section_classes("gawwn"), preset="tiny",
                         overrides=COMMON + overrides + [f"train.strategy={strategy}"])
    t = Trainer(Gawwn(config), os.path.join(root, strategy))
    t._prepare()
    return t


def compare(root, overrides):
    single, mirrored = trainer("default", root, overrides), trainer("mirrored", root, overrides)
    assert mirrored.strategy.num_replicas_in_sync == 2, mirrored.strategy.num_replicas_in_sync
    for name, net in single.model.network_items().items():
        mirrored.model.network_items()[name].set_weights(net.get_weights())
    initial = [v.numpy().copy() for v in single.model.generator.trainable_variables]
    losses = {}
    for key, t in (("single", single), ("mirrored", mirrored)):
        step = t._step_function()
        losses[key] = {k: float(v) for k, v in step(next(t._dataset(0)), 1).items()}
    report = {"loss_diff": max(abs(losses["single"][k] - losses["mirrored"][k]) / max(1.0, abs(losses["single"][k]))
                               for k in losses["single"]),
              "losses": losses["single"], "weight_diff": {}, "replica_diff": 0.0}
    for name, net in single.model.network_items().items():
        other = mirrored.model.network_items()[name]
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
    return report


def main(root, names=None):
    for name, overrides in CONFIGURATIONS.items():
        if names and name not in names:
            continue
        print(json.dumps({"configuration": name, **compare(os.path.join(root, name), overrides)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
