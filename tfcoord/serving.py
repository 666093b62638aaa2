"""The serving description: the typed contract between a model and the clients that tile it.

Each model builds a :class:`ServingDescription` (``model.serving_description()`` returns its
JSON). The exporter stores it as ``assets/tfcoord_model.json``, answers it from the
``describe`` signature and writes it next to a ``.tflite`` file; the client
(:mod:`export.tiling`, :mod:`export.client`) parses it back with
:meth:`ServingDescription.from_json`. :data:`SCHEMA` is the JSON Schema of the format
:data:`FORMAT`; a change that old clients cannot read gets a new format number.

What a client needs to draw tile (i, j) of a canvas is :class:`Tiling`: the per-tile
signature, the tile size and stride, how the trained tile grid sits on a larger canvas, and
one recipe per signature input: :class:`LatentRecipe` (one value per image),
:class:`TileCoordinatesRecipe` (a function of the tile's grid index, named by ``system``;
the models register their systems in their specs) or :class:`CanvasFieldRecipe` (windows
of a position-seeded field shared by the canvas). Keys a model adds for its own readers
(``patch_size``, ``alphabet``, ``layer_sizes``, ...) are kept as ``extra``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

from tfcoord.errors import UserError
from tfcoord.generation.tiles import CROPS

FORMAT = "tfcoord-serving/1"
SUPPORTED_FORMATS = (FORMAT,)
ANCHORS = ("center", "start")
DISTRIBUTIONS = ("normal", "uniform")


def _pair(value, what: str) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise UserError(f"{what} must be a pair [rows, columns], got {value!r}; re-export the model")
    return tuple(value)


def _extra(data: Mapping, known) -> dict:
    return {key: value for key, value in data.items() if key not in known}


@dataclasses.dataclass(frozen=True)
class LatentRecipe:
    """One value per image, the same for every tile: drawn in the order listed from
    ``numpy.random.default_rng(seed)``, or with ``seed_path`` from its own generator (``generator``
    ``splitmix64-boxmuller/1``: the portable field of :mod:`tfcoord.generation.fields`, row 0)."""

    source: ClassVar[str] = "latent"
    shape: tuple[int, ...]
    distribution: str = "normal"
    low: float | None = None
    high: float | None = None
    seed_path: tuple[int, ...] | None = None
    generator: str | None = None


@dataclasses.dataclass(frozen=True)
class TileCoordinatesRecipe:
    """A function of the tile's grid index: the coordinate ``system`` a model registers in its spec;
    ``parameters`` are that system's own keys (grid sizes, coordinate system, ...)."""

    source: ClassVar[str] = "tile_coordinates"
    system: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CanvasFieldRecipe:
    """A ``window`` x ``window`` x ``channels`` window, ``stride`` field positions per tile, of a
    standard-normal field shared by the whole canvas (``units_per_latent`` field positions per
    latent column of a panorama's period; ``field_tile``: the tile of the legacy generator)."""

    source: ClassVar[str] = "canvas_field"
    channels: int
    window: int
    stride: int
    seed_path: tuple[int, ...]
    field_tile: int
    units_per_latent: int = 1
    generator: str | None = None
    distribution: str = "normal"


RECIPES = {recipe.source: recipe for recipe in (LatentRecipe, TileCoordinatesRecipe, CanvasFieldRecipe)}
InputRecipe = LatentRecipe | TileCoordinatesRecipe | CanvasFieldRecipe


