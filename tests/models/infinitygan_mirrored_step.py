"""Run in a fresh process: one InfinityGAN step with R1 and path-length regularisation on 2 logical
CPUs vs one device (see mirrored_harness.py).

Prints one JSON line with the largest differences; test_infinitygan_distributed.py asserts on it.
Usage: python infinitygan_mirrored_step.py RUN_ROOT
"""

import json
import sys

from mirrored_harness import compare, max_change, paired_trainers, snapshot

# stddev_group=1: the minibatch-stddev statistic is computed per replica (as in any data-parallel
# StyleGAN2, the official DataParallel included), so it cannot equal the single-device value for
# groups > 1; a group of one sample makes it replica-independent.
OVERRIDES = ["train.batch_size=8", "log.progress_bar=false", "model.stddev_group=1", "optim.epsilon=1e-4",
             "model.ts_channels=[8,8]", "model.global_latent_dim=16", "model.local_latent_dim=8", "model.ss_layers=2",
             "model.n_mlp=1", "model.full_size=45",
             "model.d_width_multiplier=0.03125"]


def main(root):
    single, mirrored = paired_trainers("infinitygan", root, OVERRIDES)
    assert single.model.step_variant(1) == "r1+path", single.model.step_variant(1)
    generator, ema = single.model.generator, single.model.generator_ema
    initial, initial_ema = snapshot(generator.trainable_variables), snapshot(ema.trainable_variables)
    report = compare(single, mirrored, group_by="network")
    report["mean_path_length"] = [float(single.model.mean_path_length.numpy()),
                                  float(mirrored.model.mean_path_length.numpy())]
    report["generator_change"] = max_change(initial, generator.trainable_variables)
    report["ema_change"] = max_change(initial_ema, ema.trainable_variables)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
