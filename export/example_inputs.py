"""Valid inputs for any exported signature, from its description.

The exporter's warmup requests (:mod:`export.server_files`), the stand-in servers' tests and the
benchmarks all need requests a signature accepts: boxes with ymin < ymax, InfinityGAN windows cut
from one canvas, and so on. Production code, so the exporter does not import test support.
"""

from __future__ import annotations

import numpy as np


def patch_size(description: dict) -> int:
    """The side of one ``generate_patch`` output: static in the signature, else the tile size."""
    side = description["signatures"]["generate_patch"]["outputs"]["rgb"]["shape"][1]
    return side if side > 0 else description["tiling"]["tile_size"][0]


def example_inputs(model, description: dict, signature: str, batch: int, seed: int = 0) -> dict:
    """Inputs of a signature for ``batch`` rows (tests, benchmarks).

    Uniform [-1, 1] of the described shapes, dynamic spatial dims (axes 1, 2 of NHWC
    inputs) at the tile size; models whose inputs must fit together (InfinityGAN's
    windows) get windows of a real canvas.
    """
    if description.get("model_type") == "infinitygan" and signature != "map_latent":
        return _infinitygan_windows(model, signature, batch, seed)
    if description.get("model_type") == "gawwn":
        return _gawwn_conditions(description, signature, batch, seed)
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


def _gawwn_conditions(description, signature, batch, seed):
    """Valid boxes (ymin < ymax, xmin < xmax in [0, 1]), keypoints ((x, y) in [0, 1], visibility 0/1), tokens."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, spec in description["signatures"][signature]["inputs"].items():
        shape = [batch if d == -1 else d for d in spec["shape"]]
        if name == "box":
            corners = np.sort(rng.uniform(0.0, 1.0, (batch, 2, 2)), axis=1)  # (min, max) of (y, x)
            inputs[name] = corners.reshape(batch, 4).astype("float32")
        elif name == "keypoints":
            inputs[name] = np.concatenate([rng.uniform(0.0, 1.0, shape[:-1] + [2]),
                                           rng.integers(0, 2, shape[:-1] + [1])], axis=-1).astype("float32")
        elif name == "tokens":
            inputs[name] = rng.integers(0, len(description["alphabet"]) + 1, shape).astype("int32")
        else:  # z, text_embedding
            inputs[name] = rng.standard_normal(shape).astype(spec["dtype"])
    return inputs


def _infinitygan_windows(model, signature, batch, seed):
    """One canvas row of ``batch`` patches: the window sizes the patch signatures require."""
    from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan

    geometry = model.geometry
    plan = CanvasPlan(geometry, geometry.canvas_pixels(1), geometry.canvas_pixels(batch))
    latents = CanvasLatents(model, plan, seed, noise=signature != "generate_patch_nonoise")
    patches = [latents.patch(0, col) for col in range(batch)]
    inputs = {"global_latent": model.global_latents(seed, batch),
              "local_latent": np.stack([p["local_latent"] for p in patches]),
              "coords": np.stack([p["coords"] for p in patches])}
    for i in range(len(patches[0].get("noises", []))):
        noise = np.stack([p["noises"][i] for p in patches])
        inputs[f"noise_{i}"] = noise.reshape(*noise.shape[:3], 1)
    return {name: value.astype("float32") for name, value in inputs.items()}
