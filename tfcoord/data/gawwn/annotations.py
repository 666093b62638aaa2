"""GAWWN's annotation format: one JSONL file that every real data set is converted into.

The first line is a header, every further line one image::

    {"format": "tfcoord-gawwn-annotations", "version": 1, "parts": ["back", "beak", ...],
     "images": "images"}
    {"image": "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg", "class": 0,
     "class_name": "Black_footed_Albatross",
     "captions": ["this bird has a white belly ...", "..."],
     "bbox": [0.12, 0.18, 0.64, 0.52],
     "keypoints": [[0.41, 0.35, 1], [0, 0, 0], ...]}

Header: ``parts`` names the keypoints in order (see :mod:`.parts`; CUB's 15 parts, MPII's 16
joints); ``images`` is the folder image paths are relative to (itself relative to the JSONL
file; default: the JSONL file's folder); ``embedding_dim`` is the length of precomputed text
embeddings, if records use them.

Record fields (coordinates are fractions of the image width and height, origin top left):

* ``image`` (required): the image file.
* ``class`` (required): integer >= 0 (species, activity); ``class_name`` optional.
* ``captions``: a list of non-empty strings, and/or ``text_embeddings``: a ``.npy`` file
  holding a float array (number of captions, ``embedding_dim``), e.g. the published 1024-d
  char-CNN-RNN vectors. At least one of the two; within a file every record must offer the
  same kind(s).
* ``bbox``: ``[x, y, w, h]`` with ``w, h > 0``; default: the whole image.
* ``keypoints``: one ``[x, y, visibility]`` per part of the header, visibility 1 (visible)
  or 0 (not visible; its x and y are ignored); default: every part invisible.

Validation (:func:`read_annotations`, also applied by the converters). A problem in one
record is reported as ``FILE:LINE: problem; record skipped`` and that record is skipped;
reading never crashes on bad data:

* a line that is not a JSON object, a missing or mistyped field -> skipped;
* an image or embedding file that does not exist -> skipped;
* a box reaching more than ``BOX_TOLERANCE`` (1 % of the image) outside the image, or
  with a zero or negative size -> skipped; boxes within the tolerance are clipped;
* a *visible* keypoint outside [0, 1] (same tolerance) -> skipped; a wrong number of
  keypoints or a visibility other than 0/1 -> skipped.

A file is refused (:class:`~tfcoord.errors.UserError`) when it does not exist, has no valid
header, or has no valid record left. Converters can be made strict (``--strict``): then
any reported problem refuses the conversion.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from tfcoord.data.gawwn.captions import DOC_LENGTH, tokenize_all
from tfcoord.data.gawwn.parts import flip_order
from tfcoord.errors import UserError, warn

FORMAT = "tfcoord-gawwn-annotations"
VERSION = 1
BOX_TOLERANCE = 0.01
MAX_REPORTED = 20  # problems printed one by one; the rest are counted


@dataclasses.dataclass
class Annotations:
    """A validated annotation file: its header, the good records and the problems found."""

    path: Path
    header: dict
    records: list[dict]
    problems: list[str]

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.header.get("parts", ()))


class RecordProblem(ValueError):
    """One record breaks the format; the message says how."""


def box_corners(x, y, w, h):
    """(x, y, w, h) fractions -> (ymin, xmin, ymax, xmax), the order GAWWN's networks take."""
    return y, x, y + h, x + w


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordProblem(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_header(header, where: str) -> dict:
    """The header object, or a UserError naming what is wrong with it."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{where}: the first line must be the header "
                        f'{{"format": "{FORMAT}", "version": {VERSION}, "parts": [...]}}; '
                        "convert the data set with python -m tfcoord.data.convert_annotations")
    if header.get("version") != VERSION:
        raise UserError(f"{where}: annotation format version {header.get('version')!r} is not supported "
                        f"(this tfcoord reads version {VERSION})")
    parts = header.get("parts", [])
    if not isinstance(parts, list) or not all(isinstance(p, str) and p for p in parts) or len(set(parts)) != len(parts):
        raise UserError(f"{where}: header 'parts' must be a list of distinct part names")
    dim = header.get("embedding_dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise UserError(f"{where}: header 'embedding_dim' must be a positive integer, got {dim!r}")
    return header


def validate_record(record, *, parts, image_root: Path, base: Path, embedding_dim=None) -> dict:
    """A cleaned copy of ``record`` (absolute paths, clipped box, zeroed invisible parts).

    Raises:
        RecordProblem: the record breaks a rule of the format (the module docstring lists them).
    """
    if not isinstance(record, dict):
        raise RecordProblem(f"a record must be a JSON object, got {type(record).__name__}")
    image = record.get("image")
    if not isinstance(image, str) or not image:
        raise RecordProblem("missing 'image' (the image file, relative to the header's 'images' folder)")
    image_path = (image_root / image) if not Path(image).is_absolute() else Path(image)
    if not image_path.is_file():
        raise RecordProblem(f"image file {image_path} does not exist")
    label = record.get("class")
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        raise RecordProblem(f"'class' must be an integer >= 0, got {label!r}")
    clean = {"image": str(image_path), "class": label}
    if "class_name" in record:
        clean["class_name"] = str(record["class_name"])

    captions = record.get("captions")
    if captions is not None:
        if not isinstance(captions, list) or not captions or not all(isinstance(c, str) and c.strip()
                                                                     for c in captions):
            raise RecordProblem("'captions' must be a non-empty list of non-empty strings")
        clean["captions"] = [c.strip() for c in captions]
    embeddings = record.get("text_embeddings")
    if embeddings is not None:
        if not isinstance(embeddings, str):
            raise RecordProblem("'text_embeddings' must be the path of a .npy file")
        embedding_path = Path(embeddings) if Path(embeddings).is_absolute() else base / embeddings
        if not embedding_path.is_file():
            raise RecordProblem(f"text embedding file {embedding_path} does not exist")
        try:
            array = np.load(embedding_path, mmap_mode="r")
        except (ValueError, OSError) as err:
            raise RecordProblem(f"text embedding file {embedding_path} is not a readable .npy file ({err})") from None
        if array.ndim != 2 or array.shape[0] < 1 or (embedding_dim is not None and array.shape[1] != embedding_dim):
            want = f"(captions, {embedding_dim})" if embedding_dim else "(captions, dim)"
            raise RecordProblem(f"text embeddings in {embedding_path} have shape {array.shape}, expected {want}")
        clean["text_embeddings"] = str(embedding_path)
    if captions is None and embeddings is None:
        raise RecordProblem("a record needs 'captions' or 'text_embeddings'")

    box = record.get("bbox", [0.0, 0.0, 1.0, 1.0])
    if not isinstance(box, list) or len(box) != 4:
        raise RecordProblem(f"'bbox' must be [x, y, w, h] (fractions of the image), got {box!r}")
    x, y, w, h = (_number(v, "bbox value") for v in box)
    if w <= 0 or h <= 0:
        raise RecordProblem(f"box {box} has a zero or negative size")
    if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > 1 + BOX_TOLERANCE or y + h > 1 + BOX_TOLERANCE:
        raise RecordProblem(f"box {box} lies outside the image (x, y, w, h are fractions of its width/height)")
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, 1.0), min(y + h, 1.0)
    clean["bbox"] = [x0, y0, x1 - x0, y1 - y0]

    keypoints = record.get("keypoints")
    if keypoints is None:
        clean["keypoints"] = [[0.0, 0.0, 0.0] for _ in parts]
    else:
        if not isinstance(keypoints, list) or len(keypoints) != len(parts):
            count = len(keypoints) if isinstance(keypoints, list) else keypoints
            raise RecordProblem(f"'keypoints' must list {len(parts)} [x, y, visibility] rows "
                                f"(one per header part), got {count}")
        rows = []
        for name, row in zip(parts, keypoints):
            if not isinstance(row, list) or len(row) != 3:
                raise RecordProblem(f"keypoint {name} must be [x, y, visibility], got {row!r}")
            kx, ky, visibility = (_number(v, f"keypoint {name}") for v in row)
            if visibility not in (0.0, 1.0):
                raise RecordProblem(f"keypoint {name} visibility must be 0 or 1, got {row[2]!r}")
            inside = all(-BOX_TOLERANCE <= v <= 1 + BOX_TOLERANCE for v in (kx, ky))
            if visibility and not inside:
                raise RecordProblem(f"visible keypoint {name} at ({kx:g}, {ky:g}) lies outside [0, 1]")
            rows.append([min(max(kx, 0.0), 1.0), min(max(ky, 0.0), 1.0), 1.0] if visibility else [0.0, 0.0, 0.0])
        clean["keypoints"] = rows
    return clean


def read_annotations(path, *, report=None, max_reported: int = MAX_REPORTED) -> Annotations:
    """Read and validate a JSONL annotation file.

    Args:
        path: the ``.jsonl`` file.
        report: called with each problem line (``FILE:LINE: problem; record skipped``);
            default: print the first ``max_reported`` to stderr as warnings, then a count.

    Raises:
        UserError: the file is missing, has no valid header or no valid record.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"annotation file {path} does not exist; create it with "
                        "python -m tfcoord.data.convert_annotations (cub|mpii) ... --out FILE.jsonl")
    problems, records, header = [], [], None
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                if header is None:
                    raise UserError(f"{path}:{number}: the header line is not valid JSON ({err.msg})") from None
                problems.append(f"{path}:{number}: not valid JSON ({err.msg}); record skipped")
                continue
            if header is None:
                header = check_header(value, f"{path}:{number}")
                parts, image_root = header.get("parts", []), (path.parent / header.get("images", ".")).resolve()
                continue
            try:
                records.append(validate_record(value, parts=parts, image_root=image_root, base=path.parent,
                                               embedding_dim=header.get("embedding_dim")))
            except RecordProblem as err:
                problems.append(f"{path}:{number}: {err}; record skipped")
    if header is None:
        raise UserError(f"annotation file {path} is empty; convert a data set into it first")
    _report(problems, report, max_reported)
    if not records:
        raise UserError(f"annotation file {path} has no valid record ({len(problems)} skipped; see the warnings)")
    return Annotations(path=path, header=header, records=records, problems=problems)


