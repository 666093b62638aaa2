"""GAWWN's part of ``python -m tfcoord.generate``: what (a caption) and where (a box or parts).

Coordinates are fractions of the image, origin at the top left:

* ``--bbox x,y,w,h``: the box's top-left corner (x, y) and its width and height, each in
  [0, 1], with ``x + w <= 1`` and ``y + h <= 1`` (box runs);
* ``--keypoints name=x,y ...``: part positions in [0, 1] (keypoint runs; names as listed by
  ``--help`` of a run, e.g. ``crown``, ``left_eye``, ``beak``). Parts not given are filled
  in by the run's keypoint generator, or left out if it has none.

What: ``--caption "..."`` (repeat it to average several captions, as the paper does) or
``--embedding FILE.npy`` (a precomputed text embedding, (D,) or (N, D) averaged).

Without ``--bbox`` a box run takes the box from parts generated for the caption (when the
run has a keypoint generator) or the centred box 0.15,0.15,0.7,0.7. ``--demo`` renders one
bird (fixed z and caption) in ``--num`` frames: ``move`` (the box slides left to right),
``stretch`` (it widens), ``shrink`` (it shrinks), ``move-keypoints`` (the parts slide), or
``text-only`` (``--num`` birds whose parts are all generated from the caption).

Writes one PNG per image, a grid, and ``conditions.json`` (caption, z seed, box or parts of
every image).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np

from tfcoord.data.gawwn.annotations import box_corners
from tfcoord.errors import UserError
from tfcoord.models.gawwn.drawing import draw_condition

DEMOS = ("move", "stretch", "shrink", "move-keypoints", "text-only")
DEFAULT_BOX = (0.15, 0.15, 0.7, 0.7)  # x, y, w, h
BOX_MARGIN = 0.08  # around generated parts, as a fraction of the image


def add_arguments(parser) -> None:
    group = parser.add_argument_group("GAWWN")
    group.add_argument("--caption", action="append", default=[], metavar="TEXT",
                       help="what to draw; repeat to average several captions")
    group.add_argument("--embedding", metavar="FILE.npy", help="a precomputed text embedding instead of --caption")
    group.add_argument("--bbox", metavar="x,y,w,h",
                       help="where (box runs): top-left x, y and width, height as fractions of the image in [0, 1]")
    group.add_argument("--keypoints", nargs="+", default=[], metavar="name=x,y",
                       help="where (keypoint runs): part positions as fractions of the image in [0, 1]")
    group.add_argument("--demo", choices=DEMOS, help="render one bird in --num frames: " + ", ".join(DEMOS))


def _numbers(text: str, count: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise UserError(f"{what} must be {count} comma-separated numbers, got {text!r}")
    return values


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``x,y,w,h`` fractions -> checked (x, y, w, h)."""
    x, y, w, h = _numbers(text, 4, "--bbox x,y,w,h")
    if w <= 0 or h <= 0:
        raise UserError(f"--bbox {text}: width and height must be positive fractions of the image")
    if x < 0 or y < 0 or x + w > 1 + 1e-6 or y + h > 1 + 1e-6:
        raise UserError(f"--bbox {text}: the box must lie inside the image: x, y >= 0, x + w <= 1, y + h <= 1 "
                        "(fractions of the width and height, origin top left)")
    return x, y, w, h


