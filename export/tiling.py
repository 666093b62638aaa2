"""The tile plan of a canvas, built from a model's serving description alone.

A description (``assets/tfcoord_model.json``, the ``describe`` signature, or the JSON
next to a ``.tflite`` file; see :meth:`tfcoord.models.base.CoordinateGan.serving_description`)
says which signature renders one tile, the tile size, and how to build each input of tile
(i, j). :class:`TilePlan` covers a W x H canvas with the shared planner's
:class:`~tfcoord.generation.tiles.TileGrid`: tiles at multiples of the stride
(``tiling.stride``, default the tile size); it places the trained tile grid on it by the
description's ``anchor``: ``center`` extends the grid equally on both sides (grid index
``i - (rows - native_rows) // 2``), ``start`` keeps grid index 0 at the top/left edge.
Each tile contributes the ``stride`` pixels from its top-left corner (the last row and
column: everything to the end of the tile; the rest of an overlapping tile is covered by
its neighbours, which agree there). ``tiling.crop`` says where a canvas that the tiles
do not cover exactly is cut from: ``end`` (default; the last row and column of tiles are
cropped) or ``center`` (the tiles cover the next reachable size, ``tile + stride * (n - 1)``
per axis, and the image is its centre, from pixel ``(covered - wanted) // 2``).

Inputs are built by the builder registered for their ``source`` in :data:`INPUT_SOURCES`:

* ``latent``: one value per image, the same for every tile; drawn in the order listed from
  ``numpy.random.default_rng(seed)``, or, with ``seed_path`` [k, ...], on its own from
  ``numpy.random.default_rng([seed, k, ...])``, or, with ``generator``
  ``splitmix64-boxmuller/1`` (InfinityGAN's z_g), as row 0 of that portable field (below;
  :func:`draw_latents`);
* ``tile_coordinates``: a function of the tile's grid index, which the model that names the
  recipe's ``system`` registers in its spec (:attr:`tfcoord.models.spec.ModelSpec.tile_coordinates`;
  :data:`COORDINATE_SYSTEMS`);
* ``canvas_field``: a ``window`` x ``window`` x ``channels`` window, at ``stride`` positions
  per tile, of a standard-normal field shared by the whole canvas (InfinityGAN's local
  latent and per-layer noise), so that overlapping tiles get the same values where they
  overlap. The field is :class:`tfcoord.generation.fields.PositionalField`. Its
  ``generator`` names the recipe: ``splitmix64-boxmuller/1`` (the portable one,
  :mod:`tfcoord.generation.fields`: channel c at (y, x) is a 64-bit hash of
  ``[seed, *seed_path, y, x, c]`` turned into a normal by Box-Muller, integer operations any
  language reimplements), or ``numpy-default-rng`` (the legacy one, also for descriptions
  without the key): position (y, x) holds ``default_rng([seed, *seed_path, y // T, x // T])
  .standard_normal((T, T, channels), float32)[y % T, x % T]`` (T = ``field_tile``). Values are
  computed tile by tile when a window needs it (an LRU cache holds the tiles of a few rows of
  tiles), never as a whole canvas. With these, the client draws exactly the canvas of tfcoord's
  ``generate`` for the same seed (``seeding="legacy"`` draws every such input with the legacy
  recipe, as ``generate --seeding legacy``).

``panorama=True`` (descriptions with a ``tiling.panorama`` section, InfinityGAN) renders a
360 degree canvas: the width must be a multiple of ``pixels_per_latent``; coordinates and
canvas fields are periodic with the width (``units_per_latent`` field columns per latent
column), and the image starts at canvas column 0.

A model whose inputs need another source registers it here; another coordinate system, in its spec.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from tfcoord.errors import UserError
from tfcoord.generation.fields import GENERATORS, SEEDING_OF_GENERATOR, PositionalField, check_seeding, field_window
from tfcoord.generation.tiles import Tile, TileGrid, panorama_period
from tfcoord.models import SPECS
from tfcoord.serving import ServingDescription, TileCoordinatesRecipe

# system name -> the registered models' Ref to fn(recipe, (tile height, tile width), rows, cols, plan) -> (n, ...)
# float32 for the grid indices rows, cols (each of shape (n,)) of n tiles of the TilePlan ``plan``; imported when
# a tile needs it.
COORDINATE_SYSTEMS = {system: ref for spec in SPECS.values() for system, ref in spec.tile_coordinates.items()}
# Recipe keys each system needs (checked before the first tile).
SYSTEM_KEYS = {system: keys for spec in SPECS.values() for system, keys in spec.tile_recipe_keys.items()}


def latent_input(plan, name, recipe, tiles):
    """The image's latent (drawn once per image, see :func:`draw_latents`), repeated for every tile."""
    return np.repeat(plan.latents[name], len(tiles), axis=0)


