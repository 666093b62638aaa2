"""Cache of real-set statistics, keyed by everything that determines them.

The key is the SHA-256 of a description (models.md §5): the feature extractor and its
weights' hash, the data spec and a fingerprint of its content (``folder:`` -- every
file's relative path, size and modification time; ``tfds:`` -- the data directory),
the image size, the requested image count, the crop, resize filter and value range.
Framework versions are deliberately not part of it.

Files, under ``$TFCOORD_CACHE_DIR/stats`` (default ``~/.cache/tfcoord/stats``)::

    <key>.npz    mean, cov (float64), count, and features (float32) when KID/PR needed them
    <key>.json   the description, the count and the SHA-256 of the .npz

Both are written atomically; an entry whose .npz does not match its recorded hash is
ignored with a warning and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from tfcoord.errors import warn
from tfcoord.fileio import atomic_write_bytes, atomic_write_text
from tfcoord.metrics.fid import FeatureSet

CACHE_DIR_ENV = "TFCOORD_CACHE_DIR"
PROTOCOL = 1  # bump when the way real images are read or featurised changes


def cache_root(kind: str = "stats") -> Path:
    """``$TFCOORD_CACHE_DIR/<kind>`` (default ``~/.cache/tfcoord/<kind>``)."""
    base = os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "tfcoord")
    return Path(base) / kind


def data_fingerprint(spec: str) -> dict:
    """What identifies the content behind a ``--data`` spec without reading every image."""
    name, _, argument = spec.partition(":")
    if name == "folder" and argument:
        from tfcoord.data.folder import find_images

        root = Path(argument).expanduser().resolve()
        listing = hashlib.sha256()
        files = find_images(root)
        for path in files:
            stat = os.stat(path)
            listing.update(f"{os.path.relpath(path, root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return {"root": str(root), "files": len(files), "listing_sha256": listing.hexdigest()}
    if name == "tfds":
        return {"tfds_data_dir": os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"}
    return {}


def describe(*, extractor_fingerprint: str, spec: str, image_size, count: int, view: dict,
             preprocessing=None) -> dict:
    """What the real statistics depend on; ``preprocessing`` (a DataConfig recipe) changes the crop."""
    crop = "centre, to the aspect ratio of image_size"
    if preprocessing is not None and _recipe(preprocessing) != _recipe(type(preprocessing)()):
        crop = _recipe(preprocessing)  # a paper recipe: part of the key (the default keeps old keys valid)
    return {
        "protocol": PROTOCOL,
        "extractor": extractor_fingerprint,
        "data": spec,
        "content": data_fingerprint(spec),
        "image_size": [int(s) for s in image_size],
        "count": int(count),
        "crop": crop,
        "resize": "tf.image.resize bilinear, antialias=True",
        "value_range": "[-1, 1], quantised to 8 bits",
        **view,
    }


def cache_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


def load(description: dict, need_features: bool, root: Path | None = None) -> FeatureSet | None:
    """The cached statistics of ``description``, or None (missing, damaged, or without needed features)."""
    root = root or cache_root()
    key = cache_key(description)
    npz_path, json_path = root / f"{key}.npz", root / f"{key}.json"
    if not (npz_path.is_file() and json_path.is_file()):
        return None
    try:
        record = json.loads(json_path.read_text())
        payload = npz_path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != record["npz_sha256"]:
            raise ValueError("the .npz does not match its recorded SHA-256")
        with np.load(io.BytesIO(payload)) as data:
            if need_features and "features" not in data:
                return None
            return FeatureSet(mean=data["mean"], cov=data["cov"], count=int(data["count"]),
                              features=data["features"] if "features" in data else None)
    except (OSError, ValueError, KeyError, TypeError) as err:
        warn(f"ignoring the damaged statistics cache entry {npz_path} ({err}); recomputing")
        return None


def save(description: dict, stats: FeatureSet, root: Path | None = None) -> Path | None:
    """Store ``stats``; a cache that cannot be written only costs time (a warning, not an error)."""
    root = root or cache_root()
    key = cache_key(description)
    arrays = {"mean": stats.mean, "cov": stats.cov, "count": np.int64(stats.count)}
    if stats.features is not None:
        arrays["features"] = stats.features
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    try:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(root / f"{key}.npz", payload)
        atomic_write_text(root / f"{key}.json", json.dumps(
            {**description, "actual_count": stats.count, "npz_sha256": hashlib.sha256(payload).hexdigest()},
            indent=1))
    except OSError as err:
        warn(f"could not write the statistics cache in {root} ({err}); the next run recomputes them")
        return None
    return root / f"{key}.npz"


def _recipe(preprocessing) -> dict:
    """The evaluation-time part of a DataConfig recipe (flip never applies to real statistics)."""
    return {"resize": int(preprocessing.resize), "resize_mode": preprocessing.resize_mode, "crop": preprocessing.crop,
            "crop_size": int(preprocessing.crop_size), "crop_offset": [int(v) for v in preprocessing.crop_offset]}
