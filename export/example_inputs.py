"""Valid inputs for any exported signature, from its description.

The exporter's warmup requests (:mod:`export.server_files`), the stand-in servers' tests and the
benchmarks all need requests a signature accepts: boxes with ymin < ymax, windows cut from one
canvas, and so on; a model whose inputs must fit together makes them with its spec's
``example_inputs`` hook. Production code, so the exporter does not import test support.
"""

from __future__ import annotations

import numpy as np

from tfcoord.models import SPECS


def patch_size(description: dict) -> int:
    """The side of one ``generate_patch`` output: static in the signature, else the tile size."""
    side = description["signatures"]["generate_patch"]["outputs"]["rgb"]["shape"][1]
    return side if side > 0 else description["tiling"]["tile_size"][0]


def example_inputs(model, description: dict, signature: str, batch: int, seed: int = 0) -> dict:
    """Inputs of a signature for ``batch`` rows (tests, benchmarks).

    The model's :attr:`~tfcoord.models.spec.ModelSpec.example_inputs` hook where it has one and makes
    this signature's; else uniform [-1, 1] of the described shapes, dynamic spatial dims (axes 1, 2 of
    NHWC inputs) at the tile size.
    """
    registered = SPECS.get(description.get("model_type"))
    if registered is not None and registered.example_inputs is not None:
        inputs = registered.example_inputs.load()(model, description, signature, batch, seed)
        if inputs is not None:
            return inputs
    rng = np.random.default_rng(seed)
    tile = description.get("tiling", {}).get("tile_size", [-1, -1])
    inputs = {}
    for name, spec in description["signatures"][signature]["inputs"].items():
        shape = list(spec["shape"])
        if shape[0] == -1:
            shape[0] = batch
        if len(shape) == 4:
            shape[1:3] = [tile[0] if shape[1] == -1 else shape[1], tile[1] if shape[2] == -1 else shape[2]]
        if -1 in shape:
            raise ValueError(f"{signature}.{name} {shape}: no size for its dynamic dims")
        inputs[name] = rng.uniform(-1.0, 1.0, shape).astype(spec["dtype"])
    return inputs
