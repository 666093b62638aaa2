"""Zero-shot retrieval of the text encoder on synthetic birds: before and after the paper's SJE.

    python -m bench.text_encoder              # 600 steps each (the tiny preset's length)
    python -m bench.text_encoder --steps 300  # shorter
    python -m bench.text_encoder --quick      # smoke run: 30 steps, few evaluation images

Every workload trains the ``tiny`` preset of ``python -m tfcoord.train --model text-encoder``
(same widths, seed, steps, batch) with every 5th species held out of training
(``loss.zero_shot_every=5``: 40 of the 200 species), on two image sides:

* ``cnn``: synthetic-birds images, a small CNN trained jointly (``ImageEncoder``, centred scores)
  on a 32 x 32 crop around each bird (the preset's ``model.box_crop_size``, ``optim.lr`` 2e-3);
  zero-shot scoring centres both sides as training does (raw scores were at chance);
* ``features``: the paper's setting, fixed image features from a file (``--image-features``):
  an annotation file of 2 records per species (its ten captions) whose feature row is the
  species' part colours, one-hot (6 parts x 10 colours, 64-d, + N(0, 0.1) noise per record):
  a perfect image encoder standing in for GoogLeNet; no centring (the cub preset's setting).

and two encoders + losses:

* ``before``: the encoder and loss tfcoord had before (cvpr2016 HybridCNN pooling, 8 GRU steps,
  the GRU's last state; the per-example hinge ``joint_embedding_loss``);
* ``after``: the published encoder's structure (no third pooling, 18 GRU steps, the states
  averaged) and the paper's symmetric structured joint embedding with class expectations
  (``structured_joint_embedding_loss``, the official code's sum over classes).

Then :meth:`TextEncoderModel.zero_shot` scores images never trained on, as the paper does: each
class's text embedding is the mean of its captions' embeddings, an image takes the best class
(top-1 accuracy, chance 1/40 on the held-out species) and each class's text ranks the images
(mean average precision). ``seen`` rows score the trained species (chance 1/160): new renders on
the ``cnn`` side, the training records themselves on the ``features`` side.
One process per workload (see :mod:`bench.common`); the table is printed and the numbers
written to ``bench/results/text_encoder.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import REPO, machine_info, markdown_table, memory, report, run_workload, start_child, write_json
from tfcoord import cli

VARIANTS = {
    "before": ["loss.objective=instance-hinge", "model.final_pool=true", "model.average_states=false"],
    "after": ["loss.objective=sje", "model.final_pool=false", "model.average_states=true"],
}


IMAGE_SIDES = {
    "cnn": [],
    "features": ["model.embedding_dim=64", "loss.center_features=false"],
}


def write_attribute_birds(folder, copies: int = 2, seed: int = 0) -> tuple[Path, Path]:
    """An annotation file of ``copies`` records per synthetic species and its image-feature file.

    Each record carries its species' ten captions (shuffled) and one blank 16 x 16 image (never
    looked at); its feature row is the one-hot colour of each of the six coloured parts (60 of
    64 columns) plus N(0, 0.1) noise. Returns (annotations.jsonl, features.npy).
    """
    import numpy as np
    from PIL import Image

    from tfcoord.data.gawwn.annotations import FORMAT
    from tfcoord.data.gawwn.parts import CUB_PARTS
    from tfcoord.data.synthetic_birds import COLOUR_NAMES, COLOURED_PARTS, SPECIES, species_captions

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "blank.png")
    rng = np.random.default_rng(seed)
    lines = [json.dumps({"format": FORMAT, "version": 1, "parts": list(CUB_PARTS)})]
    rows = []
    for _ in range(copies):
        for label, species in enumerate(SPECIES):
            lines.append(json.dumps({"image": "blank.png", "class": label,
                                     "captions": species_captions(species, rng)}))
            row = rng.normal(0.0, 0.1, 64).astype(np.float32)
            for k, part in enumerate(COLOURED_PARTS):
                row[k * len(COLOUR_NAMES) + COLOUR_NAMES.index(getattr(species, part))] += 1.0
            rows.append(row)
    (folder / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    np.save(folder / "features.npy", np.stack(rows))
    return folder / "annotations.jsonl", folder / "features.npy"


def worker(spec: dict) -> None:
    baseline = start_child("tfcoord.models.text_encoder.model")
    import keras
    import tensorflow as tf

    from tfcoord.config import load_config
    from tfcoord.data import make_dataset
    from tfcoord.models import section_classes
    from tfcoord.models.text_encoder.model import TextEncoderModel

    overrides = VARIANTS[spec["variant"]] + IMAGE_SIDES[spec["image_side"]] + [
        f"train.batch_size={spec['batch']}", f"train.seed={spec['seed']}"]
    if spec["image_side"] == "features":
        import tempfile

        annotations, features = write_attribute_birds(tempfile.mkdtemp(prefix="text_encoder_bench_"))
        overrides += [f"data.source=annotations:{annotations}", f"model.image_features={features}"]
    config = load_config("text-encoder", section_classes("text-encoder"), preset="tiny", overrides=overrides)
    model = TextEncoderModel(config)
    keras.utils.set_random_seed(spec["seed"])
    model.build()
    batch_size = config.train.batch_size
    data = make_dataset(config.data.source, image_size=model.image_size(), batch_size=batch_size,
                        seed=config.train.seed)
    step = tf.function(lambda batch: model.train_step(batch, batch_size))
    start, losses = time.perf_counter(), []
    for number, batch in enumerate(data.take(spec["steps"])):
        losses.append(float(step({**batch, **model.step_inputs(number, batch_size)})["loss"]))
    train_seconds = time.perf_counter() - start
    # The features' annotation file has 400 records: one pass scores every one of them.
    eval_images = 400 if spec["image_side"] == "features" else spec["eval_images"]
    held_out = model.zero_shot(eval_images, batch_size=50, held_out=True)
    seen = model.zero_shot(eval_images, batch_size=50, held_out=False)
    report({"held_out": held_out, "seen": seen, "first_loss": losses[0], "last_loss": sum(losses[-20:]) / len(
        losses[-20:]), "train_seconds": train_seconds, **memory(baseline)})


def main(argv=None) -> int:
    parser = cli.ArgumentParser(prog="python -m bench.text_encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=1024, help="evaluation images (all species)")
    parser.add_argument("--quick", action="store_true", help="30 steps, 128 evaluation images")
    parser.add_argument("--image-side", nargs="+", choices=list(IMAGE_SIDES), default=list(IMAGE_SIDES),
                        help="which image sides to run (default: both)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "text_encoder.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    steps, eval_images = (30, 128) if args.quick else (args.steps, args.eval_images)
    machine, rows = machine_info(), []
    for image_side in args.image_side:
        for variant in VARIANTS:
            spec = {"variant": variant, "image_side": image_side, "steps": steps, "batch": args.batch,
                    "seed": args.seed, "eval_images": eval_images}
            print(f"[{image_side} / {variant}] training {steps} steps ...", file=sys.stderr, flush=True)
            rows.append(run_workload("bench.text_encoder", spec, timeout=3600))
    table = []
    for row in rows:
        for split in ("held_out", "seen"):
            table.append({"side": row["image_side"], "variant": row["variant"], "classes": f"{split} ({row[split]['classes']})",
                          "top1": row[split]["top1"], "map": row[split]["map"], "chance": row[split]["chance"],
                          "loss": f"{row['first_loss']:.3f} -> {row['last_loss']:.3f}",
                          "seconds": row["train_seconds"]})
    print(markdown_table(table, [("image side", "side", "s"), ("variant", "variant", "s"), ("species", "classes", "s"),
                                 ("top-1", "top1", ".3f"), ("mAP", "map", ".3f"), ("chance", "chance", ".3f"),
                                 ("train loss", "loss", "s"), ("train s", "seconds", ".0f")]))
    path = write_json(args.out, {"machine": machine, "steps": steps, "batch": args.batch, "seed": args.seed,
                                 "eval_images": eval_images, "variants": VARIANTS, "image_sides": IMAGE_SIDES,
                                 "results": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