def parse_keypoints(items, parts) -> dict[str, tuple[float, float]]:
    """``name=x,y`` items -> {part: (x, y)}, names checked against the run's parts."""
    given = {}
    for item in items:
        name, equals, position = item.partition("=")
        if not equals:
            raise UserError(f"--keypoints expects name=x,y items, got {item!r}")
        if name not in parts:
            match = difflib.get_close_matches(name, parts, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            raise UserError(f"--keypoints: unknown part '{name}'{hint}; this run's parts: {', '.join(parts)}")
        if name in given:
            raise UserError(f"--keypoints: part '{name}' is given twice")
        x, y = _numbers(position, 2, f"--keypoints {name}=x,y")
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise UserError(f"--keypoints {item}: x and y must be fractions of the image in [0, 1]")
        given[name] = (x, y)
    return given


def check_arguments(args) -> None:
    if args.bbox:
        parse_bbox(args.bbox)
    if args.caption and args.embedding:
        raise UserError("give --caption or --embedding, not both")
    if not args.caption and not args.embedding:
        raise UserError('GAWWN needs to know what to draw: pass --caption "a small bird with red wings" '
                        "(or --embedding FILE.npy)")
    if args.embedding and not Path(args.embedding).is_file():
        raise UserError(f"--embedding {args.embedding} does not exist")
    if args.bbox and args.keypoints:
        raise UserError("give --bbox (box runs) or --keypoints (keypoint runs), not both")


def text_embedding(model, args) -> np.ndarray:
    if args.embedding:
        try:
            vectors = np.load(args.embedding)
        except (ValueError, OSError) as err:
            raise UserError(f"--embedding {args.embedding} is not a readable .npy file ({err})") from None
        vectors = np.asarray(vectors, np.float32).reshape(-1, vectors.shape[-1]) if np.ndim(vectors) else None
        if vectors is None or vectors.shape[-1] != model.text_dim or not np.all(np.isfinite(vectors)):
            raise UserError(f"--embedding {args.embedding} must hold finite vectors of length {model.text_dim} "
                            "(text.embedding_dim of this run)")
        return vectors.mean(axis=0)
    return model.sampler.embed_captions(args.caption)


def box_array(x, y, w, h) -> np.ndarray:
    """(x, y, w, h) -> the model's (ymin, xmin, ymax, xmax), clipped to the image."""
    return np.clip(np.array(box_corners(x, y, w, h), np.float32), 0.0, 1.0)


def box_of_parts(keypoints) -> np.ndarray:
    """The box around the visible parts, widened by BOX_MARGIN; the default box if none is visible."""
    visible = keypoints[:, 2] > 0.5
    if not visible.any():
        return box_array(*DEFAULT_BOX)
    x0, x1 = keypoints[visible, 0].min() - BOX_MARGIN, keypoints[visible, 0].max() + BOX_MARGIN
    y0, y1 = keypoints[visible, 1].min() - BOX_MARGIN, keypoints[visible, 1].max() + BOX_MARGIN
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, 1.0), min(y1, 1.0)
    return np.array([y0, x0, max(y1, y0 + 0.05), max(x1, x0 + 0.05)], np.float32)


def given_keypoints(model, given: dict) -> np.ndarray:
    keypoints = np.zeros((len(model.parts), 3), np.float32)
    for name, (x, y) in given.items():
        keypoints[model.parts.index(name)] = (x, y, 1.0)
    return keypoints


def complete(model, z, text, keypoints) -> np.ndarray:
    """Parts for each z: the given ones kept, the rest generated (visibility > 0.5 kept visible)."""
    if model.keypoint_completer is None:
        return np.repeat(keypoints[None], len(z), 0)
    out = model.sampler.complete_keypoints(z, np.repeat(text[None], len(z), 0), np.repeat(keypoints[None], len(z), 0))
    out[..., 2] = (out[..., 2] > 0.5).astype(np.float32)
    out[out[..., 2] == 0] = 0.0
    return out


