"""How good are the default models? Each README command trained, then scored offline on its embedded data.

    python -m bench.quality                          # cocogan, cips, infinitygan, gawwn (about 40 min on 2 cores)
    python -m bench.quality --model cips gawwn       # some of them; also gawwn-keypoints (the keypoint preset)
    python -m bench.quality --quick                  # smoke run: a few steps, few samples, quick feature networks
    python -m bench.quality --write-docs             # also docs/images/quality_*.png and their captions
    python -m bench.quality --model cocogan --steps 4000   # past the budget: where would the targets be met?

For every model it runs the README's command, ``python -m tfcoord.train --model M`` with
nothing else but ``--out`` (``--quick`` adds ``--set`` for a few steps), timing it, and then
evaluates the untrained generator (step 0: seeded as training starts) and every checkpoint
the run kept, with :mod:`tfcoord.metrics.quality`, against renders of the same embedded source
that neither the models nor the feature network saw:

* realism: precision, recall (k-NN manifolds) and KID in the feature network's space; the
  ceiling row (``real``) scores a second set of real renders the same way;
* landscapes (COCO-GAN, CIPS, InfinityGAN): ``single horizon``, the share of samples whose
  every column has sky above water or ground; COCO-GAN: ``seam ratio``, the neighbour
  differences across micro-patch borders over those inside the patches (1.0: no seams);
  CIPS and InfinityGAN: ``horizon jump``, the mean change of the horizon row between
  neighbouring strips (a quarter of the height wide) of canvases 4 x the training width, drawn
  by the canvas engine as ``python -m tfcoord.generate --width`` does (CIPS treats a larger
  canvas as a denser grid, so its real row is a render stretched 4 x; InfinityGAN's extends
  the scene, so its real row is a render 4 x as wide);
* birds (GAWWN): for (caption of one bird, box or keypoints of another) pairs, ``box
  fraction`` (bird pixels inside the box), ``unrelated box`` (the same against a box that was
  not asked for: chance), ``colour match`` (named part colours drawn), and for the keypoint
  preset ``keypoint error`` (distance from each given keypoint to its part, fraction of the
  side) and ``keypoints found``.

``--steps N`` trains N steps instead of the preset's and scores a checkpoint every tenth of them: the
curve beyond the default run's budget (``bench/results/quality_stepsN.json``).

Prints one table and writes JSON (default ``bench/results/quality.json``). The training runs
live in a temporary folder (``--keep-runs DIR`` keeps them). Evaluation of a model runs in its
own process (see :mod:`bench.common`); the feature networks are cached (see
:mod:`tfcoord.metrics.quality.network`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tfcoord import cli
from bench.common import REPO, machine_info, markdown_table, report, run_plan, start_child, write_json

SAMPLES = 512  # real reference renders and generated images per checkpoint (--quick: 32)
WIDE_CANVASES = 32  # canvases 4 x the training width per checkpoint (--quick: 4)
WIDE_FACTOR = 4
QUICK_STEPS = 4  # --quick: training steps, checkpoints every half of them
SAMPLE_SEED = 1  # latents of the generated sets: the same at every checkpoint
DOCS = REPO / "docs" / "images"
DOCS_ROWS = 4  # rows of the docs sample grids: a real image, then DOCS_COLUMNS generated ones
DOCS_COLUMNS = 5
DOCS_CAPTION = "a small bird with a red crown, blue wings and a white belly"  # the README's


@dataclasses.dataclass(frozen=True)
class Entry:
    """One benchmarked command: ``python -m tfcoord.train --model MODEL [--preset PRESET]``."""

    model: str
    preset: str | None
    domain: str
    seams: bool = False  # micro-patch seam ratio (COCO-GAN)
    wide: str | None = None  # canvases 4 x wide: "extend" (more scene) or "stretch" (a denser grid)
    conditioning: str | None = None  # GAWWN: "box" or "keypoints"
    docs_generate: tuple[str, ...] = ()  # python -m tfcoord.generate arguments of the docs extra image
    # The README's python -m tfcoord.generate commands for this run (after --run RUN), each checked for
    # what the README's text beside it promises (see readme_demo_scores).
    demos: tuple[tuple[str, ...], ...] = ()


ENTRIES = {
    "cocogan": Entry("cocogan", None, "synthetic-landscapes", seams=True,
                     docs_generate=("--extrapolate", "1", "--num", "8"), demos=(("--num", "16"),)),
    "cips": Entry("cips", None, "synthetic-landscapes", wide="stretch",
                  docs_generate=("--width", "{wide_width}", "--height", "{height}"), demos=(("--num", "8"),)),
    "infinitygan": Entry("infinitygan", None, "synthetic-landscapes", wide="extend",
                         docs_generate=("--width", "{wide_width}", "--height", "{height}"),
                         demos=(("--width", "1024", "--height", "85"),)),
    "gawwn": Entry("gawwn", None, "synthetic-birds", conditioning="box",
                   docs_generate=("--caption", DOCS_CAPTION, "--bbox", "0,0.3,0.45,0.45", "--demo", "move",
                                  "--num", "6"),
                   demos=(("--caption", DOCS_CAPTION, "--bbox", "0.1,0.3,0.5,0.5", "--num", "8"),
                          ("--caption", DOCS_CAPTION, "--bbox", "0,0.3,0.45,0.45", "--demo", "move", "--num", "6"))),
    "gawwn-keypoints": Entry("gawwn", "tiny_keypoints", "synthetic-birds", conditioning="keypoints",
                             docs_generate=("--caption", DOCS_CAPTION, "--keypoints", "beak=0.3,0.35", "tail=0.75,0.6",
                                            "--demo", "move-keypoints", "--num", "6"),
                             demos=(("--caption", DOCS_CAPTION, "--keypoints", "beak=0.7,0.3", "tail=0.2,0.6",
                                     "--num", "8"),)),
}
DEFAULT_ENTRIES = ("cocogan", "cips", "infinitygan", "gawwn")


def train_command(entry: Entry, run, quick: bool, steps: int | None = None) -> list[str]:
    """The README's command; ``steps``: that many steps instead of the preset's, every checkpoint kept (``--steps``)."""
    command = ["python", "-m", "tfcoord.train", "--model", entry.model]
    command += ["--preset", entry.preset] if entry.preset else []
    command += ["--out", str(run)]
    if quick:
        command += ["--set", f"train.steps={QUICK_STEPS}", "--set", f"train.checkpoint_every={QUICK_STEPS // 2}",
                    "--set", f"log.samples_every={QUICK_STEPS}"]
    elif steps:
        # A checkpoint at least every 10 % of the run, so its curve has its points whatever the preset keeps.
        every = max(1, steps // 10)
        command += ["--set", f"train.steps={steps}", "--set", f"train.checkpoint_every={every}",
                    "--set", f"train.keep_checkpoints={steps // every + 1}"]
    return command


def shown(command) -> str:
    return " ".join(f'"{part}"' if " " in part else part for part in command)


# -- the evaluation worker ------------------------------------------------------------------------
def canvas_images(model, height: int, width: int, seeds) -> list:
    """uint8 canvases of ``width`` x ``height``, one per seed, as the canvas engine renders them (in memory)."""
    import numpy as np

    from tfcoord.generation.canvas import choose_tile, plan_bands
    from tfcoord.images import to_uint8

    canvases = []
    for seed in seeds:
        renderer = model.canvas_renderer(width, height, int(seed))
        canvas = np.zeros((height, width, 3), np.uint8)
        for band in plan_bands(width, height, choose_tile(renderer, None)):
            for tile, pixels in zip(band, renderer.render(band)):
                canvas[tile.top:tile.top + tile.height, tile.left:tile.left + tile.width] = to_uint8(pixels)
        canvases.append(canvas)
    return np.stack(canvases)


def real_wide(evaluator, entry: Entry, height: int, width: int, count: int):
    """Real renders as the model's wide canvases should look: wider scenes, or one scene stretched."""
    import numpy as np
    import tensorflow as tf

    domain = evaluator.domain
    if entry.wide == "extend":
        return domain.render("second", count, (height, width * WIDE_FACTOR)).images
    images = domain.render("second", count, (height, width)).images
    stretched = tf.image.resize(images.astype("float32"), (height, width * WIDE_FACTOR), antialias=True)
    return np.clip(np.round(stretched.numpy()), 0, 255).astype(np.uint8)


