"""Generators on another Keras backend: the cases shared by tests/test_jax_backend.py and its worker.

Layers and generators use ``keras.ops`` only (style.md), so the same model code runs under
Keras's JAX backend. The test builds every model's generator networks under TensorFlow, saves
their weights (keyed by variable path) and outputs, then runs

    KERAS_BACKEND=jax python tests/backend_parity.py FOLDER MODEL [MODEL ...]

which builds the same networks with ``model.build_networks()``, loads the weights by path and
writes the outputs of ``jax.jit(network.stateless_call)`` on the same inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

MODELS = ("cocogan", "cips", "infinitygan", "gawwn")
BATCH = 2


def build_model(model_type: str):
    import keras

    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    config = load_config(model_type, section_classes(model_type), preset="tiny")
    keras.utils.set_random_seed(0)
    model = model_class(model_type)(config)
    model.build_networks()
    return model


def _gawwn_inputs(network, rng) -> dict:
    inputs = {}
    for name, shape in network.input_specs().items():
        shape = (BATCH,) + tuple(shape)
        if name == "box":  # (ymin, xmin, ymax, xmax) with min < max
            inputs["box"] = np.sort(rng.uniform(0, 1, (BATCH, 2, 2)), axis=1).reshape(BATCH, 4)
        elif name == "keypoints":  # (x, y, visible)
            inputs["keypoints"] = np.concatenate([rng.uniform(0, 1, shape[:-1] + (2,)),
                                                  rng.integers(0, 2, shape[:-1] + (1,))], -1)
        else:
            inputs[name] = rng.standard_normal(shape)
    return inputs


def cases(model_type: str, model) -> dict:
    """``{name: (network, inputs, call)}``: ``call(inputs) -> [positional arguments]`` of the network.

    The inputs are float32 numpy arrays from a fixed seed and the networks' shapes, so both
    backends draw the same ones.
    """
    rng = np.random.default_rng(1234)
    cfg = model.config.model
    if model_type == "cocogan":
        g = model.generator
        inputs = {"z": rng.uniform(-1, 1, (BATCH, cfg.z_dim)), "micro_coords": rng.uniform(-1, 1, (BATCH, g.coord_dim))}
        found = {"generator": (g, inputs, lambda x: [[x["z"], x["micro_coords"]]])}
    elif model_type == "cips":
        g, side = model.generator_ema, cfg.size
        inputs = {"z": rng.standard_normal((BATCH, cfg.style_dim)),
                  "coords": rng.uniform(-1, 1, (BATCH, side, side, g.coord_dim)),
                  "noise": rng.standard_normal((BATCH, side, side, g.num_noise_layers))}
        found = {"generator_ema": (g, inputs, lambda x: [x["z"], x["coords"], x["noise"]])}
    elif model_type == "infinitygan":
        g, geometry = model.generator_ema, model.geometry
        window, sizes = geometry.window, geometry.conv_output_sizes()
        inputs = {"global_latent": rng.standard_normal((BATCH, cfg.global_latent_dim)),
                  "local_latent": rng.standard_normal((BATCH, window, window, cfg.local_latent_dim)),
                  "coords": rng.uniform(-1, 1, (BATCH, window, window, g.coord_dim)),
                  **{f"noise_{i}": rng.standard_normal((BATCH, s, s, 1)) for i, s in enumerate(sizes)}}
        found = {"generator_ema": (g, inputs, lambda x: [x["global_latent"], x["local_latent"], x["coords"],
                                                         [x[f"noise_{i}"] for i in range(len(sizes))]])}
    elif model_type == "gawwn":
        found = {}
        for name in ("generator", "keypoint_completer"):
            network = getattr(model, name, None)
            if network is not None:
                names = list(network.input_specs())
                found[name] = (network, _gawwn_inputs(network, rng), lambda x, names=names: [[x[k] for k in names]])
    else:
        raise ValueError(f"unknown model {model_type!r}")
    return {name: (network, {k: np.asarray(v, "float32") for k, v in inputs.items()}, call)
            for name, (network, inputs, call) in found.items()}


def save_weights(network, path) -> None:
    np.savez(path, **{v.path: np.asarray(v.numpy()) for v in network.weights})


def load_weights(network, path) -> None:
    saved = np.load(path)
    variables = {v.path: v for v in network.weights}
    if set(variables) != set(saved.files):
        raise AssertionError(f"{network.name}: variable paths differ between backends: "
                             f"{sorted(set(variables) ^ set(saved.files))[:5]}")
    for path_, variable in variables.items():
        variable.assign(saved[path_])


def jax_outputs(folder: Path, model_type: str) -> None:
    import jax
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    model = build_model(model_type)
    outputs = {}
    for name, (network, inputs, call) in cases(model_type, model).items():
        load_weights(network, folder / f"{model_type}.{name}.weights.npz")
        trainable = [v.value for v in network.trainable_variables]
        non_trainable = [v.value for v in network.non_trainable_variables]
        forward = jax.jit(lambda t, n, x, network=network, call=call: network.stateless_call(t, n, *call(x))[0])
        outputs[name] = np.asarray(forward(trainable, non_trainable, inputs))
    np.savez(folder / f"{model_type}.jax.npz", **outputs)


if __name__ == "__main__":
    for model_name in sys.argv[2:]:
        jax_outputs(Path(sys.argv[1]), model_name)