@dataclasses.dataclass(frozen=True)
class Tiling:
    """How tile (i, j) of a canvas is drawn (see :mod:`export.tiling` for the geometry)."""

    signature: str
    tile_size: tuple[int, int]
    native_tiles: tuple[int, int]
    anchor: tuple[str, str]
    inputs: Mapping[str, InputRecipe]
    stride: tuple[int, int] | None = None
    crop: str = "end"
    panorama_pixels_per_latent: int | None = None
    recipe: str = ""  # the same, as prose, for clients in other languages
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ServingDescription:
    """What a model's export says of itself (see the module docstring).

    ``signatures``: signature name -> its keys (``doc``; the exporter adds the traced
    ``inputs``/``outputs`` shapes); ``output``: the image output, ``{"name": "rgb", "range": [-1, 1]}``.
    """

    model_type: str
    paper: str
    signatures: Mapping[str, Mapping[str, Any]]
    output: Mapping[str, Any]
    tiling: Tiling | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    format: str = FORMAT

    def to_json(self) -> dict:
        data = {"model_type": self.model_type, "paper": self.paper, **self.extra,
                "signatures": {name: dict(keys) for name, keys in self.signatures.items()},
                "output": dict(self.output)}
        if self.tiling is not None:
            data["tiling"] = _tiling_json(self.tiling)
        if self.format != FORMAT:
            data["format"] = self.format
        return data

    @classmethod
    def from_json(cls, data) -> ServingDescription:
        """Parse (and check) a description; a UserError names what a client cannot read."""
        if not isinstance(data, dict) or data.get("format") not in SUPPORTED_FORMATS:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise UserError(f"the model description has format {found!r}; this client reads "
                            f"{', '.join(SUPPORTED_FORMATS)} (re-export the model with this tfcoord version)")
        model = data.get("model_type", "this")
        tiling = data.get("tiling")
        return cls(model_type=data.get("model_type", ""), paper=data.get("paper", ""), signatures=data.get("signatures", {}),
                   output=data.get("output", {}), format=data["format"],
                   tiling=None if tiling is None else _parse_tiling(tiling, model),
                   extra=_extra(data, ("model_type", "paper", "signatures", "output", "tiling", "format")))


def _recipe_json(recipe: InputRecipe) -> dict:
    if isinstance(recipe, TileCoordinatesRecipe):
        return {"source": recipe.source, "system": recipe.system, **recipe.parameters}
    fields = {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe)}
    return {"source": recipe.source, **{key: list(value) if isinstance(value, tuple) else value
                                         for key, value in fields.items() if value is not None}}


def _tiling_json(tiling: Tiling) -> dict:
    data = {"signature": tiling.signature, "tile_size": list(tiling.tile_size)}
    if tiling.stride is not None:
        data["stride"] = list(tiling.stride)
    data.update({"native_tiles": list(tiling.native_tiles), "anchor": list(tiling.anchor)})
    if tiling.crop != "end":
        data["crop"] = tiling.crop
    if tiling.panorama_pixels_per_latent is not None:
        data["panorama"] = {"pixels_per_latent": tiling.panorama_pixels_per_latent}
    data.update(tiling.extra)
    data["inputs"] = {name: _recipe_json(recipe) for name, recipe in tiling.inputs.items()}
    if tiling.recipe:
        data["recipe"] = tiling.recipe
    return data


def _parse_recipe(name: str, data, model: str) -> InputRecipe:
    source = data.get("source") if isinstance(data, dict) else None
    if source not in RECIPES:
        raise UserError(f"input '{name}' of the {model} model has source {source!r}; this client builds "
                        f"{', '.join(sorted(RECIPES))} inputs (update tfcoord)")
    if source == "tile_coordinates":
        if "system" not in data:
            raise UserError(f"input '{name}' of the {model} model lacks 'system' in its tiling description "
                            "(exported by an older tfcoord); re-export the model")
        return TileCoordinatesRecipe(data["system"], _extra(data, ("source", "system")))
    fields = {f.name: f for f in dataclasses.fields(RECIPES[source])}
    missing = [key for key, f in fields.items()
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and key not in data]
    if missing:
        raise UserError(f"input '{name}' of the {model} model lacks {', '.join(repr(k) for k in missing)} in its "
                        "tiling description (exported by an older tfcoord); re-export the model")
    distribution = data.get("distribution", "normal")
    if distribution not in DISTRIBUTIONS or (source == "canvas_field" and distribution != "normal"):
        raise UserError(f"input '{name}' of the {model} model is drawn from a {distribution!r} distribution; this "
                        "client draws normal latents and fields and uniform latents (update tfcoord)")
    values = {key: tuple(data[key]) if isinstance(data[key], list) else data[key] for key in fields if key in data}
    return RECIPES[source](**values)