def landscape_checks(evaluator, entry: Entry, model, images, real_size, wide=None) -> dict:
    """Realism, single horizon, seams and (for wide canvases) horizon jumps of uint8 images at the model's size."""
    import numpy as np

    from tfcoord.metrics.quality import structure
    from tfcoord.metrics.views import centre_crop

    scores = evaluator.realism(images, real_size)
    cropped = centre_crop(images, *real_size)
    scores["single_horizon"] = float(structure.sky_above_ground(evaluator.network.labels(cropped)).mean())
    if entry.seams:
        scores["seam_ratio"] = structure.seam_ratio(images, model.config.model.micro_size)
    if wide is not None:
        strip = evaluator.domain.size[0] // 4
        jumps = structure.horizon_jumps(evaluator.network.labels(wide, keep_aspect=True), strip)
        scores["horizon_jump"] = float(jumps.mean())
        scores["horizon_max_jump"] = float(jumps.max(axis=1).mean())
    return scores


def bird_conditions(evaluator, count: int, seed: int):
    """Ground truth of ``count`` real birds and, per sample, a caption of another bird (random species)."""
    import numpy as np

    truth = evaluator.domain.render("second", count)
    rng = np.random.default_rng(seed)
    captions = truth.extras["captions"]
    own = [c[rng.integers(len(c))] for c in captions]
    other = [captions[(i + 1) % count][rng.integers(len(captions[(i + 1) % count]))] for i in range(count)]
    return truth, own, other


