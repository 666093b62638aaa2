"""The serving description is a typed, versioned contract: what every export writes validates
against tfcoord.serving.SCHEMA, parses into a ServingDescription and writes back unchanged."""

import json

import jsonschema
import pytest

from export.saved_model import DESCRIPTION_ASSET
from export_cases import exported  # noqa: F401 (fixture)
from tfcoord.errors import UserError
from tfcoord.serving import FORMAT, SCHEMA, CanvasFieldRecipe, LatentRecipe, ServingDescription, TileCoordinatesRecipe


def stored_description(exported):
    return json.loads((exported.version_dir / "assets" / DESCRIPTION_ASSET).read_text())


def test_every_export_validates_against_the_schema_and_round_trips(exported):
    stored = stored_description(exported)
    jsonschema.validate(stored, SCHEMA)
    parsed = ServingDescription.from_json(stored)
    assert parsed.model_type == exported.case.model_type
    assert {"format": FORMAT, **parsed.to_json()} == stored


def test_tile_inputs_parse_into_typed_recipes(exported):
    parsed = ServingDescription.from_json(stored_description(exported))
    if parsed.tiling is None:
        pytest.skip(f"{parsed.model_type} draws whole images (no tile recipe)")
    recipes = parsed.tiling.inputs
    assert all(isinstance(r, (LatentRecipe, TileCoordinatesRecipe, CanvasFieldRecipe)) for r in recipes.values())
    assert any(isinstance(r, TileCoordinatesRecipe) for r in recipes.values())
    assert list(recipes) == list(stored_description(exported)["tiling"]["inputs"])  # latents are drawn in this order


BROKEN = [
    (lambda d: d.update(format="tfcoord-serving/0"), "format 'tfcoord-serving/0'"),
    (lambda d: d["tiling"].pop("anchor"), "lacks 'anchor'"),
    (lambda d: d["tiling"].update(crop="left"), "crop 'left'"),
    (lambda d: d["tiling"]["inputs"]["z"].update(source="webcam"), "source 'webcam'"),
    (lambda d: d["tiling"]["inputs"]["z"].pop("shape"), "lacks 'shape'"),
    (lambda d: d["tiling"]["inputs"]["z"].update(distribution="cauchy"), "'cauchy' distribution"),
]


@pytest.mark.parametrize("break_it, message", BROKEN, ids=[m for _, m in BROKEN])
def test_a_description_a_client_cannot_read_is_refused_by_the_parser_and_the_schema(break_it, message):
    good = {"format": FORMAT, "model_type": "cocogan", "paper": "", "signatures": {"generate_patch": {}},
            "output": {"name": "rgb", "range": [-1.0, 1.0]},
            "tiling": {"signature": "generate_patch", "tile_size": [8, 8], "native_tiles": [4, 4],
                       "anchor": ["center", "center"],
                       "inputs": {"z": {"source": "latent", "shape": [64], "distribution": "uniform", "low": -1.0,
                                        "high": 1.0},
                                  "micro_coords": {"source": "tile_coordinates", "system": "cocogan"}}}}
    jsonschema.validate(good, SCHEMA)
    ServingDescription.from_json(good)
    break_it(good)
    with pytest.raises(UserError, match=message):
        ServingDescription.from_json(good)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good, SCHEMA)
