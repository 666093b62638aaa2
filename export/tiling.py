"""The tile plan of a canvas, built from a model's serving description alone.

A description (``assets/tfcoord_model.json``, the ``describe`` signature, or the JSON
next to a ``.tflite`` file; see :meth:`tfcoord.models.base.CoordinateGan.serving_description`)
says which signature renders one tile, the tile size, and how to build each input of tile
(i, j). :class:`TilePlan` covers a W x H canvas with tiles at multiples of the stride
(``tiling.stride``, default the tile size; the last row and column cropped) and places
the trained tile grid on it by the description's ``anchor``: ``center`` extends the grid
equally on both sides (grid index ``i - (rows - native_rows) // 2``), ``start`` keeps grid
index 0 at the top/left edge. Each tile contributes the ``stride`` pixels from its top-left
corner (the rest of an overlapping tile is covered by its neighbours, which agree there).

Inputs are built by the builder registered for their ``source`` in :data:`INPUT_SOURCES`;
``tile_coordinates`` inputs by the function registered for their ``system`` in
:data:`COORDINATE_SYSTEMS`. A model whose inputs need another recipe registers it here.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfcoord.errors import UserError

SUPPORTED_FORMATS = ("tfcoord-serving/1",)


def cocogan_tile_coordinates(recipe: dict, tile_size, rows, cols):
    """COCO-GAN micro coordinates of grid indices (rows, cols), by :class:`tfcoord.coords.CocoGanCoordinates`."""
    from tfcoord.coords import CocoGanCoordinates

    # Micro coordinates depend only on the number of micro positions per axis; count in patches.
    geometry = CocoGanCoordinates(recipe["micro_rows"], recipe["micro_cols"], 1, 1, recipe["coordinate_system"])
    return np.asarray(geometry.micro_coords(rows, cols), "float32")


def cips_tile_coordinates(recipe: dict, tile_size, rows, cols):
    from tfcoord.coords import cips_serving_tile_coordinates

    return cips_serving_tile_coordinates(recipe, tile_size, rows, cols)


# system name -> fn(recipe, (tile height, tile width), rows, cols) -> (n, ...) float32 for the
# grid indices rows, cols (each of shape (n,)) of n tiles.
COORDINATE_SYSTEMS = {"cocogan": cocogan_tile_coordinates, "cips": cips_tile_coordinates}


def latent_input(plan, name, recipe, tiles):
    """The image's latent (drawn once per image, see :func:`draw_latents`), repeated for every tile."""
    return np.repeat(plan.latents[name], len(tiles), axis=0)


def tile_coordinates_input(plan, name, recipe, tiles):
    rows, cols = plan.grid_indices(tiles)
    return COORDINATE_SYSTEMS[recipe["system"]](recipe, (plan.tile_height, plan.tile_width), rows, cols)


# source -> fn(plan, input name, recipe, tiles) -> (len(tiles), ...) array.
INPUT_SOURCES = {"latent": latent_input, "tile_coordinates": tile_coordinates_input}


def check_description(description) -> dict:
    """The description if this client can tile with it, else a UserError naming what is missing."""
    if not isinstance(description, dict) or description.get("format") not in SUPPORTED_FORMATS:
        found = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise UserError(f"the model description has format {found!r}; this client reads "
                        f"{', '.join(SUPPORTED_FORMATS)} (re-export the model with this tfcoord version)")
    tiling = description.get("tiling")
    model = description.get("model_type", "this")
    if not isinstance(tiling, dict):
        raise UserError(f"the {model} model's description has no 'tiling' section: it cannot be rendered tile "
                        "by tile by this client")
    for key in ("signature", "tile_size", "native_tiles", "anchor", "inputs"):
        if key not in tiling:
            raise UserError(f"the {model} model's tiling description lacks '{key}'; re-export the model")
    for name, recipe in tiling["inputs"].items():
        source = recipe.get("source")
        if source not in INPUT_SOURCES:
            raise UserError(f"input '{name}' of the {model} model has source {source!r}; this client builds "
                            f"{', '.join(sorted(INPUT_SOURCES))} inputs (update tfcoord)")
        if source == "tile_coordinates" and recipe.get("system") not in COORDINATE_SYSTEMS:
            raise UserError(f"input '{name}' of the {model} model uses the coordinate system "
                            f"{recipe.get('system')!r}, unknown to this client (known: "
                            f"{', '.join(sorted(COORDINATE_SYSTEMS))}; update tfcoord)")
    return description