def _report(problems, report, max_reported):
    for problem in problems if report is not None else problems[:max_reported]:
        (report or warn)(problem)
    if report is None and len(problems) > max_reported:
        warn(f"... and {len(problems) - max_reported} more problem(s)")


def write_annotations(path, header: dict, records: list[dict]) -> Path:
    """Write a header and records as JSONL (the converters' output)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_header(header, str(path))
    with open(path, "w", encoding="utf-8") as file:
        file.writelines(json.dumps(line) + "\n" for line in [header, *records])
    return path


# -- the annotations:FILE.jsonl data source ----------------------------------------------
def _element_table(annotations: Annotations) -> dict:
    """The per-record arrays of the data source (captions tokenised once)."""
    records = annotations.records
    with_captions = sum("captions" in r for r in records)
    with_embeddings = sum("text_embeddings" in r for r in records)
    if with_captions not in (0, len(records)) and with_embeddings not in (0, len(records)):
        raise UserError(f"{annotations.path}: some records have only captions and others only text embeddings; "
                        "give every record the same kind")
    table = {"paths": [r["image"] for r in records],
             "labels": np.asarray([r["class"] for r in records], np.int32),
             # [x, y, w, h] -> (ymin, xmin, ymax, xmax), the pipeline's box convention
             "boxes": np.asarray([box_corners(*r["bbox"]) for r in records], np.float32),
             "keypoints": np.asarray([r["keypoints"] for r in records], np.float32).reshape(len(records), -1, 3)}
    if with_captions == len(records):
        count = max(len(r["captions"]) for r in records)
        tokens = np.zeros((len(records), count, DOC_LENGTH), np.uint8)
        for i, record in enumerate(records):
            tokens[i, :len(record["captions"])] = tokenize_all(record["captions"])
        table["captions"] = tokens
        table["num_captions"] = np.asarray([len(r["captions"]) for r in records], np.int32)
    if with_embeddings == len(records):
        shapes = [np.load(r["text_embeddings"], mmap_mode="r").shape for r in records]
        dims = {s[1] for s in shapes}
        if len(dims) != 1:
            raise UserError(f"{annotations.path}: text embeddings have different lengths {sorted(dims)}; "
                            "set the header's embedding_dim and convert them consistently")
        table["embedding_paths"] = [r["text_embeddings"] for r in records]
        table["embedding_shape"] = (max(s[0] for s in shapes), dims.pop())
        table.setdefault("num_captions", np.asarray([s[0] for s in shapes], np.int32))
    return table


def source(argument: str | None):
    """The ``annotations:FILE.jsonl`` source: images with captions, boxes, keypoints and classes."""
    import tensorflow as tf

    from tfcoord.data.folder import read_or_next
    from tfcoord.data.pipeline import AUTOTUNE, Source, epoch_order

    if not argument:
        raise UserError("'annotations' needs a file: pass --data annotations:FILE.jsonl "
                        "(made by python -m tfcoord.data.convert_annotations)")
    annotations = read_annotations(argument)
    table = _element_table(annotations)
    count = len(annotations.records)
    num_parts = table["keypoints"].shape[1]
    order = np.asarray(flip_order(annotations.parts), np.int32) if annotations.parts else np.zeros((0,), np.int32)

    def load(item, height, width):
        # A file that became unreadable since validation is replaced by the next record.
        i, image = read_or_next(table["paths"], (int(height), int(width)), item)
        out = [image, table["boxes"][i], table["keypoints"][i], table["labels"][i], table["num_captions"][i],
               np.int32(i)]
        if "captions" in table:
            out.append(table["captions"][i].astype(np.int32))
        if "embedding_paths" in table:
            padded = np.zeros(table["embedding_shape"], np.float32)
            vectors = np.load(table["embedding_paths"][i]).astype(np.float32)
            padded[:len(vectors)] = vectors
            out.append(padded)
        return tuple(out)

    def elements(seed, start_index, training, image_size):
        height, width = image_size
        types = [tf.uint8, tf.float32, tf.float32, tf.int32, tf.int32, tf.int32]
        types += [tf.int32] if "captions" in table else []
        types += [tf.float32] if "embedding_paths" in table else []

        def element(index, item):
            values = tf.numpy_function(load, [item, height, width], types, stateful=False)
            out = {"image": tf.ensure_shape(values[0], [None, None, 3]),
                   "bbox": tf.ensure_shape(values[1], [4]),
                   "keypoints": tf.ensure_shape(values[2], [num_parts, 3]),
                   "keypoint_flip_order": tf.constant(order),
                   "label": tf.ensure_shape(values[3], []),
                   "num_captions": tf.ensure_shape(values[4], []),
                   "record": tf.ensure_shape(values[5], [])}  # index of the valid record (--image-features rows)
            rest = list(values[6:])
            if "captions" in table:
                out["captions"] = tf.ensure_shape(rest.pop(0), table["captions"].shape[1:])
            if "embedding_paths" in table:
                out["caption_embeddings"] = tf.ensure_shape(rest.pop(0), table["embedding_shape"])
            return index, out

        return epoch_order(count, seed, start_index, training).map(element, num_parallel_calls=AUTOTUNE,
                                                                   deterministic=True)

    return Source(elements, reduced_decode=True)  # read_image's JPEG draft covers the size it is given
