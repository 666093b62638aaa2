"""Convert CUB-200-2011 and MPII Human Pose (+ captions) into GAWWN's JSONL annotations.

CUB-200-2011 (``--root CUB_200_2011``), the layout of the official archive:

* ``images.txt`` (``<image_id> <path>``), ``image_class_labels.txt`` (``<image_id> <class_id>``,
  optional: the class is otherwise the image's folder), ``classes.txt`` (``<class_id> <name>``),
  ``bounding_boxes.txt`` (``<image_id> <x> <y> <width> <height>``, pixels),
  ``parts/part_locs.txt`` (``<image_id> <part_id> <x> <y> <visible>``, pixels, 15 parts),
  ``train_test_split.txt`` (``<image_id> <is_training_image>``, for ``--split``),
  ``images/<path>``;
* captions (``--captions text_c10``): the widely used per-image files of Reed et al. (2016),
  ``text_c10/<class folder>/<image name>.txt``, one caption per line;
* precomputed text embeddings (``--embeddings DIR``, optional): ``DIR/<class folder>/<image
  name>.npy``, an array (captions, dim), e.g. the published 1024-d char-CNN-RNN vectors.

MPII Human Pose (``--annotations``): the official ``mpii_human_pose_v1_u12_1.mat`` (read
with SciPy; 1-based MATLAB pixels) or the widely used JSON conversion (a list of
``{"image", "joints" [[x, y] x 16], "joints_vis" [16], ...}``, 0-based pixels); images in
``--images``; captions (``--captions FILE``) as tab-separated lines ``<image name>\\t<caption>``.
Multi-person images are left out (the paper's MHP subset); the box is the tight box of the
person's joints (and head rectangle) widened by 10 % on each side; the class is the MPII
activity (``act_id``, unknown activities share one class).

Problems (a malformed row, an unknown id, a missing image or caption file, a box outside
the image, a visible part outside it) are reported as ``FILE:LINE: problem; ... skipped``;
the record is skipped and the conversion goes on, unless ``strict`` makes it refuse.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from tfcoord.data.gawwn.annotations import (BOX_TOLERANCE, FORMAT, VERSION, RecordProblem, validate_record,
                                            write_annotations)
from tfcoord.data.gawwn.parts import CUB_PARTS, MPII_JOINTS
from tfcoord.errors import UserError

PERSON_MARGIN = 0.10


@dataclasses.dataclass
class Conversion:
    """What a converter produced: the output file, the records written and the problems reported."""

    out: Path
    records: int
    problems: list[str]


class Reporter:
    """Collects ``FILE:LINE: problem`` lines; ``strict`` turns the first one into a UserError."""

    def __init__(self, strict: bool = False, echo=None):
        self.strict, self.echo, self.problems = strict, echo, []

    def __call__(self, where: str, problem: str, consequence: str = "record skipped"):
        line = f"{where}: {problem}; {consequence}"
        if self.strict:
            raise UserError(f"{line.rsplit(';', 1)[0]} (--strict: conversion refused)")
        self.problems.append(line)
        if self.echo is not None:
            self.echo(line)


def _image_size(path: Path, where: str, report: Reporter):
    """(width, height) of an image file, or None after a report."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        report(where, f"image file {path} is missing or unreadable")
        return None


def _rows(path: Path, fields: int, report: Reporter, *, numeric_from: int = 1, required: bool = True):
    """``(line number, [fields])`` of a whitespace-separated table; malformed rows are reported."""
    if not path.is_file():
        if required:
            raise UserError(f"{path} does not exist; pass the CUB_200_2011 folder of the official archive as --root")
        return
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=fields - 1) if numeric_from >= fields - 1 else line.split()
            if len(parts) != fields:
                report(f"{path}:{number}", f"expected {fields} fields, got {len(parts)}", "row skipped")
                continue
            try:
                values = parts[:numeric_from] + [float(v) for v in parts[numeric_from:]]
                int(parts[0])
            except ValueError:
                report(f"{path}:{number}", f"non-numeric field in {line.strip()!r}", "row skipped")
                continue
            yield number, values