def tile_coordinates_input(plan, name, recipe, tiles):
    rows, cols = plan.grid_indices(tiles)
    return COORDINATE_SYSTEMS[recipe["system"]].load()(recipe, (plan.tile_height, plan.tile_width), rows, cols, plan)


def canvas_field(plan, name, recipe):
    """The plan's field for input ``name`` (made on first use): the library's :class:`PositionalField`, so
    values match ``generate``."""
    if name not in plan.fields:
        tile, window, stride = int(recipe["field_tile"]), int(recipe["window"]), int(recipe["stride"])
        unit = int(recipe.get("units_per_latent", 1))
        period = None if plan.period_latents is None else unit * plan.period_latents
        # Keep the field tiles of a few rows of tiles across the canvas: each is drawn about once.
        across = window + stride * (plan.cols - 1) if period is None else min(period, window + stride * (plan.cols - 1))
        cache = max(16, (math.ceil(window / tile) + 2) * (across // tile + 2))
        plan.fields[name] = PositionalField(plan.seed, tuple(int(k) for k in recipe["seed_path"]),
                                            int(recipe["channels"]), tile=tile, period=period, cache_tiles=cache,
                                            seeding=input_seeding(recipe, plan.seeding))
    return plan.fields[name]


def canvas_field_input(plan, name, recipe, tiles):
    """Windows of a canvas-wide standard-normal field, ``stride`` positions per tile (grid index)."""
    field, window, stride = canvas_field(plan, name, recipe), int(recipe["window"]), int(recipe["stride"])
    rows, cols = plan.grid_indices(tiles)
    if len(tiles) and (rows.min() < 0 or cols.min() < 0):
        raise UserError(f"input '{name}' is a canvas field, which starts at tile 0: its description must anchor "
                        "the tile grid at the start")
    return np.stack([field.window(int(r) * stride, int(c) * stride, window, window)
                     for r, c in zip(rows, cols)]).astype("float32")


def input_seeding(recipe: dict, seeding: str | None = None) -> str:
    """The recipe a position-seeded input (one with a ``seed_path``) is drawn with: ``seeding`` if given
    (``legacy``: the images of seeds drawn before the portable recipe), else its description's ``generator``
    (none, in descriptions exported before that recipe: NumPy's, ``legacy``)."""
    if seeding is not None and "seed_path" in recipe:
        return seeding
    return SEEDING_OF_GENERATOR[recipe.get("generator", GENERATORS["legacy"])]


# source -> fn(plan, input name, recipe, tiles) -> (len(tiles), ...) array.
INPUT_SOURCES = {"latent": latent_input, "tile_coordinates": tile_coordinates_input,
                 "canvas_field": canvas_field_input}


def check_description(description) -> dict:
    """The description if this client can tile with it, else a UserError naming what is missing: it must
    parse (:meth:`tfcoord.serving.ServingDescription.from_json`), have a tile recipe, and name only the
    coordinate systems and generators this client knows."""
    parsed = ServingDescription.from_json(description)
    model = parsed.model_type or "this"
    if parsed.tiling is None:
        raise UserError(f"the {model} model's description has no 'tiling' section: it cannot be rendered tile "
                        "by tile by this client")
    for name, recipe in parsed.tiling.inputs.items():
        if isinstance(recipe, TileCoordinatesRecipe):
            if recipe.system not in COORDINATE_SYSTEMS:
                raise UserError(f"input '{name}' of the {model} model uses the coordinate system {recipe.system!r}, "
                                f"unknown to this client (known: {', '.join(sorted(COORDINATE_SYSTEMS))}; update "
                                "tfcoord)")
            missing = [key for key in SYSTEM_KEYS.get(recipe.system, ()) if key not in recipe.parameters]
            if missing:
                raise UserError(f"input '{name}' of the {model} model lacks {', '.join(repr(k) for k in missing)} "
                                "in its tiling description (exported by an older tfcoord); re-export the model")
        elif recipe.generator is not None and recipe.generator not in SEEDING_OF_GENERATOR:
            raise UserError(f"input '{name}' of the {model} model is drawn by the generator {recipe.generator!r}, "
                            f"unknown to this client (known: {', '.join(SEEDING_OF_GENERATOR)}; update tfcoord)")
    return description


def draw_latents(recipes: dict, seed: int, seeding: str | None = None) -> dict:
    """One value per latent input, drawn in the order listed from ``numpy.random.default_rng(seed)``
    (an input with ``seed_path`` [k, ...] from its own ``numpy.random.default_rng([seed, k, ...])``; one with
    the portable ``generator`` as row 0, column 0 of its field, unless ``seeding`` is ``legacy``)."""
    shared = np.random.default_rng(seed)
    latents = {}
    for name, recipe in recipes.items():
        if recipe["source"] != "latent":
            continue
        if "seed_path" in recipe and input_seeding(recipe, seeding) == "portable":
            (dim,) = recipe["shape"]
            latents[name] = field_window(seed, recipe["seed_path"], np.zeros(1, np.int64), np.zeros(1, np.int64),
                                         int(dim))[0]
            continue
        rng = np.random.default_rng([seed, *recipe["seed_path"]]) if "seed_path" in recipe else shared
        shape = (1, *recipe["shape"])
        if recipe.get("distribution", "normal") == "uniform":
            latents[name] = rng.uniform(recipe["low"], recipe["high"], shape).astype("float32")
        else:
            latents[name] = rng.standard_normal(shape).astype("float32")
    return latents


class TilePlan:
    """Which tiles a W x H canvas needs and the signature inputs of any batch of them.

    ``panorama``: a 360 degree canvas, periodic with the width (descriptions with a
    ``tiling.panorama`` section). :meth:`inputs` is not thread-safe (the canvas fields cache
    their tiles): call it from one thread, as :func:`export.client.render_bands` does.
    """

    def __init__(self, description: dict, width: int, height: int, seed: int = 0, signature: str | None = None,
                 panorama: bool = False, seeding: str | None = None):
        self.description = check_description(description)
        tiling = description["tiling"]
        self.signature = signature or tiling["signature"]
        self.width, self.height, self.seed = width, height, seed
        # Position-seeded inputs: None = as the description says; "portable" or "legacy" (NumPy's generators,
        # the images of seeds drawn before the portable recipe).
        self.seeding = None if seeding is None else check_seeding(seeding)
        self.panorama = bool(panorama)
        self.period_latents = self._panorama_period(tiling) if self.panorama else None
        self.grid = TileGrid(height, width, tiling["tile_size"], tiling.get("stride"), tiling.get("crop", "end"),
                             self.panorama)
        self.tile_height, self.tile_width = self.grid.tile
        self.rows, self.cols = self.grid.rows, self.grid.cols
        # Top-left pixel of the image inside the pixels the tiles cover (centre crop; a panorama starts at column 0).
        self.crop_top, self.crop_left = self.grid.offset
        native_rows, native_cols = tiling["native_tiles"]
        anchor_row, anchor_col = tiling["anchor"]
        self.row_offset = (self.rows - native_rows) // 2 if anchor_row == "center" else 0
        self.col_offset = (self.cols - native_cols) // 2 if anchor_col == "center" else 0
        self.recipes = tiling["inputs"]
        self.latents = draw_latents(self.recipes, seed, seeding)
        self.fields = {}  # canvas_field inputs: name -> PositionalField, made on first use

    def _panorama_period(self, tiling) -> int:
        """Horizontal period of a panorama in latent columns (the width in latents)."""
        model = self.description.get("model_type", "this")
        if not isinstance(tiling.get("panorama"), dict):
            raise UserError(f"the {model} model cannot render a 360 degree panorama tile by tile (its description "
                            "has no 'panorama' section); leave out --panorama")
        return panorama_period(self.width, int(tiling["panorama"]["pixels_per_latent"]))

    @property
    def num_tiles(self) -> int:
        return self.grid.num_tiles

    def tiles(self) -> list[Tile]:
        """Every tile, row-major (a list: for huge canvases iterate :meth:`iter_tiles` instead)."""
        return list(self.iter_tiles())

    def iter_tiles(self):
        """Every tile, row-major (:meth:`~tfcoord.generation.tiles.TileGrid.iter_tiles`)."""
        return self.grid.iter_tiles()

    def grid_indices(self, tiles) -> tuple[np.ndarray, np.ndarray]:
        """Indices of ``tiles`` in the model's tile grid (outside 0 .. native-1 beyond the trained image)."""
        return (np.array([t.row for t in tiles]) - self.row_offset,
                np.array([t.col for t in tiles]) - self.col_offset)

    def inputs(self, tiles) -> dict:
        """The signature inputs of a batch of tiles, one row per tile."""
        return {name: INPUT_SOURCES[recipe["source"]](self, name, recipe, tiles) for name, recipe in self.recipes.items()}

    def batches(self, batch_size: int):
        """Lists of ``batch_size`` tiles (the last may be shorter), row-major, made as they are asked for."""
        tiles = self.iter_tiles()
        while batch := list(itertools.islice(tiles, batch_size)):
            yield batch
