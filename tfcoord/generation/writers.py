"""Streaming image writers: PNG row by row, tiled BigTIFF, Deep Zoom (DZI) pyramids.

Each writer consumes the image as an iterator of horizontal bands ((rows, width, 3)
uint8, top to bottom), so memory holds one band (plus, for DZI, one band per pyramid
level). PNG encoding is pypng's, TIFF encoding is tifffile's, DZI tiles are encoded
by Pillow; tfcoord only arranges rows and tiles.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from tfcoord.errors import UserError

# Beyond this side length many PNG viewers and decoders give up; use --format tiff or dzi.
PNG_MAX_SIDE = 32_767
TIFF_TILE = 256
DZI_TILE = 254
DZI_OVERLAP = 1
FORMATS = ("png", "tiff", "dzi")


def check_format(fmt: str, width: int, height: int) -> None:
    """Refuse sizes a format cannot hold, naming the format that can."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if fmt == "png" and max(width, height) > PNG_MAX_SIDE:
        raise UserError(f"{width} x {height} is larger than PNG viewers handle (side > {PNG_MAX_SIDE}); "
                        "use --format tiff (tiled BigTIFF) or --format dzi (Deep Zoom pyramid)")


def estimated_bytes(fmt: str, width: int, height: int) -> int:
    """An upper bound of the output size (uncompressed pixels; a DZI pyramid adds a third)."""
    raw = width * height * 3
    return int(raw * 4 / 3) + 65_536 if fmt == "dzi" else raw + 65_536


def write_png(path, width: int, height: int, bands: Iterable[np.ndarray]) -> None:
    import png

    with open(path, "wb") as handle:
        writer = png.Writer(width, height, greyscale=False, bitdepth=8, compression=6)
        writer.write(handle, (row.reshape(-1) for row in itertools.chain.from_iterable(bands)))
        handle.flush()
        os.fsync(handle.fileno())


def _tiff_tiles(width: int, height: int, bands: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Row-major TIFF tiles (zero-padded at the right and bottom edges) from bands of any height."""
    pending = np.zeros((0, width, 3), np.uint8)
    for band in bands:
        pending = np.concatenate([pending, band]) if len(pending) else band
        while len(pending) >= TIFF_TILE:
            strip, pending = pending[:TIFF_TILE], pending[TIFF_TILE:]
            yield from _strip_tiles(strip, width)
    if len(pending):
        yield from _strip_tiles(pending, width)


def _strip_tiles(strip: np.ndarray, width: int) -> Iterator[np.ndarray]:
    """The tiles of a strip of at most TIFF_TILE rows, zero-padded to whole tiles."""
    padded = np.pad(strip, ((0, TIFF_TILE - len(strip)), (0, -width % TIFF_TILE), (0, 0)))
    for left in range(0, width, TIFF_TILE):
        yield np.ascontiguousarray(padded[:, left:left + TIFF_TILE])


def write_tiff(path, width: int, height: int, bands: Iterable[np.ndarray]) -> None:
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(_tiff_tiles(width, height, bands), shape=(height, width, 3), dtype=np.uint8,
                  tile=(TIFF_TILE, TIFF_TILE), photometric="rgb", compression="zlib")


class _DziLevel:
    """One pyramid level: collects its rows, writes finished rows of tiles, feeds half-size rows down."""

    def __init__(self, folder: Path, level: int, width: int, height: int, below: "_DziLevel | None"):
        self.folder, self.level, self.width, self.height, self.below = folder, level, width, height, below
        self.rows = np.zeros((0, width, 3), np.uint8)
        self.first_row = 0  # image row of self.rows[0]
        self.next_tile_row = 0
        self.pair = None  # an unpaired row waiting for its partner (2x downsampling)
        (folder / str(level)).mkdir(parents=True, exist_ok=True)

    def add(self, rows: np.ndarray) -> None:
        self.rows = np.concatenate([self.rows, rows]) if len(self.rows) else rows.copy()
        self._flush(final=False)
        if self.below is not None:
            self._downsample(rows)

    def _downsample(self, rows: np.ndarray) -> None:
        if self.pair is not None:
            rows = np.concatenate([self.pair, rows])
            self.pair = None
        if len(rows) % 2:
            rows, self.pair = rows[:-1], rows[-1:]
        if len(rows):
            self.below.add(_half(rows, self.below.width))

    def finish(self) -> None:
        self._flush(final=True)
        if self.below is not None:
            if self.pair is not None:
                self.below.add(_half(np.concatenate([self.pair, self.pair]), self.below.width))
            self.below.finish()

    def _flush(self, final: bool) -> None:
        while True:
            top = self.next_tile_row * DZI_TILE
            if top >= self.height:
                return
            bottom = min(top + DZI_TILE + DZI_OVERLAP, self.height)
            if self.first_row + len(self.rows) < bottom and not final:
                return
            y0 = max(top - DZI_OVERLAP, 0)
            band = self.rows[y0 - self.first_row:bottom - self.first_row]
            for col, left in enumerate(range(0, self.width, DZI_TILE)):
                x0, x1 = max(left - DZI_OVERLAP, 0), min(left + DZI_TILE + DZI_OVERLAP, self.width)
                _save_tile(band[:, x0:x1], self.folder / str(self.level) / f"{col}_{self.next_tile_row}.png")
            self.next_tile_row += 1
            keep_from = self.next_tile_row * DZI_TILE - DZI_OVERLAP  # the overlap row stays
            drop = max(0, keep_from - self.first_row)
            self.rows, self.first_row = self.rows[drop:], self.first_row + drop


def _half(rows: np.ndarray, out_width: int) -> np.ndarray:
    """2x2 box-filter downsampling of an even number of rows (odd widths repeat the last column)."""
    if rows.shape[1] % 2:
        rows = np.concatenate([rows, rows[:, -1:]], axis=1)
    pooled = rows.reshape(len(rows) // 2, 2, rows.shape[1] // 2, 2, 3).astype(np.uint16).sum((1, 3))
    return ((pooled + 2) // 4).astype(np.uint8)[:, :out_width]


def _save_tile(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(pixels)).save(path, compress_level=6)


def write_dzi(path, width: int, height: int, bands: Iterable[np.ndarray]) -> None:
    """A Deep Zoom pyramid: ``path`` (the .dzi XML) and ``<stem>_files/<level>/<col>_<row>.png``."""
    path = Path(path)
    folder = path.with_name(path.stem + "_files")
    max_level = math.ceil(math.log2(max(width, height))) if max(width, height) > 1 else 0
    level = None
    for lv in range(0, max_level + 1):
        scale = 2 ** (max_level - lv)
        level = _DziLevel(folder, lv, math.ceil(width / scale), math.ceil(height / scale), level)
    for band in bands:
        level.add(band)
    level.finish()
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="png" Overlap="{DZI_OVERLAP}" '
        f'TileSize="{DZI_TILE}"><Size Width="{width}" Height="{height}"/></Image>\n')


WRITERS = {"png": write_png, "tiff": write_tiff, "dzi": write_dzi}
