"""The one tile planner: size limits, the tile, and the grid of tiles that covers a canvas.

The canvas engine (:mod:`tfcoord.generation.canvas`), the remote client
(:mod:`export.tiling`) and the model canvases that render patch by patch all plan with
:class:`TileGrid`: tiles of ``tile`` pixels at multiples of ``stride`` (default: the tile,
no overlap) cover a ``height`` x ``width`` image. ``crop`` says where an image that the
tiles do not cover exactly is cut from: ``end`` (the last row and column of tiles are
cropped) or ``center`` (the tiles cover the next reachable size, ``tile + stride (n - 1)``
per axis, and the image is its centre, from pixel ``(covered - wanted) // 2``; a panorama
keeps column 0 at the left edge so that it closes on itself). Each tile contributes the
``stride`` pixels from its top-left corner (the last row and column: everything to the end
of the image); the rest of an overlapping tile is covered by its neighbours.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfcoord.errors import UserError

MAX_SIDE = 1 << 20  # 1 Mpx per side: a documented sanity limit; each format's own limit (PNG: 32,767) is checked too
CROPS = ("end", "center")


def check_side(name: str, side) -> int:
    """``side`` if it is a whole number of pixels within :data:`MAX_SIDE`, else a UserError naming ``name``."""
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or not 1 <= side <= MAX_SIDE:
        raise UserError(f"{name} must be an integer between 1 and {MAX_SIDE} pixels, got {side!r}")
    return int(side)


def panorama_period(width: int, unit: int) -> int:
    """A panorama's width in units of ``unit`` px (one latent column), or a UserError suggesting widths that are."""
    if width % unit:
        lower, upper = (width // unit) * unit, (width // unit + 1) * unit
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        raise UserError(f"a panorama's width must be a multiple of {unit} px (one latent column, so that the "
                        f"360 degree canvas closes on itself); got {width}, use {hint}")
    return width // unit


def tiles_to_cover(side: int, tile: int, stride: int) -> int:
    """Tiles at multiples of ``stride`` needed to cover ``side`` pixels with tiles of ``tile`` pixels."""
    return 1 if side <= tile else math.ceil((side - tile) / stride) + 1


def covered_pixels(count: int, tile: int, stride: int) -> int:
    """Pixels that ``count`` tiles at multiples of ``stride`` cover (the reachable sides)."""
    return tile + stride * (count - 1)


@dataclasses.dataclass(frozen=True)
class Tile:
    """A tile of a :class:`TileGrid`: grid index, the image pixels it contributes, where they start in its output."""

    row: int  # tile row on the canvas
    col: int
    top: int  # image pixel where the tile's contribution starts
    left: int
    height: int  # pixels the tile contributes (its stride, cropped at the image edge)
    width: int
    crop_top: int = 0  # first pixel of the tile's output that it contributes (> 0: centre crop)
    crop_left: int = 0


@dataclasses.dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile`` = (height, width) px at ``stride`` steps covering a ``height`` x ``width`` image."""

    height: int
    width: int
    tile: tuple[int, int]
    stride: tuple[int, int] | None = None  # default: the tile (tiles side by side)
    crop: str = "end"
    panorama: bool = False  # a centre crop keeps column 0 (the canvas is periodic horizontally)

    def __post_init__(self):
        check_side("canvas height", self.height)
        check_side("canvas width", self.width)
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        object.__setattr__(self, "tile", tuple(int(t) for t in self.tile))
        object.__setattr__(self, "stride", self.tile if self.stride is None else tuple(int(s) for s in self.stride))

    @property
    def rows(self) -> int:
        return tiles_to_cover(self.height, self.tile[0], self.stride[0])

    @property
    def cols(self) -> int:
        return tiles_to_cover(self.width, self.tile[1], self.stride[1])

    @property
    def num_tiles(self) -> int:
        return self.rows * self.cols

    @property
    def covered_height(self) -> int:
        """Pixels the tiles cover vertically (>= height: the reachable size rounded up)."""
        return covered_pixels(self.rows, self.tile[0], self.stride[0])

    @property
    def covered_width(self) -> int:
        return covered_pixels(self.cols, self.tile[1], self.stride[1])

    @property
    def offset(self) -> tuple[int, int]:
        """Top-left pixel of the image inside the covered pixels (0, 0 unless centre-cropped)."""
        if self.crop != "center":
            return 0, 0
        left = 0 if self.panorama else (self.covered_width - self.width) // 2
        return (self.covered_height - self.height) // 2, left

    def iter_tiles(self):
        """Every tile, row-major; the last row and column take what remains of the image.

        With a centre crop the tiles cover ``offset`` more pixels before the image (and up to as
        many after it); a tile's ``crop_top`` / ``crop_left`` skip them."""
        top_offset, left_offset = self.offset
        columns = _spans(self.cols, self.stride[1], self.width, left_offset)
        for r, (top, height, crop_top) in enumerate(_spans(self.rows, self.stride[0], self.height, top_offset)):
            for c, (left, width, crop_left) in enumerate(columns):
                yield Tile(r, c, top, left, height, width, crop_top, crop_left)

    def bands(self) -> list[list[Tile]]:
        """The tiles grouped in rows (bands), row-major."""
        tiles = list(self.iter_tiles())
        return [tiles[r * self.cols:(r + 1) * self.cols] for r in range(self.rows)]


def _spans(count: int, stride: int, side: int, offset: int) -> list[tuple[int, int, int]]:
    """(image start, length, skipped output pixels) of each tile along an axis: tile i covers
    [i * stride, next start) of the covered pixels (the last to the end), shifted into the image."""
    out = []
    for i in range(count):
        start = max(i * stride, offset)
        end = min((i + 1) * stride if i + 1 < count else offset + side, offset + side)
        out.append((start - offset, end - start, start - i * stride))
    return out


def plan_bands(width: int, height: int, tile: int) -> list[list[Tile]]:
    """Row-major tiles of side ``tile`` (smaller at the right and bottom edges), grouped in bands."""
    return TileGrid(height, width, (tile, tile)).bands()
