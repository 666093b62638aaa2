"""Run in a fresh process: one InfinityGAN step on 2 logical CPUs vs one device (tensorflow.md §8.5).

Step 1 runs every update of the official loop: D, lazy R1, G (with the diversity loss, whose
distances are all-reduced across replicas), lazy path length (whose running mean is
all-reduced), and the G EMA. Prints one JSON line with the largest differences.
Usage: python infinitygan_mirrored_step.py RUN_ROOT
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
from tfcoord.models.infinitygan.model import InfinityGan  # noqa: E402
from tfcoord.training.loop import Trainer  # noqa: E402

# stddev_group=1: the minibatch-stddev statistic is computed per replica (as in any data-parallel
# StyleGAN2, the official DataParallel included), so it cannot equal the single-device value for
# groups > 1; a group of one sample makes it replica-independent. epsilon 1e-4: as in the COCO-GAN
# test, keeps round-off-sized gradients (e.g. of biases right before a demodulation) from being
# normalised into full Adam steps.
OVERRIDES = ["train.batch_size=8", "log.progress_bar=false", "model.stddev_group=1", "optim.epsilon=1e-4",
             "model.ts_channels=[8,8]", "model.global_latent_dim=16", "model.local_latent_dim=8", "model.ss_layers=2",
             "model.n_mlp=1", "model.full_size=45",
             "model.d_width_multiplier=0.03125"]


def trainer(strategy, root):
    config = load_config("infinitygan", section_classes("infinitygan"), preset="tiny",
                         overrides=OVERRIDES + [f"train.strategy={strategy}"])
    t = Trainer(InfinityGan(config), os.path.join(root, strategy))
    t._prepare()
    return t


def main(root):
    single, mirrored = trainer("default", root), trainer("mirrored", root)
    assert mirrored.strategy.num_replicas_in_sync == 2, mirrored.strategy.num_replicas_in_sync
    for name, net in single.model.network_items().items():
        mirrored.model.network_items()[name].set_weights(net.get_weights())
    initial = [v.numpy().copy() for v in single.model.generator.trainable_variables]
    initial_ema = [v.numpy().copy() for v in single.model.generator_ema.trainable_variables]
    losses = {}
    for key, t in (("single", single), ("mirrored", mirrored)):
        assert t.model.step_variant(1) == "r1+path", t.model.step_variant(1)
        step = t._step_function()
        losses[key] = {k: float(v) for k, v in step(next(t._dataset(0)), 1).items()}
    report = {"loss_diff": max(abs(losses["single"][k] - losses["mirrored"][k]) / max(1.0, abs(losses["single"][k]))
                               for k in losses["single"]),
              "loss_keys": sorted(losses["single"]), "losses": losses["single"], "weight_diff": {}, "replica_diff": 0.0}
    for name, net in single.model.network_items().items():
        other = mirrored.model.network_items()[name]
        for a, b in zip(net.weights, other.weights):
            diff = float(np.max(np.abs(a.numpy() - b.numpy())))
            report["weight_diff"][name] = max(report["weight_diff"].get(name, 0.0), diff)
            replicas = mirrored.strategy.experimental_local_results(b.value if hasattr(b, "value") else b)
            for replica in replicas[1:]:
                report["replica_diff"] = max(report["replica_diff"],
                                             float(np.max(np.abs(replica.numpy() - replicas[0].numpy()))))
    report["mean_path_length"] = [float(single.model.mean_path_length.numpy()),
                                  float(mirrored.model.mean_path_length.numpy())]
    report["generator_change"] = max(float(np.max(np.abs(a - v.numpy())))
                                     for a, v in zip(initial, single.model.generator.trainable_variables))
    report["ema_change"] = max(float(np.max(np.abs(a - v.numpy())))
                               for a, v in zip(initial_ema, single.model.generator_ema.trainable_variables))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
