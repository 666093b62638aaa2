"""Render an InfinityGAN canvas from its exported ``.tflite`` file alone: no tfcoord, only NumPy and LiteRT.

    python docs/clients/infinitygan_tflite_client.py --tflite ig.tflite --width 340 --height 85 --seed 3 \
        --out canvas.npy                       # float32 (H, W, 3) in [-1, 1]; .png needs Pillow

What a phone app does, written in Python so that a test can run it: read the model
description embedded in the ``.tflite`` (metadata entry ``tfcoord_description``, read here with
a few lines of FlatBuffers, as an app would) or from the JSON beside it, draw z_g, z_l and every
layer's noise with the portable seeding recipe (64-bit integer hash + Box-Muller, below; the
description's ``tiling.recipe`` says the same in prose), compute the coordinates, run
``generate_patch`` once per patch and paste the patches. The canvas equals ``python -m
tfcoord.generate --run RUN --width W --height H --seed S`` (tests/models/test_infinitygan_portable_seeding.py).
It imports nothing from tfcoord or export on purpose; the README shows the same recipe in
Kotlin and Swift.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

PORTABLE_GENERATOR = "splitmix64-boxmuller/1"
METADATA_NAME = "tfcoord_description"

# -- the portable seeding recipe (64-bit unsigned arithmetic, wrapping) ---------------------------------------
GAMMA = np.uint64(0x9E3779B97F4A7C15)


def mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def absorb(h, words):
    """One hash step, h = mix(h + (w + 1) * G), for arrays of words."""
    return mix(h + (np.asarray(words, np.uint64) + np.uint64(1)) * GAMMA)


def normal(h):
    """float32 N(0, 1) of 64-bit hashes: Box-Muller's cosine branch in float64, one cast at the end."""
    u1 = ((h >> np.uint64(32)) + np.uint64(1)).astype(np.float64) * 2.0 ** -32
    u2 = (h & np.uint64(0xFFFFFFFF)).astype(np.float64) * 2.0 ** -32
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)).astype(np.float32)


def field(seed, seed_path, top, left, height, width, channels):
    """normal(hash([seed, *seed_path, y, x, c])) on a window: (height, width, channels) float32."""
    h = np.zeros(1, np.uint64)
    for word in (seed, *seed_path):
        h = absorb(h, [word])
    h = absorb(h, np.arange(top, top + height))[:, None]
    h = absorb(h, np.arange(left, left + width)[None, :])[..., None]
    return normal(absorb(h, np.arange(channels)))