def bird_checks(evaluator, entry: Entry, images, truth, captions) -> dict:
    import numpy as np

    from tfcoord.metrics.quality import structure

    scores = evaluator.realism(images)
    labels = evaluator.network.labels(images)
    boxes = truth.extras["boxes"]
    scores["box_fraction"] = float(structure.box_fractions(labels, boxes).mean())
    # The same against boxes that were not asked for: what lands there by chance.
    scores["box_fraction_unrelated"] = float(structure.box_fractions(labels, np.roll(boxes, 7, axis=0)).mean())
    scores["colour_match"] = float(np.mean(structure.colour_matches(images, captions, labels)))
    if entry.conditioning == "keypoints":
        distances = structure.keypoint_distances(labels, truth.extras["keypoints"])
        found = [d for d in distances if d is not None]
        scores["keypoint_error"] = float(np.mean(found)) if found else None
        scores["keypoints_found"] = len(found) / max(len(distances), 1)
    return scores


def generated_birds(model, entry: Entry, truth, captions, z):
    import numpy as np

    from tfcoord.images import to_uint8

    text = np.stack([model.sampler.embed_captions(c) for c in captions])
    if entry.conditioning == "keypoints":
        return to_uint8(model.sampler.generate_from_keypoints(z, text, truth.extras["keypoints"]))
    return to_uint8(model.sampler.generate_from_box(z, text, truth.extras["boxes"]))


def evaluate_workload(name, run, samples, wide_canvases, quick, docs=None):
    """Scores of the real renders, the untrained generator and each checkpoint ``run`` kept; with ``docs``, the
    docs images too (from the last checkpoint)."""
    start_child("tfcoord.metrics.quality.evaluator")
    import keras

    from tfcoord.config import load_run_config
    from tfcoord.images import to_uint8
    from tfcoord.metrics.quality.evaluator import QualityEvaluator
    from tfcoord.metrics.quality.network import Recipe
    from tfcoord.models import model_class, section_classes
    from tfcoord.training.checkpoints import checkpoint_step, listed_checkpoints, restore_networks

    entry = ENTRIES[name]
    steps = [0, *sorted(checkpoint_step(prefix) for prefix in listed_checkpoints(Path(run) / "checkpoints"))]
    began = time.perf_counter()
    evaluator = QualityEvaluator(entry.domain, samples, Recipe.for_domain(entry.domain, quick))
    network_s = time.perf_counter() - began
    config = load_run_config(run, section_classes)
    model = model_class(config.model_type)(config)
    keras.utils.set_random_seed(config.train.seed)  # step 0: the weights training starts from
    model.build()
    real_size = tuple(int(s) for s in model.image_size())
    wide_seeds = range(wide_canvases)
    rows = []
    if entry.conditioning:
        # The ceiling: the real birds of the conditions (the second split) with their own captions.
        truth, own, other = bird_conditions(evaluator, samples, SAMPLE_SEED)
        rows.append({"checkpoint": "real", **bird_checks(evaluator, entry, truth.images, truth, own)})
    else:
        real_images = evaluator.domain.render("second", samples, real_size).images
        wide = real_wide(evaluator, entry, *real_size, wide_canvases) if entry.wide else None
        rows.append({"checkpoint": "real", **landscape_checks(evaluator, entry, model, real_images, real_size, wide)})
    for step in steps:
        if step:
            restore_networks(model.network_items(), f"{run}/checkpoints/ckpt-{step}")
        row = {"checkpoint": f"step {step}", "step": step}
        if entry.conditioning:
            z = model.sampler.latents(SAMPLE_SEED, samples)
            images = generated_birds(model, entry, truth, other, z)
            row.update(bird_checks(evaluator, entry, images, truth, other))
        else:
            images = to_uint8(model.sample_images(SAMPLE_SEED, samples))
            wide = None
            if entry.wide:
                wide = canvas_images(model, real_size[0], real_size[1] * WIDE_FACTOR, wide_seeds)
            row.update(landscape_checks(evaluator, entry, model, images, real_size, wide))
        rows.append(row)
    result = {"rows": rows, "steps": steps, "feature_network": {**evaluator.network.info, "load_or_train_s": network_s},
              "image_size": list(real_size)}
    result["demos"] = [readme_demo_scores(entry, arguments, run, model, evaluator, real_size)
                       for arguments in entry.demos]
    if docs:
        result["docs"] = write_docs_images(entry, name, run, model, evaluator, real_size, docs)
    return result


