"""The canvas engine: render an image of any size tile by tile with bounded memory, resumably.

A model that generates by coordinates offers a *renderer* (``model.canvas_renderer``):

* ``tile_quantum`` — tile sides and offsets are multiples of it (COCO-GAN: the micro
  patch; CIPS: 1 pixel; InfinityGAN: the 96 px patch stride);
* ``default_tile`` — the tile side used when ``--tile`` is not given;
* ``describe()`` — everything that determines the pixels (checkpoint, seed, options),
  recorded in the manifest so a resumed render is the same render;
* ``render(tiles)`` — float images in [-1, 1], one per :class:`~tfcoord.generation.tiles.Tile`.
  Latents, coordinates and noise are derived from canvas positions and the seed, so a pixel's
  value does not depend on tile size, batch size or order.

The engine plans the tiles in horizontal bands (:func:`~tfcoord.generation.tiles.plan_bands`),
renders each band in batches, and stores every finished band atomically as
``<out>.parts/band_NNNNN.npy`` with a ``manifest.json``. When all bands exist it streams
them through the writer (PNG, BigTIFF, DZI) into ``<out>`` and removes the parts.
Rerunning the same command after a kill skips the finished bands, so the output is
byte-identical to an uninterrupted render. Memory: one band of uint8 pixels plus one
batch of tiles in the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError
from tfcoord.generation.tiles import check_side, plan_bands
from tfcoord.generation.writers import WRITERS, check_format, estimated_bytes
from tfcoord.images import to_uint8


def choose_tile(renderer, tile: int | None) -> int:
    quantum = renderer.tile_quantum
    tile = tile or renderer.default_tile
    if tile % quantum:
        raise UserError(f"--tile {tile} must be a multiple of {quantum} for this model "
                        f"(e.g. --tile {max(quantum, tile // quantum * quantum)})")
    return tile


class PartsStore:
    """Finished bands of one render, on disk next to the output, with a manifest."""

    def __init__(self, out: Path, description: dict):
        self.folder = out.with_name(out.name + ".parts")
        self.manifest = self.folder / "manifest.json"
        self.description = description
        self.key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()

    def open(self) -> set[int]:
        """Create the store or reopen a matching one; returns the finished band indices."""
        if self.manifest.is_file():
            saved = json.loads(self.manifest.read_text())
            if saved.get("key") != self.key:
                raise UserError(f"{self.folder} holds a partial render made with other options; rerun the "
                                "original command to finish it, or delete that folder to start this one")
            return {i for i in saved["bands_done"] if (self.folder / self._name(i)).is_file()}
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_manifest(set())
        return set()

    @staticmethod
    def _name(index: int) -> str:
        return f"band_{index:05d}.npy"

    def _write_manifest(self, done: set[int]) -> None:
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "description": self.description, "bands_done": sorted(done)}))
        os.replace(tmp, self.manifest)

    def save(self, index: int, pixels: np.ndarray, done: set[int]) -> None:
        """Write a band atomically, then record it (a killed write leaves no trace)."""
        tmp = self.folder / (self._name(index) + ".tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, pixels)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.folder / self._name(index))
        done.add(index)
        self._write_manifest(done)

    def bands(self, count: int):
        for index in range(count):
            yield np.load(self.folder / self._name(index))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def check_disk(out: Path, fmt: str, width: int, height: int) -> None:
    """The parts and the output must fit on the output's file system."""
    needed = width * height * 3 + estimated_bytes(fmt, width, height)
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise UserError(f"rendering {width} x {height} needs about {needed / 1e9:.2f} GB free on {out.parent} "
                        f"(parts + {fmt}), but only {free / 1e9:.2f} GB are free; free space or choose "
                        "another --out")


def render_canvas(renderer, out, width: int, height: int, *, tile: int | None = None, batch: int = 4,
                  fmt: str = "png", progress: bool = True) -> Path:
    """Render ``width`` x ``height`` pixels with ``renderer`` into ``out`` (resumable).

    Returns the written path (``out``; for DZI the ``.dzi`` file beside ``<stem>_files/``).
    """
    width, height = check_side("canvas width", width), check_side("canvas height", height)
    if batch < 1:
        raise UserError(f"--batch must be >= 1, got {batch}")
    check_format(fmt, width, height)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tile = choose_tile(renderer, tile)
    bands = plan_bands(width, height, tile)
    store = PartsStore(out, {**renderer.describe(), "width": width, "height": height, "format": fmt})
    done = store.open()
    if len(done) < len(bands):
        check_disk(out, fmt, width, height)
    todo = [i for i in range(len(bands)) if i not in done]
    bar = _progress(sum(len(bands[i]) for i in todo), progress, resumed=len(done))
    try:
        for index in todo:
            band = np.zeros((bands[index][0].height, width, 3), np.uint8)
            for start in range(0, len(bands[index]), batch):
                tiles = bands[index][start:start + batch]
                began = time.perf_counter()
                for t, pixels in zip(tiles, renderer.render(tiles)):
                    band[:, t.left:t.left + t.width] = to_uint8(pixels)
                _advance(bar, tiles, time.perf_counter() - began)
            store.save(index, band, done)
        tmp = out.with_name(out.name + ".tmp")
        WRITERS[fmt](tmp if fmt != "dzi" else out, width, height, store.bands(len(bands)))
        if fmt != "dzi":
            os.replace(tmp, out)
    except OSError as err:
        raise UserError(f"writing the render failed ({err.strerror or err}); the {len(done)} finished bands are "
                        f"kept in {store.folder}; free space or fix the folder, then rerun the same command "
                        "to continue") from None
    finally:
        bar.close()
    store.remove()
    return out


def _progress(total_tiles: int, enabled: bool, resumed: int):
    from tqdm import tqdm

    bar = tqdm(total=total_tiles, unit="tile", desc="render", dynamic_ncols=True, disable=not enabled)
    if resumed and enabled:
        bar.write(f"resuming: {resumed} finished bands found")
    bar.megapixels, bar.seconds = 0.0, 0.0
    return bar


def _advance(bar, tiles, seconds: float) -> None:
    bar.megapixels += sum(t.width * t.height for t in tiles) / 1e6
    bar.seconds += seconds
    bar.update(len(tiles))
    bar.set_postfix({"Mpx/s": f"{bar.megapixels / max(bar.seconds, 1e-9):.2f}"}, refresh=False)
