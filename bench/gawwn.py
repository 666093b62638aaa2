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

* a small per-pixel part classifier (background + the renderer's 11 part ids) is trained on
  rendered birds and their exact part maps, then labels the generated pixels;
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

from bench.common import REPO, machine_info, markdown_table, memory, report, run_workload, seconds, start_child, \
    write_json

MODULES = ("tfcoord.models.gawwn.model", "tfcoord.training.loop")
NUM_CLASSES = 12  # background + part ids 1..11 of tfcoord.data.synthetic_birds.PART_IDS
SEGMENTER_IMAGES = 1536
SEGMENTER_STEPS = 600
EVAL_SAMPLES = 128
SIZE = 64
SEED = 20240


# -- ground truth -----------------------------------------------------------------------------
def rendered(count, offset):
    """(images uint8, part maps, boxes, species, captions) of rendered birds offset.. offset + count."""
    import numpy as np

    from tfcoord.data.synthetic_birds import render_bird

    samples = [render_bird(SEED, offset + i, SIZE, SIZE) for i in range(count)]
    return (np.stack([s.image for s in samples]), np.stack([s.parts for s in samples]).astype("int32"),
            np.stack([s.bbox for s in samples]), [s.species for s in samples], [s.captions for s in samples])


def build_segmenter():
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for rate, width in ((1, 32), (2, 32), (4, 48), (8, 48), (1, 48)):
        x = keras.layers.Conv2D(width, 3, padding="same", dilation_rate=rate, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1)(x))


def segmenter_workload(folder, images, steps):
    baseline = start_child("tfcoord.data.synthetic_birds")
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    pixels, parts, *_ = rendered(images, 10_000_000)
    # Background covers ~90 % of the pixels: weight it down so that the parts are learned at all.
    weights = np.where(parts > 0, 1.0, 0.15).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((pixels.astype("float32") / 127.5 - 1.0, parts, weights)).shuffle(
        images, seed=0).repeat().batch(32)
    model = build_segmenter()
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    elapsed = seconds(lambda: model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0))
    test_pixels, test_parts, *_ = rendered(128, 20_000_000)
    predicted = np.argmax(model.predict(test_pixels.astype("float32") / 127.5 - 1.0, verbose=0), -1)
    model.save_weights(f"{folder}/segmenter.weights.h5")
    bird = test_parts > 0
    return {"pixel_accuracy": float((predicted == test_parts).mean()),
            "bird_iou": float((bird & (predicted > 0)).sum() / (bird | (predicted > 0)).sum()),
            "train_s": elapsed, **memory(baseline)}


def control_scores(images, boxes, captions, labels):
    """(box fraction per image, [colour matches], [named parts]) of images (uint8) given part labels."""
    import numpy as np

    from tfcoord.data.synthetic_birds import PALETTE, PART_IDS, caption_colours

    names = list(PALETTE)
    table = np.array([PALETTE[n] for n in names], "float32")
    fractions, matches = [], []
    for image, box, caption, label in zip(images, boxes, captions, labels):
        bird = label > 0
        rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
        ymin, xmin, ymax, xmax = np.asarray(box) * SIZE
        inside = (rows >= ymin) & (rows <= ymax) & (cols >= xmin) & (cols <= xmax)
        fractions.append(float((bird & inside).sum() / max(bird.sum(), 1)))
        nearest = np.argmin(((image[..., None, :] / 255.0 - table) ** 2).sum(-1), axis=-1)
        for part, colour in caption_colours(caption).items():
            region = np.isin(label, PART_IDS[part])
            if region.sum() < 4:
                matches.append(0.0)
                continue
            dominant = names[int(np.bincount(nearest[region], minlength=len(names)).argmax())]
            matches.append(float(dominant == colour))
    return fractions, matches


def evaluate_workload(folder, run, step, samples):
    baseline = start_child(*MODULES)
    import keras
    import numpy as np

    from tfcoord.config import load_run_config
    from tfcoord.models import section_classes
    from tfcoord.models.gawwn.model import Gawwn
    from tfcoord.images import to_uint8
    from tfcoord.training.checkpoints import restore_networks

    segmenter = build_segmenter()
    segmenter.load_weights(f"{folder}/segmenter.weights.h5")

    def label(images_uint8):
        return np.argmax(segmenter.predict(images_uint8.astype("float32") / 127.5 - 1.0, verbose=0), -1)

    real, _, boxes, species, captions = rendered(samples, 30_000_000)
    rng = np.random.default_rng(step)
    if run is None:  # the ceiling: real birds, their own captions and boxes
        chosen = [c[rng.integers(len(c))] for c in captions]
        fractions, matches = control_scores(real, boxes, chosen, label(real))
        return {"box_fraction": float(np.mean(fractions)), "colour_match": float(np.mean(matches)),
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
    text = np.stack([model.embed_captions(c) for c in chosen])
    z = model.latents(step + 1, samples)
    generate_s = seconds(lambda: model.generate_from_box(z, text, boxes))
    images = to_uint8(model.generate_from_box(z, text, boxes))
    labels = label(images)
    fractions, matches = control_scores(images, boxes, chosen, labels)
    shifted = np.roll(boxes, 7, axis=0)  # an unrelated box: how much lands there by chance
    chance, _ = control_scores(images, shifted, chosen, labels)
    return {"box_fraction": float(np.mean(fractions)), "colour_match": float(np.mean(matches)),
            "box_fraction_unrelated_box": float(np.mean(chance)), "generate_s_per_image": generate_s / samples,
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


WORKLOADS = {"segmenter": segmenter_workload, "evaluate": evaluate_workload, "train": train_workload,
             "paper_generation": paper_generation_workload}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gawwn", description=__doc__.split("\n\n")[0])
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
        segmenter = run_workload("bench.gawwn", {"workload": "segmenter", "folder": folder,
                                                 "images": 256 if args.quick else SEGMENTER_IMAGES,
                                                 "steps": 60 if args.quick else SEGMENTER_STEPS}, timeout=3600)
        training = run_workload("bench.gawwn", {"workload": "train", "run": run, "steps": steps, "seed": args.seed},
                                timeout=7200)
        rows = [{**run_workload("bench.gawwn", {"workload": "evaluate", "folder": folder, "run": None, "step": 0,
                                                "samples": samples}),
                 "what": "real rendered birds (ceiling)", "step": None}]
        quarter = max(steps // 4, 1)  # the checkpoints train_workload writes
        for step in sorted({0, *(min(quarter * q, steps) for q in (1, 2, 3)), steps}):
            rows.append({"what": "generated", "step": step,
                         **run_workload("bench.gawwn", {"workload": "evaluate", "folder": folder, "run": run,
                                                        "step": step, "samples": samples})})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    generation = run_workload("bench.gawwn", {"workload": "paper_generation", "batch": 1,
                                              "runs": 3 if args.quick else 7})
    print(f"part classifier: pixel accuracy {segmenter['pixel_accuracy']:.3f}, bird IoU {segmenter['bird_iou']:.3f} "
          "on held-out renders")
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
    sys.exit(main())