# -- the README's generate commands ---------------------------------------------------------------
def readme_demo_scores(entry, arguments, run, model, evaluator, real_size) -> dict:
    """Run one README ``python -m tfcoord.generate`` command on the trained run and check its output.

    Birds: the requested boxes (from ``conditions.json``) hold the bird (``box fraction``; ``unrelated box``
    is the same against the boxes of other frames, rolled by half the frames: chance for a moving box, equal
    to ``box fraction`` for a fixed one), the caption's colours are drawn (``colour match``), and for parts the keypoint error.
    Landscapes: ``single horizon`` of the images (canvases: of each training-size window), COCO-GAN's
    ``seam ratio``, and for a canvas the ``horizon jump`` between neighbouring strips.
    """
    import numpy as np
    from PIL import Image

    from tfcoord import generate
    from tfcoord.metrics.quality import structure

    command = shown(["python", "-m", "tfcoord.generate", "--run", "RUN", *arguments])
    canvas = "--width" in arguments
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / ("canvas.png" if canvas else "images")
        generate.main(["--run", str(run), *arguments, "--out", str(out)])
        if canvas:
            images = np.asarray(Image.open(out).convert("RGB"))[None]
        else:
            files = sorted(p for p in out.glob("*.png") if not p.name.endswith("grid.png"))
            images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
            conditions = next(out.glob("*conditions.json"), None)
            record = json.loads(conditions.read_text()) if conditions else None
    scores = {"command": command, "images": int(len(images))}
    if entry.conditioning:
        labels = evaluator.network.labels(images)
        by_file = {item["file"]: item for item in record["images"]}
        items = [by_file[p.name] for p in files]
        if entry.conditioning == "box":
            boxes = np.array([[y, x, y + h, x + w] for x, y, w, h in (i["bbox_xywh"] for i in items)])
            scores["box_fraction"] = float(structure.box_fractions(labels, boxes).mean())
            scores["box_fraction_unrelated"] = float(
                structure.box_fractions(labels, np.roll(boxes, len(boxes) // 2, axis=0)).mean())
        else:
            from tfcoord.data.gawwn.parts import CUB_PARTS

            keypoints = np.zeros((len(items), len(CUB_PARTS), 3), np.float32)
            for row, item in enumerate(items):
                for name, (x, y) in item["keypoints"].items():
                    keypoints[row, CUB_PARTS.index(name)] = (x, y, 1.0)
            distances = structure.keypoint_distances(labels, keypoints)
            found = [d for d in distances if d is not None]
            scores["keypoint_error"] = float(np.mean(found)) if found else None
            scores["keypoints_found"] = len(found) / max(len(distances), 1)
        caption = record["caption"]
        caption = " ".join(caption) if isinstance(caption, list) else caption  # --caption's words
        scores["colour_match"] = float(np.mean(structure.colour_matches(images, [caption] * len(images), labels)))
        return scores
    height, width = real_size
    if canvas:  # every training-size window along the canvas
        windows = [images[0, :height, left:left + width] for left in range(0, images.shape[2] - width + 1, width)]
        strip = evaluator.domain.size[0] // 4
        jumps = structure.horizon_jumps(evaluator.network.labels(images, keep_aspect=True), strip)
        scores["horizon_jump"] = float(jumps.mean())
        images = np.stack(windows)
    scores["single_horizon"] = float(structure.sky_above_ground(evaluator.network.labels(images)).mean())
    if entry.seams:
        scores["seam_ratio"] = structure.seam_ratio(images, model.config.model.micro_size)
    return scores


# -- docs images ----------------------------------------------------------------------------------
def enlarged(image, side: int = 192):
    """Nearest-neighbour enlargement of a uint8 image to about ``side`` pixels of height (never shrunk)."""
    import numpy as np

    factor = max(1, side // image.shape[0])
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def write_docs_images(entry, name, run, model, evaluator, real_size, folder) -> dict:
    """Two PNGs: a sample grid (real column, then generated) and the model's extra (canvas, extrapolation, demo)."""
    import numpy as np
    from PIL import Image

    from tfcoord import generate
    from tfcoord.images import image_grid, to_uint8
    from tfcoord.metrics.views import centre_crop
    from tfcoord.models.gawwn.drawing import draw_condition

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    height, width = real_size
    if entry.conditioning:  # each row: a real bird with its box or parts, then birds drawn for its caption and box
        truth, own, _ = bird_conditions(evaluator, DOCS_ROWS, SAMPLE_SEED)
        images = []
        for row in range(DOCS_ROWS):
            condition = truth.extras["keypoints" if entry.conditioning == "keypoints" else "boxes"][row]
            repeated = dataclasses.replace(truth, extras={key: np.repeat(value[row:row + 1], DOCS_COLUMNS, axis=0)
                                                          for key, value in truth.extras.items()
                                                          if key in ("boxes", "keypoints")})
            fakes = generated_birds(model, entry, repeated, [own[row]] * DOCS_COLUMNS,
                                    model.sampler.latents(SAMPLE_SEED + row, DOCS_COLUMNS))
            for pixels in [truth.images[row], *fakes]:
                pixels = pixels.copy()
                draw_condition(pixels, condition, entry.conditioning)
                images.append(pixels)
    else:
        real = evaluator.domain.render("second", DOCS_ROWS, real_size).images
        fakes = centre_crop(to_uint8(model.sample_images(SAMPLE_SEED, DOCS_ROWS * DOCS_COLUMNS)), *real_size)
        images = []
        for row in range(DOCS_ROWS):
            images += [real[row], *fakes[row * DOCS_COLUMNS:(row + 1) * DOCS_COLUMNS]]
    grid = image_grid(np.stack(images), columns=DOCS_COLUMNS + 1)
    grid_factor = max(1, 384 // grid.shape[0])
    written = {"samples": f"quality_{name}_samples.png",
               "samples_caption": "each row a real render (left), then generated samples"
               + (f" for the real bird's caption and {'parts' if entry.conditioning == 'keypoints' else 'box'} "
                  "(drawn in)" if entry.conditioning else f", at the real images' {height} x {width} px")
               + f"; shown {grid_factor}x enlarged"}
    Image.fromarray(enlarged(grid, 384)).save(folder / written["samples"])

    arguments = [part.format(wide_width=width * WIDE_FACTOR, height=height) for part in entry.docs_generate]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / ("canvas.png" if "--width" in arguments else "images")
        generate.main(["--run", str(run), *arguments, "--out", str(out)])
        produced = out if out.suffix == ".png" else next(p for p in sorted(out.glob("*grid.png")))
        extra = np.asarray(Image.open(produced).convert("RGB"))
    written["extra"] = f"quality_{name}_{'canvas' if '--width' in arguments else 'generate'}.png"
    written["extra_factor"] = max(1, 192 // extra.shape[0])
    Image.fromarray(enlarged(extra, 192)).save(folder / written["extra"])
    written["generate_command"] = shown(["python", "-m", "tfcoord.generate", "--run", "RUN", *arguments])
    return written


def write_docs_captions(results: dict, quick: bool) -> Path:
    """Merge this run's docs entries into docs/images/quality.json and rewrite docs/images/README.md from it."""
    record_path = DOCS / "quality.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for name, result in results.items():
        if "docs" in result:
            final, real, first = result["rows"][-1], result["rows"][0], result["rows"][1]
            record[name] = {**result["docs"], "train_command": shown(result["train_command"]).replace(
                result["run"], "RUN"), "checkpoint": final["checkpoint"], "quick": quick,
                "final": metric_summary(final), "real": metric_summary(real), "step 0": metric_summary(first),
                "date": result["date"], "demos": result.get("demos", [])}
    write_json(record_path, record)
    lines = ["# Quality images", "",
             "Written by `python -m bench.quality --write-docs` (do not edit by hand; regenerate). Each model's",
             "default run (`RUN`: trained by the command shown) at its last checkpoint; numbers from",
             "`tfcoord.metrics.quality` (precision / recall / KID in the feature network's space against held-out",
             "renders, then the structural checks), beside the real renders' values (the ceiling) and the untrained",
             "generator's (step 0).", ""]
    for name, entry in record.items():
        lines += [f"## {name}", "", f"Trained with `{entry['train_command']}`"
                  + (" (a `--quick` smoke run: not representative)" if entry["quick"] else "") + ".", "",
                  f"![{name} samples]({entry['samples']})", "",
                  f"`{entry['samples']}`: {entry['samples_caption']}; {entry['checkpoint']}.", "",
                  f"![{name} extra]({entry['extra']})", "",
                  f"`{entry['extra']}`: `{entry['generate_command']}` (shown {entry['extra_factor']}x enlarged).", "",
                  "| | " + " | ".join(entry["final"]) + " |", "|---" * (len(entry["final"]) + 1) + "|"]
        for label in ("real", "step 0", "final"):
            formats = {header: fmt for header, _, fmt in METRIC_COLUMNS}
            values = [(entry[label].get(header), formats.get(header, ".3f")) for header in entry["final"]]
            lines.append(f"| {label if label != 'final' else entry['checkpoint']} | "
                         + " | ".join("" if v is None else format(v, fmt) for v, fmt in values) + " |")
        lines.append("")
        for demo in entry.get("demos", []):
            shown_scores = ", ".join(f"{header} {demo[key]:{fmt}}" for header, key, fmt in METRIC_COLUMNS
                                     if demo.get(key) is not None)
            lines += [f"README command `{demo['command']}` ({demo['images']} images): {shown_scores}.", ""]
    path = DOCS / "README.md"
    path.write_text("\n".join(lines))
    return path


def metric_summary(row: dict) -> dict:
    """``{column header: value}`` of the metrics a row has."""
    return {header: row[key] for header, key, _ in METRIC_COLUMNS if row.get(key) is not None}


# -- the parent -----------------------------------------------------------------------------------
METRIC_COLUMNS = [("precision", "precision", ".3f"), ("recall", "recall", ".3f"), ("KID", "kid", ".4f"),
                  ("single horizon", "single_horizon", ".3f"), ("seam ratio", "seam_ratio", ".3f"),
                  ("horizon jump", "horizon_jump", ".3f"), ("box fraction", "box_fraction", ".3f"),
                  ("unrelated box", "box_fraction_unrelated", ".3f"), ("colour match", "colour_match", ".3f"),
                  ("keypoint error", "keypoint_error", ".3f"), ("keypoints found", "keypoints_found", ".3f")]


def train(command: list[str], run: Path, timeout: float) -> dict:
    """Run a :func:`train_command` into ``run``; its wall time and steps/s (the loop's own timer, first step's
    tracing included)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("TFCOORD_LOGICAL_CPUS", None)
    log = run.parent / f"{run.name}.train.log"
    start = time.perf_counter()
    with open(log, "w") as output:
        proc = subprocess.run([sys.executable, *command[1:]], cwd=REPO, env=env, stdout=output,
                              stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{shown(command)} failed (exit {proc.returncode}):\n{log.read_text()[-4000:]}")
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    rates = [r for r in records if "steps_per_second" in r]
    return {"train_command": command, "train_s": wall, "final_step": max(r["step"] for r in records),
            "steps_per_s": rates[-1]["steps_per_second"] if rates else None}


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", choices=list(ENTRIES), default=list(DEFAULT_ENTRIES),
                        help=f"models to run (default: {' '.join(DEFAULT_ENTRIES)})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_STEPS} training steps, 32 samples, the quick feature networks")
    parser.add_argument("--samples", type=int, help=f"real and generated images per checkpoint (default {SAMPLES})")
    parser.add_argument("--write-docs", action="store_true", help="write docs/images/quality_*.png and their captions")
    parser.add_argument("--steps", type=int,
                        help="train this many steps instead of the preset's and score a checkpoint every 10 %% of "
                             "them: how far past the default run a target lies (not with --quick or --write-docs)")
    parser.add_argument("--keep-runs", help="train into this folder and keep the runs (default: a temporary one)")
    parser.add_argument("--out", help="JSON output (default bench/results/quality.json, --quick: quality_quick.json, "
                                      "--steps N: quality_stepsN.json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        report({"evaluate": evaluate_workload}[spec.pop("workload")](**spec))
        return 0
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    if args.steps and (args.quick or args.write_docs):
        parser.error("--steps trains longer than the README's command: the docs pictures and the --quick smoke run "
                     "show the command itself; drop --steps, or --quick and --write-docs")
    samples = args.samples or (32 if args.quick else SAMPLES)
    default_out = "quality_quick.json" if args.quick else f"quality_steps{args.steps}.json" if args.steps else "quality.json"
    out = args.out or str(REPO / "bench" / "results" / default_out)
    machine = machine_info()
    folder = Path(args.keep_runs or tempfile.mkdtemp(prefix="bench-quality-"))
    folder.mkdir(parents=True, exist_ok=True)
    results, failed = {}, []
    try:
        for name in args.model:
            entry = ENTRIES[name]
            run = folder / name
            if run.exists():
                shutil.rmtree(run)
            command = train_command(entry, run, args.quick, args.steps)
            print(f"[{name}] {shown(command)}", file=sys.stderr, flush=True)
            try:
                training = train(command, run, timeout=3 * 3600)
            except (RuntimeError, subprocess.TimeoutExpired) as error:  # the other models still run
                print(f"  failed: {str(error)[-2000:]}", file=sys.stderr, flush=True)
                failed.append({"name": name, "error": str(error)[-2000:]})
                continue
            spec = {"workload": "evaluate", "name": name, "run": str(run), "samples": samples,
                    "wide_canvases": 4 if args.quick else WIDE_CANVASES, "quick": args.quick,
                    "docs": str(DOCS) if args.write_docs else None}
            evaluation = run_plan("bench.quality", [spec], lambda s: f"{s['name']}: evaluate its checkpoints",
                                  machine, timeout=3 * 3600, failures=failed)
            if evaluation:
                results[name] = {**training, **evaluation[0], "run": str(run), "date": machine["date"]}
    finally:
        if not args.keep_runs:
            shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for name, result in results.items():
        for row in result["rows"]:
            rows.append({"model": name, **row, **({"train_s": result["train_s"], "steps_per_s": result["steps_per_s"]}
                                                 if row.get("step") == result["final_step"] else {})})
    networks = {}
    for result in results.values():
        info = result["feature_network"]
        networks[info["domain"]] = info
    for domain, info in networks.items():
        scores = info["held_out"]
        print(f"feature network {domain}: held-out pixel accuracy {scores['pixel_accuracy']:.3f}, mean IoU "
              f"{scores['mean_iou']:.3f}; trained in {info['train_s']:.0f} s"
              + (" (cached)" if info["cached"] else ""))
    print()
    print(markdown_table(rows, [("model", "model", "s"), ("checkpoint", "checkpoint", "s"),
                                ("train s", "train_s", ".0f"), ("steps/s", "steps_per_s", ".2f"), *METRIC_COLUMNS]))
    print(f"\n{samples} real and {samples} generated images per row; 'real' is a second set of held-out renders "
          "(the ceiling), step 0 the untrained generator (the floor).")
    demos = [{"model": name, **demo} for name, result in results.items() for demo in result.get("demos", [])]
    if demos:
        print("\nThe README's generate commands on each trained run (RUN), scored:\n")
        print(markdown_table(demos, [("model", "model", "s"), ("command", "command", "s"), ("images", "images", "d"),
                                     *[c for c in METRIC_COLUMNS if any(c[1] in d for d in demos)]]))
    for failure in failed:
        print(f"FAILED {failure['name']}: {failure['error'].strip().splitlines()[-1]}")
    path = write_json(out, {"machine": machine, "quick": args.quick, "steps": args.steps, "samples": samples,
                            "models": results, "feature_networks": networks, "failed": failed})
    print(f"wrote {path}")
    if args.write_docs and results:
        print(f"wrote {write_docs_captions(results, args.quick)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