def demo_conditions(model, args, z, text):
    """(z per frame, conditions per frame) of a demo."""
    frames = args.num
    box_run = model.config.model.conditioning == "box"
    if args.demo == "text-only":
        parts = complete(model, z, text, np.zeros((len(model.parts), 3), np.float32))
        return z, [box_of_parts(p) if box_run else p for p in parts]
    z1 = np.repeat(z[:1], frames, 0)
    if args.demo == "move-keypoints":
        if box_run:
            raise UserError("--demo move-keypoints needs a keypoint run (model.conditioning=keypoints); "
                            "use --demo move for a box run")
        base = complete(model, z[:1], text, given_keypoints(model, parse_keypoints(args.keypoints, model.parts)))[0]
        visible = base[:, 2] > 0
        if not visible.any():
            raise UserError("no visible parts to move; give some with --keypoints")
        low, high = base[visible, 0].min(), base[visible, 0].max()
        frames_out = []
        for left in np.linspace(0.02, max(0.98 - (high - low), 0.02), frames):
            moved = base.copy()
            moved[visible, 0] = np.clip(moved[visible, 0] + left - low, 0, 1)
            frames_out.append(moved)
        return z1, frames_out
    if not box_run:
        raise UserError(f"--demo {args.demo} moves a box; this is a keypoint run: use --demo move-keypoints")
    x, y, w, h = parse_bbox(args.bbox) if args.bbox else DEFAULT_BOX
    boxes = []
    for t in np.linspace(0.0, 1.0, frames):
        if args.demo == "move":
            boxes.append(box_array(t * (1 - w), y, w, h))
        elif args.demo == "stretch":
            width = 0.3 + t * 0.65
            boxes.append(box_array((1 - width) / 2, y, width, h))
        else:  # shrink
            side = 0.95 - t * 0.6
            boxes.append(box_array((1 - side) / 2, (1 - side) / 2, side, side))
    return z1, boxes


def conditions(model, args, z, text):
    """(z per image, condition per image) for a plain request."""
    if model.config.model.conditioning == "box":
        if args.keypoints:
            raise UserError("this run draws into boxes (model.conditioning=box): pass --bbox x,y,w,h, not --keypoints")
        if args.bbox:
            return z, [box_array(*parse_bbox(args.bbox))] * len(z)
        # Around parts generated for the caption; without a keypoint generator none are visible: the default box.
        return z, [box_of_parts(p) for p in complete(model, z, text, np.zeros((len(model.parts), 3), np.float32))]
    if args.bbox:
        raise UserError("this run is conditioned on parts (model.conditioning=keypoints): pass --keypoints "
                        "name=x,y ..., not --bbox")
    return z, list(complete(model, z, text, given_keypoints(model, parse_keypoints(args.keypoints, model.parts))))


def generate(model, args, out: Path) -> list[Path]:
    from tfcoord.images import image_grid, save_png, to_uint8

    if args.keypoints:
        parse_keypoints(args.keypoints, model.parts)  # fail before any work
    text = text_embedding(model, args)
    z = model.sampler.latents(args.seed, args.num)
    zs, conds = demo_conditions(model, args, z, text) if args.demo else conditions(model, args, z, text)
    images = model.sampler.generate(zs, np.repeat(text[None], len(zs), 0), np.stack(conds))
    prefix = f"{args.demo}_" if args.demo else ""
    written = [save_png(image, out / f"{prefix}seed{args.seed}_{i:04d}.png") for i, image in enumerate(images)]
    annotated = to_uint8(images).copy()
    for pixels, condition in zip(annotated, conds):
        draw_condition(pixels, condition, model.config.model.conditioning)
    columns = len(images) if args.demo else None
    written.append(save_png(image_grid(annotated, columns=columns), out / f"{prefix}seed{args.seed}_grid.png"))
    record = {"caption": args.caption, "embedding": args.embedding, "seed": args.seed, "demo": args.demo,
              "conditioning": model.config.model.conditioning, "images": []}
    for i, condition in enumerate(conds):
        entry = {"file": written[i].name}
        if model.config.model.conditioning == "box":
            ymin, xmin, ymax, xmax = (float(v) for v in condition)
            entry["bbox_xywh"] = [xmin, ymin, xmax - xmin, ymax - ymin]
        else:
            entry["keypoints"] = {name: [float(k[0]), float(k[1])] for name, k in zip(model.parts, condition)
                                  if k[2] > 0}
        record["images"].append(entry)
    (out / f"{prefix}conditions.json").write_text(json.dumps(record, indent=1))
    written.append(out / f"{prefix}conditions.json")
    return written