def _relative(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # other drive (Windows)
        return str(path)


def _box_and_keypoints(where, box_px, parts_px, size, report, record_name):
    """Normalised [x, y, w, h] and [[x, y, v]] of pixel annotations, or None after a report."""
    width, height = size
    x, y, w, h = box_px
    box = [x / width, y / height, w / width, h / height]
    if w <= 0 or h <= 0 or box[0] < -BOX_TOLERANCE or box[1] < -BOX_TOLERANCE or \
            box[0] + box[2] > 1 + BOX_TOLERANCE or box[1] + box[3] > 1 + BOX_TOLERANCE:
        report(where, f"box {list(box_px)} of {record_name} lies outside its {width}x{height} image")
        return None
    keypoints = []
    for name, (px, py, visible) in parts_px:
        if visible:
            kx, ky = px / width, py / height
            if not (-BOX_TOLERANCE <= kx <= 1 + BOX_TOLERANCE and -BOX_TOLERANCE <= ky <= 1 + BOX_TOLERANCE):
                report(where, f"visible part {name} of {record_name} at ({px:g}, {py:g}) lies outside its "
                              f"{width}x{height} image")
                return None
            keypoints.append([min(max(kx, 0.0), 1.0), min(max(ky, 0.0), 1.0), 1])
        else:
            keypoints.append([0.0, 0.0, 0])
    return [min(max(v, 0.0), 1.0) for v in box[:2]] + box[2:], keypoints


def _finish(out: Path, header: dict, records: list[dict], report: Reporter, image_root: Path) -> Conversion:
    """Validate the records exactly as the reader will, then write them."""
    good = []
    for where, record in records:
        try:
            validate_record(record, parts=header["parts"], image_root=image_root, base=out.parent,
                            embedding_dim=header.get("embedding_dim"))
        except RecordProblem as err:
            report(where, str(err))
            continue
        good.append(record)
    if not good:
        raise UserError(f"no record could be converted ({len(report.problems)} problem(s) reported); "
                        "check the paths given to the converter")
    write_annotations(out, header, good)
    return Conversion(out=out, records=len(good), problems=report.problems)


def convert_cub(root, out, *, captions=None, embeddings=None, split: str = "all", strict: bool = False,
                echo=None) -> Conversion:
    """CUB-200-2011 (+ text_c10 captions, + embeddings) -> JSONL at ``out``."""
    root, out = Path(root), Path(out)
    report = Reporter(strict, echo)
    if not root.is_dir():
        raise UserError(f"--root {root} is not a folder; pass the CUB_200_2011 folder of the official archive")
    if captions is None and embeddings is None:
        raise UserError("GAWWN needs text: pass --captions TEXT_C10_FOLDER and/or --embeddings FOLDER")
    images = {int(image_id): (path.strip(), f"{root / 'images.txt'}:{number}")
              for number, (image_id, path) in _rows(root / "images.txt", 2, report, numeric_from=2)}
    classes = {int(cid): name.strip() for _, (cid, name) in _rows(root / "classes.txt", 2, report, numeric_from=2)}
    labels = {int(i): int(c) for _, (i, c) in _rows(root / "image_class_labels.txt", 2, report, required=False)}
    boxes, box_lines = {}, {}
    for number, (image_id, *box) in _rows(root / "bounding_boxes.txt", 5, report):
        boxes[int(image_id)], box_lines[int(image_id)] = box, number
    parts = {}
    part_file = root / "parts" / "part_locs.txt"
    for number, (image_id, part_id, x, y, visible) in _rows(part_file, 5, report):
        if not 1 <= int(part_id) <= len(CUB_PARTS):
            report(f"{part_file}:{number}", f"part id {int(part_id)} is not one of 1..{len(CUB_PARTS)}", "row skipped")
            continue
        parts.setdefault(int(image_id), {})[int(part_id)] = (x, y, visible > 0)
    splits = ({int(i): int(t) for _, (i, t) in _rows(root / "train_test_split.txt", 2, report, required=False)}
              if split != "all" else {})
    if split != "all" and not splits:
        raise UserError(f"--split {split} needs {root / 'train_test_split.txt'}")
    class_index = {name: i for i, (_, name) in enumerate(sorted(classes.items()))}
    class_ids = {cid: i for i, cid in enumerate(sorted(classes))}

    records = []
    for image_id, (path, where) in sorted(images.items()):
        if split != "all" and splits.get(image_id) != (1 if split == "train" else 0):
            continue
        folder, name = (path.split("/", 1) + [""])[:2] if "/" in path else ("", path)
        if image_id in labels:
            if labels[image_id] not in class_ids:
                report(where, f"class id {labels[image_id]} of image {image_id} is not in classes.txt")
                continue
            label, class_name = class_ids[labels[image_id]], classes[labels[image_id]]
        elif folder in class_index:
            label, class_name = class_index[folder], folder
        else:
            report(where, f"image {image_id} has no class (not in image_class_labels.txt, folder {folder!r} "
                          "not in classes.txt)")
            continue
        image_path = root / "images" / path
        size = _image_size(image_path, where, report)
        if size is None:
            continue
        if image_id not in boxes:
            report(where, f"image {image_id} has no row in bounding_boxes.txt")
            continue
        image_parts = parts.get(image_id, {})
        if len(image_parts) != len(CUB_PARTS):
            report(where, f"image {image_id} has {len(image_parts)} of {len(CUB_PARTS)} parts in part_locs.txt")
            continue
        converted = _box_and_keypoints(f"{root / 'bounding_boxes.txt'}:{box_lines[image_id]}", boxes[image_id],
                                       [(n, image_parts[i + 1]) for i, n in enumerate(CUB_PARTS)], size, report,
                                       f"image {image_id}")
        if converted is None:
            continue
        record = {"image": path, "class": label, "class_name": class_name, "bbox": converted[0],
                  "keypoints": converted[1]}
        stem = Path(name).stem
        if captions is not None:
            caption_file = Path(captions) / folder / f"{stem}.txt"
            if not caption_file.is_file():
                report(where, f"caption file {caption_file} is missing")
                continue
            lines = [line.strip() for line in caption_file.read_text(encoding="utf-8", errors="replace").splitlines()]
            if not any(lines):
                report(where, f"caption file {caption_file} is empty")
                continue
            record["captions"] = [line for line in lines if line]
        if embeddings is not None:
            vector_file = Path(embeddings) / folder / f"{stem}.npy"
            if not vector_file.is_file():
                report(where, f"embedding file {vector_file} is missing")
                continue
            record["text_embeddings"] = _relative(vector_file.resolve(), out.parent.resolve())
        records.append((where, record))
    header = {"format": FORMAT, "version": VERSION, "parts": list(CUB_PARTS), "source": "CUB-200-2011",
              "images": _relative((root / "images").resolve(), out.parent.resolve())}
    if embeddings is not None:
        dims = {np.load(Path(out.parent) / r["text_embeddings"], mmap_mode="r").shape[-1] for _, r in records
                if "text_embeddings" in r}
        if len(dims) > 1:
            raise UserError(f"embeddings in {embeddings} have different lengths {sorted(dims)}")
        if dims:
            header["embedding_dim"] = int(dims.pop())
    return _finish(out, header, records, report, root / "images")


# -- MPII Human Pose ----------------------------------------------------------------------
def _mat_int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):  # MATLAB [] loads as an empty array
        return default