def _parse_tiling(data, model: str) -> Tiling:
    if not isinstance(data, dict):
        raise UserError(f"the {model} model's description has no 'tiling' section: it cannot be rendered tile "
                        "by tile by this client")
    for key in ("signature", "tile_size", "native_tiles", "anchor", "inputs"):
        if key not in data:
            raise UserError(f"the {model} model's tiling description lacks '{key}'; re-export the model")
    if data.get("crop", "end") not in CROPS:
        raise UserError(f"the {model} model's tiling description asks for crop {data['crop']!r}; this client "
                        f"crops {', '.join(CROPS)} (update tfcoord)")
    anchor = _pair(data["anchor"], f"the {model} model's tiling anchor")
    if any(a not in ANCHORS for a in anchor):
        raise UserError(f"the {model} model's tiling anchor {list(anchor)} is not one of {', '.join(ANCHORS)} per "
                        "axis (update tfcoord)")
    panorama = data.get("panorama")
    return Tiling(
        signature=data["signature"], tile_size=_pair(data["tile_size"], "tile_size"),
        native_tiles=_pair(data["native_tiles"], "native_tiles"), anchor=anchor,
        inputs={name: _parse_recipe(name, recipe, model) for name, recipe in data["inputs"].items()},
        stride=None if data.get("stride") is None else _pair(data["stride"], "stride"),
        crop=data.get("crop", "end"),
        panorama_pixels_per_latent=int(panorama["pixels_per_latent"]) if isinstance(panorama, dict) else None,
        recipe=data.get("recipe", ""),
        extra=_extra(data, ("signature", "tile_size", "stride", "native_tiles", "anchor", "crop", "panorama",
                            "inputs", "recipe")))


_PAIR = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}
_SEED_PATH = {"type": "array", "items": {"type": "integer", "minimum": 0}}
# The JSON Schema of FORMAT (what the exporter writes: the model's description plus the traced shapes).
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://tfcoord.dev/schemas/tfcoord-serving-1.json",
    "title": FORMAT,
    "type": "object",
    "required": ["format", "model_type", "signatures", "output"],
    "properties": {
        "format": {"const": FORMAT},
        "model_type": {"type": "string"},
        "paper": {"type": "string"},
        "signatures": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "doc": {"type": "string"}, "inputs": {"type": "object"}, "outputs": {"type": "object"}}}},
        "output": {"type": "object", "properties": {"name": {"type": "string"}, "range": {
            "type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}}},
        "tiling": {
            "type": "object",
            "required": ["signature", "tile_size", "native_tiles", "anchor", "inputs"],
            "properties": {
                "signature": {"type": "string"},
                "tile_size": _PAIR, "stride": _PAIR, "native_tiles": _PAIR,
                "anchor": {"type": "array", "items": {"enum": list(ANCHORS)}, "minItems": 2, "maxItems": 2},
                "crop": {"enum": list(CROPS)},
                "panorama": {"type": "object", "required": ["pixels_per_latent"],
                             "properties": {"pixels_per_latent": {"type": "integer", "minimum": 1}}},
                "recipe": {"type": "string"},
                "inputs": {"type": "object", "additionalProperties": {"oneOf": [
                    {"type": "object", "required": ["source", "shape"], "properties": {
                        "source": {"const": "latent"},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                        "distribution": {"enum": list(DISTRIBUTIONS)}, "low": {"type": "number"},
                        "high": {"type": "number"}, "seed_path": _SEED_PATH, "generator": {"type": "string"}}},
                    {"type": "object", "required": ["source", "system"], "properties": {
                        "source": {"const": "tile_coordinates"}, "system": {"type": "string"}}},
                    {"type": "object",
                     "required": ["source", "channels", "window", "stride", "seed_path", "field_tile"],
                     "properties": {
                         "source": {"const": "canvas_field"}, "distribution": {"const": "normal"},
                         "channels": {"type": "integer", "minimum": 1}, "window": {"type": "integer", "minimum": 1},
                         "stride": {"type": "integer", "minimum": 1}, "seed_path": _SEED_PATH,
                         "field_tile": {"type": "integer", "minimum": 1},
                         "units_per_latent": {"type": "integer", "minimum": 1}, "generator": {"type": "string"}}},
                ]}},
            },
        },
    },
}