# -- the description inside the .tflite (FlatBuffers: Model.buffers = field 4, Model.metadata = field 6) -------
def _table_field(blob, table, index):
    """Absolute position of field ``index`` of the table at ``table``, or None if it is absent."""
    vtable = table - struct.unpack_from("<i", blob, table)[0]
    vtable_size = struct.unpack_from("<H", blob, vtable)[0]
    if 4 + 2 * index >= vtable_size:
        return None
    offset = struct.unpack_from("<H", blob, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _vector(blob, position):
    """(start, length) of the vector referenced at ``position``."""
    start = position + struct.unpack_from("<I", blob, position)[0]
    return start + 4, struct.unpack_from("<I", blob, start)[0]


def _table_at(blob, position):
    return position + struct.unpack_from("<I", blob, position)[0]


def embedded_description(blob: bytes) -> dict | None:
    model = struct.unpack_from("<I", blob, 0)[0]
    metadata, buffers = _table_field(blob, model, 6), _table_field(blob, model, 4)
    if metadata is None:
        return None
    start, count = _vector(blob, metadata)
    for k in range(count):
        entry = _table_at(blob, start + 4 * k)
        name_start, name_length = _vector(blob, _table_field(blob, entry, 0))
        if blob[name_start:name_start + name_length].decode() != METADATA_NAME:
            continue
        index = struct.unpack_from("<I", blob, _table_field(blob, entry, 1))[0]
        buffers_start, _ = _vector(blob, buffers)
        buffer = _table_at(blob, buffers_start + 4 * index)
        data = _table_field(blob, buffer, 0)
        if data is not None:
            data_start, data_length = _vector(blob, data)
        else:  # large models keep buffers after the FlatBuffer: Buffer.offset (field 1) and size (field 2)
            data_start = struct.unpack_from("<Q", blob, _table_field(blob, buffer, 1))[0]
            data_length = struct.unpack_from("<Q", blob, _table_field(blob, buffer, 2))[0]
        return json.loads(blob[data_start:data_start + data_length].decode())
    return None


def load_description(tflite: Path) -> dict:
    description = embedded_description(tflite.read_bytes())
    if description is None:
        description = json.loads(tflite.with_suffix(".json").read_text())
    if description.get("model_type") != "infinitygan":
        raise SystemExit(f"error: {tflite} holds a {description.get('model_type')} model, not InfinityGAN")
    for name, recipe in description["tiling"]["inputs"].items():
        if "seed_path" in recipe and recipe.get("generator") != PORTABLE_GENERATOR:
            raise SystemExit(f"error: input {name} is drawn by {recipe.get('generator', 'numpy-default-rng')!r}; this "
                             f"client implements {PORTABLE_GENERATOR} (re-export the model)")
    return description


# -- coordinates and tiling ---------------------------------------------------------------------------------------
def coordinates(recipe, top, left, size, total_rows):
    """InfinityGAN's coordinates at latent rows top.., columns left.. (the description's formula)."""
    rows = np.arange(top, top + size, dtype=np.float64)
    cols = np.arange(left, left + size, dtype=np.float64)
    step = 2.0 / recipe["horizontal_period"]
    if recipe["coordinate_system"] == "torus":
        v = rows * step - 1.0
        vertical = [np.cos(np.pi * v), np.sin(np.pi * v)]
    else:
        vertical = [np.tanh((rows - (total_rows - 1) / 2.0) * recipe["vertical_step"])]
    u = cols * step - 1.0
    channels = [np.repeat(c[:, None], size, axis=1) for c in vertical]
    channels += [np.repeat(f(np.pi * u)[None, :], size, axis=0) for f in (np.cos, np.sin)]
    return np.stack(channels, axis=-1).astype(np.float32)


def patches_for(side, patch, stride):
    return 1 if side <= patch else math.ceil((side - patch) / stride) + 1


def render(tflite: Path, width: int, height: int, seed: int) -> np.ndarray:
    description = load_description(tflite)
    tiling = description["tiling"]
    inputs = tiling["inputs"]
    patch, stride = tiling["tile_size"][0], tiling["stride"][0]
    rows, cols = patches_for(height, patch, stride), patches_for(width, patch, stride)
    coords = inputs["coords"]
    total_rows = coords["window"] + coords["stride"] * (rows - 1)  # latent rows of the canvas: the horizon's centre
    z = inputs["global_latent"]
    global_latent = field(seed, z["seed_path"], 0, 0, 1, 1, z["shape"][0])[0]  # (1, D): image 0 of the seed
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tensorflow.lite import Interpreter
    runner = Interpreter(model_path=str(tflite)).get_signature_runner(tiling["signature"])
    covered = np.zeros((patch + stride * (rows - 1), patch + stride * (cols - 1), 3), np.float32)
    for i in range(rows):
        for j in range(cols):
            feed = {"global_latent": global_latent,
                    "coords": coordinates(coords, coords["stride"] * i, coords["stride"] * j, coords["window"],
                                          total_rows)[None]}
            for name, recipe in inputs.items():
                if recipe["source"] == "canvas_field":
                    step, size = recipe["stride"], recipe["window"]
                    feed[name] = field(seed, recipe["seed_path"], step * i, step * j, size, size,
                                       recipe["channels"])[None]
            # Row-major pasting: each overlap takes the later patch, as the library does (they agree there anyway).
            covered[stride * i:stride * i + patch, stride * j:stride * j + patch] = runner(**feed)["rgb"][0]
    top, left = (covered.shape[0] - height) // 2, (covered.shape[1] - width) // 2  # centre crop
    return covered[top:top + height, left:left + width]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", required=True, type=Path)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path, help=".npy (float32) or .png")
    args = parser.parse_args(argv)
    canvas = render(args.tflite, args.width, args.height, args.seed)
    if args.out.suffix == ".npy":
        np.save(args.out, canvas)
    else:
        from PIL import Image

        Image.fromarray(np.clip(np.rint((canvas + 1.0) * 127.5), 0, 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out} ({args.width}x{args.height}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
