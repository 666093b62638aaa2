"""Official CIPS checkpoints (saic-mdal/CIPS ``.pt``) -> tfcoord networks (models.md §2.11).

``python -m tfcoord.convert cips --checkpoint ffhq256.pt --config configs/cips/ffhq256.yaml --out runs/cips-ffhq256``

Released files are bare ``g_ema`` state dicts; training checkpoints are dicts with ``g``,
``d``, ``g_ema`` and optimizer states (then ``g``/``d`` are converted too, otherwise the
trained generator starts as a copy of ``g_ema`` and D keeps its random initialisation).
The file is read without torch (:mod:`tfcoord.torch_pickle`); torch is only needed for
legacy non-zip files. Every tensor name and shape is checked against the networks the
config builds, and anything missing, unexpected or mis-shaped is reported by name before
anything is written.

Layouts: modulated weight ``(1, O, I, 1, 1) -> (I, O)``; EqualLinear/modulation ``(O, I) ->
(I, O)`` (stored values kept, run-time scales identical); Fourier conv ``(H, C, 1, 1) -> (C, H)``;
embedding ``(1, C, S, S) -> (S, S, C)``; biases ``(1, C, 1, 1) -> (C,)``; noise weight ``(1,) -> ()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfcoord import torch_pickle
from tfcoord.errors import UserError

# Config overrides that reproduce the official code (models.md §2.9): C1, the embedding read with
# grid_sample(align_corners=False) in eval mode and the raw table in train mode on the native grid;
# the official strided minibatch-stddev groups. C2 is not set: the official notebook truncates w
# (input_is_latent=True), which is tfcoord's default.
OFFICIAL_COMPAT = ("model.embedding_sampling=official", "model.stddev_grouping=strided")

def _squeeze_vector(w):
    return np.asarray(w).reshape(-1)


def _linear(w):
    return np.transpose(np.asarray(w))


def _modulated(w):
    return np.transpose(np.asarray(w)[0, :, :, 0, 0])


def _scalar(w):
    return np.asarray(w).reshape(())


def _to_rgb_map(layer, prefix: str, bias_name: str = "bias") -> dict:
    return {
        f"{prefix}.conv.weight": (layer.conv.kernel, _modulated),
        f"{prefix}.conv.modulation.weight": (layer.conv.modulation_kernel, _linear),
        f"{prefix}.conv.modulation.bias": (layer.conv.modulation_bias, _squeeze_vector),
        f"{prefix}.{bias_name}": (layer.bias, _squeeze_vector),
    }


def _styled_dense_map(layer, prefix: str) -> dict:
    """A ToRGB's entries plus the noise strength; with "lrelu" the bias is the official FusedLeakyReLU's."""
    bias_name = "activate.bias" if layer.activation == "lrelu" else "bias"
    return {**_to_rgb_map(layer, prefix, bias_name), f"{prefix}.noise.weight": (layer.noise.strength, _scalar)}


def generator_weight_map(generator) -> dict:
    """``{official name: (variable, transform)}`` for a :class:`CipsGenerator` (CIPSskip or CIPSres)."""
    entries = {}
    for i, dense in enumerate(generator.mapping.dense_layers, start=1):  # style.0 is PixelNorm
        entries[f"style.{i}.weight"] = (dense.kernel, _linear)
        entries[f"style.{i}.bias"] = (dense.bias, _squeeze_vector)
    if generator.fourier is not None:
        entries["lff.ffm.conv.weight"] = (generator.fourier.kernel, lambda w: np.transpose(np.asarray(w)[:, :, 0, 0]))
        entries["lff.ffm.conv.bias"] = (generator.fourier.bias, _squeeze_vector)
    if generator.embedding is not None:
        entries["emb.input"] = (generator.embedding.table, lambda w: np.transpose(np.asarray(w)[0], (1, 2, 0)))
    if generator.architecture == "skip":
        entries.update(_styled_dense_map(generator.conv1, "conv1"))
        for k, layer in enumerate(generator.linears):
            entries.update(_styled_dense_map(layer, f"linears.{k}"))
        for k, layer in enumerate(generator.to_rgbs):
            entries.update(_to_rgb_map(layer, f"to_rgbs.{k}"))
    else:
        entries.update(_styled_dense_map(generator.conv1, "linears.0"))
        for k, block in enumerate(generator.blocks, start=1):
            entries.update(_styled_dense_map(block.conv1, f"linears.{k}.conv1"))
            entries.update(_styled_dense_map(block.conv2, f"linears.{k}.conv2"))
            if block.skip is not None:
                entries[f"linears.{k}.skip.0.weight"] = (block.skip.kernel,
                                                         lambda w: np.transpose(np.asarray(w)[:, :, 0, 0]))
        entries.update(_to_rgb_map(generator.to_rgb_last, "to_rgb_last"))
    return entries


def check_and_map(state: dict, weight_map: dict, what: str, source: str) -> list:
    """``[(variable, value)]`` of a CIPS state dict, or a UserError naming every problem (nothing assigned)."""
    if what == "generator" and not any(str(k).startswith(("lff.", "emb.", "style.")) for k in state):
        hint = ("the checkpoint does not look like an official CIPS generator (no 'lff.ffm.conv.weight' / "
                "'emb.input'); pass a CIPS .pt")
    else:
        hint = ("pass the --config preset the checkpoint was trained with (size, hidden_size, style_dim, "
                "n_mlp, architecture, channel_multiplier, activation)")
    # The official D's fixed blur kernels are buffers, not weights.
    return torch_pickle.check_weights(state, weight_map, what, source, hint,
                                      ignored=lambda name: name.rsplit(".", 1)[-1] == "kernel")


def split_checkpoint(obj, source: str) -> dict:
    """``{"g_ema": state, ["g": state, "d": state]}`` of a bare g_ema state dict or a training checkpoint."""
    if not isinstance(obj, dict):
        raise UserError(f"{source} holds a {type(obj).__name__}, not a state dict; pass an official CIPS .pt file")
    if "g_ema" in obj:
        parts = {"g_ema": obj["g_ema"]}
        for key in ("g", "d"):
            if isinstance(obj.get(key), dict):
                parts[key] = obj[key]
        if not isinstance(parts["g_ema"], dict):
            raise UserError(f"{source}: 'g_ema' is not a state dict")
        return parts
    if all(isinstance(v, np.ndarray) for v in obj.values()):
        return {"g_ema": obj}
    keys = ", ".join(sorted(map(str, obj))[:8])
    raise UserError(f"{source} is a dict without 'g_ema' and not a bare state dict (top-level keys: {keys}); "
                    "pass an official CIPS generator checkpoint")


def convert_state(obj, config, source: str = "checkpoint"):
    """A built :class:`~tfcoord.models.cips.model.Cips` holding the weights of an official checkpoint object.

    ``obj`` is what ``torch.load`` returns (tensors as NumPy arrays, e.g. from
    :func:`tfcoord.torch_pickle.load`). Nothing is assigned unless every check passes.
    """
    from tfcoord.models.cips.model import Cips

    parts = split_checkpoint(obj, source)
    model = Cips(config)
    model.build_networks()
    assignments = check_and_map(parts["g_ema"], generator_weight_map(model.generator_ema), "generator", source)
    g_assignments = (check_and_map(parts["g"], generator_weight_map(model.generator), "generator (g)", source)
                     if "g" in parts else None)
    d_assignments = (check_and_map(parts["d"], model.discriminator.official_weight_map(), "discriminator (d)",
                                   source) if "d" in parts else [])
    for variable, value in assignments + d_assignments + (g_assignments or []):
        variable.assign(value)
    if g_assignments is None:  # released files: the trained G starts from the EMA weights
        model.generator.set_weights(model.generator_ema.get_weights())
    return model


def convert(checkpoint_path, config):
    """Read an official CIPS ``.pt`` (zip format without torch) and return the built, converted model."""
    path = Path(checkpoint_path)
    return convert_state(torch_pickle.load(path), config, source=str(path))
