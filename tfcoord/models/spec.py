"""The typed spec each model registers in its package's ``__init__.py``.

A spec is what the rest of tfcoord may know of a model without importing TensorFlow:
its name (``--model NAME``, ``configs/NAME/``), its config sections and default preset,
what it can do (:class:`Capability`), and lazy references (:class:`Ref`) to its Keras
wrapper, its ``generate`` options, its converter of official checkpoints, the tile
coordinate systems its serving description names and the exporter's hooks for inputs it
cannot make from a description alone. The CLIs, the canvas engine, the exporter and the
client ask the spec; none of them branches on a model's name.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from typing import Any, Mapping


class Capability(enum.Enum):
    """What a model can do beyond training (the interfaces its wrapper implements)."""

    IMAGES = "images"  # sample_images(seed, num): sample grids in the log, FID/KID/precision-recall
    CANVAS = "canvas"  # canvas_renderer(...): generate --width/--height, Run.render, the canvas engine
    TILES = "tiles"  # its serving description has a tile recipe: export.client draws canvases from the export
    PATCHES = "patches"  # trained on patches: patch_size, and sample_images_at(...) for ScaleInv FID


@dataclasses.dataclass(frozen=True)
class Ref:
    """A lazy reference to ``module`` (or ``module.attribute``): importing a spec imports no TensorFlow."""

    module: str
    attribute: str | None = None

    def load(self) -> Any:
        module = importlib.import_module(self.module)
        return module if self.attribute is None else getattr(module, self.attribute)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Args:
        name: the ``--model`` name and the ``configs/`` folder of its presets.
        summary: one line for listings (paper, year).
        sections: the model's own config sections (``{"model": ..., "loss": ..., "optim": ...}``).
        default_preset: what ``python -m tfcoord.train --model NAME`` uses: small enough for a CPU.
        model: the wrapper class (:class:`tfcoord.models.base.CoordinateGan` or a sibling base).
        generate_options: the module with ``add_arguments(parser)``, ``check_arguments(args)``,
            ``generate(model, args, out)`` for ``python -m tfcoord.generate``.
        converter: the module converting official checkpoints (``python -m tfcoord.convert``), if any.
        tile_coordinates: tile coordinate systems its serving descriptions name: system name ->
            ``fn(recipe, (tile height, tile width), rows, cols, plan) -> (n, ...) float32``.
        tile_recipe_keys: recipe keys each of those systems needs (checked before the first tile).
        example_inputs: ``fn(model, description, signature, batch, seed) -> {input: array} | None``, valid inputs of
            a signature whose inputs must fit together (windows of one canvas, boxes with ymin < ymax), for tests,
            benchmarks and the server's warm-up; None: uniform [-1, 1] inputs of the described shapes do.
        calibration_inputs: ``fn(model, batch, rows, start) -> (input dicts, a line saying what they are)``: int8
            calibration rows conditioned as the run was trained, used before the random ones (``export.tflite``).
        int8_float_inputs: signature inputs whose geometry (the ops computing only from them) int8 export keeps
            in float32, where 8-bit positions are too coarse.
        capabilities: what it can do beyond training.
    """

    name: str
    summary: str
    sections: Mapping[str, type]
    default_preset: str
    model: Ref
    generate_options: Ref
    converter: Ref | None = None
    tile_coordinates: Mapping[str, Ref] = dataclasses.field(default_factory=dict)
    tile_recipe_keys: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    example_inputs: Ref | None = None
    calibration_inputs: Ref | None = None
    int8_float_inputs: tuple[str, ...] = ()
    capabilities: frozenset[Capability] = frozenset()

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def model_class(self) -> type:
        return self.model.load()

    def presets(self) -> list[str]:
        from tfcoord.config import list_presets

        return list_presets(self.name)