def _mpii_people_from_mat(path: Path, report: Reporter):
    """(where, image name, joints {id: (x, y, visible)} 0-based, head box or None, activity) of single-person images."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise UserError("reading the MPII .mat file needs SciPy (pip install scipy), or pass the JSON "
                        "conversion of the annotations") from None
    try:
        release = loadmat(str(path), struct_as_record=False, squeeze_me=True)["RELEASE"]
    except (OSError, ValueError, KeyError, NotImplementedError) as err:
        raise UserError(f"{path} is not the MPII annotation file mpii_human_pose_v1_u12_1.mat ({err})") from None
    annolist = np.atleast_1d(release.annolist)
    acts = np.atleast_1d(getattr(release, "act", np.array([None] * len(annolist))))
    for index, entry in enumerate(annolist):
        where = f"{path}:annolist({index + 1})"
        name = getattr(getattr(entry, "image", None), "name", None)
        if not isinstance(name, str):
            report(where, "no image name")
            continue
        rects = [r for r in np.atleast_1d(getattr(entry, "annorect", [])) if hasattr(r, "annopoints")
                 and hasattr(getattr(r, "annopoints"), "point")]
        if len(rects) != 1:
            continue  # multi-person (or unannotated) images are not part of the single-person subset
        rect = rects[0]
        joints = {}
        for point in np.atleast_1d(rect.annopoints.point):
            visible = getattr(point, "is_visible", 1)
            visible = _mat_int(visible if not isinstance(visible, str) else visible.strip() or 1, 1)
            joints[int(point.id)] = (float(point.x) - 1.0, float(point.y) - 1.0, bool(visible))
        head = None
        if all(hasattr(rect, k) for k in ("x1", "y1", "x2", "y2")):
            head = (float(rect.x1) - 1.0, float(rect.y1) - 1.0, float(rect.x2) - 1.0, float(rect.y2) - 1.0)
        act = acts[index] if index < len(acts) else None
        activity = _mat_int(getattr(act, "act_id", -1), -1)
        activity_name = getattr(act, "act_name", "")
        activity_name = activity_name if isinstance(activity_name, str) else ""  # MATLAB '' loads as an empty array
        yield where, name, joints, head, activity, activity_name


def _mpii_people_from_json(path: Path, report: Reporter):
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(entries, list):
        raise UserError(f"{path} must hold a list of {{\"image\", \"joints\", \"joints_vis\"}} objects")
    counts = collections.Counter(entry["image"] for entry in entries
                                 if isinstance(entry, dict) and isinstance(entry.get("image"), str))
    for index, entry in enumerate(entries):
        where = f"{path}:[{index}]"
        try:
            name, joints, visible = entry["image"], entry["joints"], entry["joints_vis"]
            joints = {i: (float(x), float(y), bool(v) and x >= 0 and y >= 0)
                      for i, ((x, y), v) in enumerate(zip(joints, visible))}
        except (KeyError, TypeError, ValueError):
            report(where, "expected {\"image\": name, \"joints\": [[x, y] x 16], \"joints_vis\": [16]}")
            continue
        if counts[name] != 1:
            continue  # multi-person images are not part of the single-person subset
        yield where, name, joints, None, int(entry.get("act_id", -1)), str(entry.get("act_name", ""))


def read_caption_table(path: Path, report: Reporter) -> dict[str, list[str]]:
    """``<image name>\\t<caption>`` lines -> {image name: [captions]}."""
    if not path.is_file():
        raise UserError(f"--captions {path} does not exist")
    table = {}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            name, tab, caption = line.rstrip("\n").partition("\t")
            if not tab or not name.strip() or not caption.strip():
                report(f"{path}:{number}", "expected '<image name><TAB><caption>'", "row skipped")
                continue
            table.setdefault(name.strip(), []).append(caption.strip())
    return table


def convert_mpii(annotations, images, captions, out, *, strict: bool = False, echo=None) -> Conversion:
    """MPII Human Pose (single-person images) + captions -> JSONL at ``out``."""
    annotations, images, out = Path(annotations), Path(images), Path(out)
    report = Reporter(strict, echo)
    if not annotations.is_file():
        raise UserError(f"--annotations {annotations} does not exist; pass mpii_human_pose_v1_u12_1.mat "
                        "or its JSON conversion")
    if not images.is_dir():
        raise UserError(f"--images {images} is not a folder; pass the folder of the MPII images")
    caption_table = read_caption_table(Path(captions), report)
    reader = _mpii_people_from_mat if annotations.suffix.lower() == ".mat" else _mpii_people_from_json
    people = list(reader(annotations, report))
    activities = sorted({(act, name) for *_, act, name in people})
    class_of = {act: i for i, act in enumerate(sorted({act for act, _ in activities}))}
    records = []
    for where, name, joints, head, activity, activity_name in people:
        size = _image_size(images / name, where, report)
        if size is None:
            continue
        if name not in caption_table:
            report(where, f"image {name} has no caption in {captions}")
            continue
        points = [(x, y) for x, y, _ in joints.values()]
        if head is not None:
            points += [head[:2], head[2:]]
        if not points:
            report(where, f"image {name} has no annotated joint")
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        width, height = size
        margin_x, margin_y = PERSON_MARGIN * (max(xs) - min(xs)), PERSON_MARGIN * (max(ys) - min(ys))
        x0, y0 = max(min(xs) - margin_x, 0.0), max(min(ys) - margin_y, 0.0)
        x1, y1 = min(max(xs) + margin_x, width), min(max(ys) + margin_y, height)
        parts = [(joint, joints.get(i, (0.0, 0.0, False))) for i, joint in enumerate(MPII_JOINTS)]
        converted = _box_and_keypoints(where, (x0, y0, x1 - x0, y1 - y0), parts, size, report, f"image {name}")
        if converted is None:
            continue
        record = {"image": name, "class": class_of[activity],
                  "class_name": activity_name or ("unknown activity" if activity < 0 else f"activity {activity}"),
                  "captions": caption_table[name], "bbox": converted[0], "keypoints": converted[1]}
        records.append((where, record))
    header = {"format": FORMAT, "version": VERSION, "parts": list(MPII_JOINTS), "source": "MPII Human Pose",
              "images": _relative(images.resolve(), out.parent.resolve())}
    return _finish(out, header, records, report, images)