def draw_latents(recipes: dict, seed: int) -> dict:
    """One value per latent input, drawn in the order listed from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    latents = {}
    for name, recipe in recipes.items():
        if recipe["source"] != "latent":
            continue
        shape = (1, *recipe["shape"])
        if recipe.get("distribution", "normal") == "uniform":
            latents[name] = rng.uniform(recipe["low"], recipe["high"], shape).astype("float32")
        else:
            latents[name] = rng.standard_normal(shape).astype("float32")
    return latents


@dataclasses.dataclass(frozen=True)
class Tile:
    row: int  # tile row on the canvas
    col: int
    top: int  # canvas pixel of the tile's top-left corner
    left: int
    height: int  # pixels the tile contributes (its stride, cropped at the canvas edge)
    width: int


def _count(side: int, tile: int, stride: int) -> int:
    """Tiles at multiples of ``stride`` needed to cover ``side`` pixels with tiles of ``tile`` pixels."""
    return 1 if side <= tile else math.ceil((side - tile) / stride) + 1


class TilePlan:
    """Which tiles a W x H canvas needs and the signature inputs of any batch of them."""

    def __init__(self, description: dict, width: int, height: int, seed: int = 0, signature: str | None = None):
        self.description = check_description(description)
        tiling = description["tiling"]
        self.signature = signature or tiling["signature"]
        self.width, self.height, self.seed = width, height, seed
        self.tile_height, self.tile_width = tiling["tile_size"]
        self.stride_height, self.stride_width = tiling.get("stride", tiling["tile_size"])
        self.rows = _count(height, self.tile_height, self.stride_height)
        self.cols = _count(width, self.tile_width, self.stride_width)
        native_rows, native_cols = tiling["native_tiles"]
        anchor_row, anchor_col = tiling["anchor"]
        self.row_offset = (self.rows - native_rows) // 2 if anchor_row == "center" else 0
        self.col_offset = (self.cols - native_cols) // 2 if anchor_col == "center" else 0
        self.recipes = tiling["inputs"]
        self.latents = draw_latents(self.recipes, seed)

    @property
    def num_tiles(self) -> int:
        return self.rows * self.cols

    def tiles(self) -> list[Tile]:
        """Every tile, row-major; the last row and column take what remains of the canvas."""
        def spans(count, stride, side):
            starts = [i * stride for i in range(count)]
            return [(start, (starts[i + 1] if i + 1 < count else side) - start) for i, start in enumerate(starts)]

        return [Tile(r, c, top, left, height, width)
                for r, (top, height) in enumerate(spans(self.rows, self.stride_height, self.height))
                for c, (left, width) in enumerate(spans(self.cols, self.stride_width, self.width))]

    def grid_indices(self, tiles) -> tuple[np.ndarray, np.ndarray]:
        """Indices of ``tiles`` in the model's tile grid (outside 0 .. native-1 beyond the trained image)."""
        rows = np.array([t.row for t in tiles]) - self.row_offset
        cols = np.array([t.col for t in tiles]) - self.col_offset
        return rows, cols

    def inputs(self, tiles) -> dict:
        """The signature inputs of a batch of tiles, one row per tile."""
        return {name: INPUT_SOURCES[recipe["source"]](self, name, recipe, tiles) for name, recipe in self.recipes.items()}

    def batches(self, batch_size: int):
        tiles = self.tiles()
        for start in range(0, len(tiles), batch_size):
            yield tiles[start:start + batch_size]
