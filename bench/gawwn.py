"""GAWWN control quality on synthetic birds, and the cost of one paper-size image.

    python -m bench.gawwn              # the default preset's full training (1000 steps), then evaluation
    python -m bench.gawwn --steps 300  # shorter
    python -m bench.gawwn --quick      # smoke run: 40 steps, few samples
    python -m bench.gawwn --seed 1 --out bench/results/gawwn_seed1.json   # another training seed

How well does ``python -m tfcoord.train --model gawwn`` (the ``tiny`` preset) control what and
where it draws? The run is trained once (checkpoints at 0, N/4, N/2, 3N/4 and N steps) and each checkpoint
draws birds for random (caption, box) pairs: a caption of a random species (one of the ten
templates) and the tight box of another real rendered bird. The synthetic renderer is the
ground truth:

* the per-pixel part classifier of :mod:`tfcoord.metrics.quality` (background + the renderer's
  11 part ids, trained on rendered birds and their exact part maps, cached) labels the
  generated pixels;
* (a) ``box_fraction``: the fraction of the bird pixels (anything not background) inside the
  requested box;
* (b) ``colour_match``: for every part the caption names a colour for (crown, breast, belly,
  back, wings, tail), whether the dominant named colour (nearest palette colour) of the pixels
  labelled as that part is the caption's colour; a part with fewer than 4 labelled pixels counts
  as a miss.

Reference rows apply the same measurement to real rendered birds with their own caption and
box (the ceiling) and to generated birds scored against an unrelated box of the same size
(``box_fraction`` of an uncontrolled model). One process per workload (see :mod:`bench.common`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile

from tfcoord import cli
from bench.common import REPO, machine_info, markdown_table, memory, report, run_workload, seconds, start_child, \
    write_json

MODULES = ("tfcoord.models.gawwn.model", "tfcoord.training.loop")
DOMAIN = "synthetic-birds"
EVAL_SAMPLES = 128


def features_workload(quick):
    """The shared part classifier (tfcoord.metrics.quality): from its cache, or trained now."""
    baseline = start_child("tfcoord.metrics.quality.network")
    from tfcoord.metrics.quality.network import Recipe, load_or_train

    network = load_or_train(DOMAIN, Recipe.for_domain(DOMAIN, quick))
    return {**network.info["held_out"], "train_s": network.info["train_s"], "cached": network.info["cached"],
            **memory(baseline)}


def evaluate_workload(run, step, samples, quick):
    baseline = start_child(*MODULES)
    import keras
    import numpy as np

    from tfcoord.config import load_run_config
    from tfcoord.images import to_uint8
    from tfcoord.metrics.quality import structure
    from tfcoord.metrics.quality.domains import get_domain
    from tfcoord.metrics.quality.network import Recipe, load_or_train
    from tfcoord.models import section_classes
    from tfcoord.models.gawwn.model import Gawwn
    from tfcoord.training.checkpoints import restore_networks

    label = load_or_train(DOMAIN, Recipe.for_domain(DOMAIN, quick)).labels
    truth = get_domain(DOMAIN).render("reference", samples)
    real, boxes, captions = truth.images, truth.extras["boxes"], truth.extras["captions"]
    rng = np.random.default_rng(step)
    if run is None:  # the ceiling: real birds, their own captions and boxes
        chosen = [c[rng.integers(len(c))] for c in captions]
        labels = label(real)
        return {"box_fraction": float(np.mean(structure.box_fractions(labels, boxes))),
                "colour_match": float(np.mean(structure.colour_matches(real, chosen, labels))),
                **memory(baseline)}
    config = load_run_config(run, section_classes)
    model = Gawwn(config)
    keras.utils.set_random_seed(config.train.seed)  # step 0: the weights training starts from
    model.build_networks()
    if step:
        restore_networks(model.network_items(), f"{run}/checkpoints/ckpt-{step}")
    # Each sample: a random species' caption, the box of an unrelated real bird.
    other_captions = [captions[(i + 1) % samples] for i in range(samples)]
    chosen = [c[rng.integers(len(c))] for c in other_captions]
    text = np.stack([model.sampler.embed_captions(c) for c in chosen])
    z = model.sampler.latents(step + 1, samples)
    generate_s = seconds(lambda: model.sampler.generate_from_box(z, text, boxes))
    images = to_uint8(model.sampler.generate_from_box(z, text, boxes))
    labels = label(images)
    shifted = np.roll(boxes, 7, axis=0)  # an unrelated box: how much lands there by chance
    return {"box_fraction": float(np.mean(structure.box_fractions(labels, boxes))),
            "colour_match": float(np.mean(structure.colour_matches(images, chosen, labels))),
            "box_fraction_unrelated_box": float(np.mean(structure.box_fractions(labels, shifted))),
            "generate_s_per_image": generate_s / samples,
            **memory(baseline)}


def train_workload(run, steps, seed=None):
    baseline = start_child(*MODULES)
    from tfcoord.config import load_config
    from tfcoord.models import section_classes
    from tfcoord.models.gawwn.model import Gawwn
    from tfcoord.training.loop import Trainer

    quarter = max(steps // 4, 1)
    config = load_config("gawwn", section_classes("gawwn"), preset="tiny",
                         overrides=[f"train.steps={steps}", f"train.checkpoint_every={quarter}",
                                    "train.keep_checkpoints=5", "log.progress_bar=false", f"log.samples_every={quarter}",
                                    *([f"train.seed={seed}"] if seed is not None else [])])
    elapsed = seconds(lambda: Trainer(Gawwn(config), run).fit())
    return {"train_s": elapsed, "steps_per_s": steps / elapsed, **memory(baseline)}


def paper_generation_workload(batch, runs):
    """A CUB 128 x 128 bounding-box G (ngf 128, 1024-d text), untrained, timed per image."""
    baseline = start_child(*MODULES)
    import numpy as np
    import tensorflow as tf

    from tfcoord.models.gawwn import networks
    from tfcoord.models.gawwn.config import GawwnConfig

    generator = networks.box_generator(GawwnConfig(), 1024)
    generate = tf.function(lambda z, t, b: generator([z, t, b], training=False))
    rng = np.random.default_rng(0)
    z, text = rng.normal(size=(batch, 100)).astype("float32"), rng.normal(size=(batch, 1024)).astype("float32")
    box = np.tile(np.array([[0.2, 0.1, 0.8, 0.7]], "float32"), (batch, 1))
    first = seconds(lambda: generate(z, text, box).numpy())
    times = [seconds(lambda: generate(z, text, box).numpy()) for _ in range(runs)]
    return {"first_call_s": first, "s_per_image": statistics.median(times) / batch, **memory(baseline)}


WORKLOADS = {"features": features_workload, "evaluate": evaluate_workload, "train": train_workload,
             "paper_generation": paper_generation_workload}


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.gawwn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="training steps (default: the tiny preset's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 steps, few samples")
    parser.add_argument("--seed", type=int, help="training seed (default: the tiny preset's train.seed)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "gawwn.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        report(WORKLOADS[spec.pop("workload")](**spec))
        return 0
    from tfcoord.config import load_config
    from tfcoord.models import section_classes

    preset = load_config("gawwn", section_classes("gawwn"), preset="tiny")
    default_steps, seed = preset.train.steps, preset.train.seed if args.seed is None else args.seed
    steps = args.steps or (40 if args.quick else default_steps)
    samples = 32 if args.quick else EVAL_SAMPLES
    folder = tempfile.mkdtemp(prefix="bench-gawwn-")
    run = f"{folder}/run"
    try:
        segmenter = run_workload("bench.gawwn", {"workload": "features", "quick": args.quick}, timeout=3600)
        training = run_workload("bench.gawwn", {"workload": "train", "run": run, "steps": steps, "seed": args.seed},
                                timeout=7200)
        rows = [{**run_workload("bench.gawwn", {"workload": "evaluate", "run": None, "step": 0,
                                                "samples": samples, "quick": args.quick}),
                 "what": "real rendered birds (ceiling)", "step": None}]
        quarter = max(steps // 4, 1)  # the checkpoints train_workload writes
        for step in sorted({0, *(min(quarter * q, steps) for q in (1, 2, 3)), steps}):
            rows.append({"what": "generated", "step": step,
                         **run_workload("bench.gawwn", {"workload": "evaluate", "run": run, "step": step,
                                                        "samples": samples, "quick": args.quick})})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    generation = run_workload("bench.gawwn", {"workload": "paper_generation", "batch": 1,
                                              "runs": 3 if args.quick else 7})
    print(f"part classifier (tfcoord.metrics.quality): pixel accuracy {segmenter['pixel_accuracy']:.3f}, mean IoU "
          f"{segmenter['mean_iou']:.3f}, bird IoU {segmenter['foreground_iou']:.3f} on held-out renders")
    print(f"training (seed {seed}): {steps} steps in {training['train_s']:.0f} s ({training['steps_per_s']:.2f} steps/s), "
          f"peak RSS {training['peak_rss_mb']:.0f} MB\n")
    print(markdown_table(rows, [("what", "what", "s"), ("step", "step", "d"), ("box_fraction", "box_fraction", ".3f"),
                                ("unrelated box", "box_fraction_unrelated_box", ".3f"),
                                ("colour_match", "colour_match", ".3f")]))
    print(f"\nCUB 128x128 bounding-box G (73.5 M params), batch 1: {generation['s_per_image'] * 1000:.0f} ms per image "
          f"(first call {generation['first_call_s']:.1f} s); goal: well under 1 s (models.md §6)")
    path = write_json(args.out,
                      {"machine": machine_info(), "steps": steps, "seed": seed, "samples": samples, "segmenter": segmenter,
                       "training": training, "control": rows, "paper_generation": generation})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
