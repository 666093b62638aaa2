"""Official InfinityGAN checkpoints -> tfcoord (models.md §4.12, tensorflow.md §11).

``python -m tfcoord.convert infinitygan --checkpoint best_fid.pth.tar --config configs/infinitygan/PRESET.yaml
--out runs/NAME`` reads the official checkpoint dict (``iter, g, d, g_ema, g_optim, d_optim, ...``; a bare
generator ``state_dict`` is accepted too) without torch (:mod:`tfcoord.torch_pickle`), strips a leading
``module.`` (DataParallel), maps every tensor to its tfcoord variable and checks all names and shapes
*before* anything is written. ``g_ema`` becomes ``generator_ema`` (what generation uses), ``g`` (or a copy
of ``g_ema``) the training generator, ``d`` the discriminator and its coordinate head when present.

Layout conversions: modulated conv ``(1, O, I, k, k) -> (k, k, I, O)``, linear ``(O, I) -> (I, O)``,
ToRGB bias ``(1, 3, 1, 1) -> (3,)``, noise strength ``(1,) -> ()``, constant input ``(1, C, 4, 4) ->
(1, 4, 4, C)``; fixed FIR kernels (``*.blur.kernel``, ``*.upsample.kernel``) and the never-read noise
buffers (``texture_synthesizer.noises.*``) are checked for presence only. Channel counts come from the
config, so a config that does not match the checkpoint fails with the mismatching tensors named.
"""

from __future__ import annotations

import numpy as np

from tfcoord.errors import UserError
from tfcoord.torch_pickle import check_weights

# Set on the converted run: what the official code does differently from the paper (models.md §4.10).
# None of them changes the generator's eval-mode output; they make fine-tuning behave like the official code.
OFFICIAL_COMPAT = (
    "model.coord_jitter=official_per_channel",  # I5
    "model.stddev_group=official",  # I3
    "loss.diversity_distance=official_angular",  # I1
    "loss.fake_coord_targets=official_drawn",  # I8
)

# The official generator's noise buffers: never read (noise is an input), accepted when present.
BUFFER_PREFIXES = ("texture_synthesizer.noises.",)


def _modulated(w):
    return np.transpose(np.asarray(w)[0], (2, 3, 1, 0))


def _modulated_conv_entries(prefix, layer):
    return {f"{prefix}.weight": (layer.kernel, _modulated),
            f"{prefix}.modulation.weight": (layer.modulation.kernel, np.transpose),
            f"{prefix}.modulation.bias": (layer.modulation.bias, np.asarray)}


def generator_weight_map(generator, prefix: str = "") -> dict:
    """``{official name: (variable, numpy transform)}`` for an :class:`InfinityGanGenerator`."""
    p = prefix
    entries = {}
    for i, block in enumerate(generator.structure.blocks):
        base = f"{p}structure_synthesizer.implicit_model.conv_stack.{i}.conv"
        entries.update(_modulated_conv_entries(f"{base}.conv", block.conv))
        entries[f"{base}.activate.bias"] = (block.activation_bias, np.asarray)
    texture = generator.texture
    for j, dense in enumerate(texture.mapping.dense_layers, start=1):  # index 0 is PixelNorm
        entries[f"{p}texture_synthesizer.mapping.{j}.weight"] = (dense.kernel, np.transpose)
        entries[f"{p}texture_synthesizer.mapping.{j}.bias"] = (dense.bias, np.asarray)
    entries[f"{p}texture_synthesizer.const_z.input"] = (texture.constant_input,
                                                          lambda w: np.transpose(w, (0, 2, 3, 1)))
    for i, conv in enumerate(texture.convs):
        base = f"{p}texture_synthesizer.convs.{i}"
        entries.update(_modulated_conv_entries(f"{base}.conv", conv.conv))
        entries[f"{base}.noise.weight"] = (conv.noise.strength, lambda w: np.reshape(w, ()))
        entries[f"{base}.activate.bias"] = (conv.activation_bias, np.asarray)
    for j, to_rgb in enumerate(texture.to_rgbs):
        base = f"{p}texture_synthesizer.to_rgbs.{j}"
        entries.update(_modulated_conv_entries(f"{base}.conv", to_rgb.conv))
        entries[f"{base}.bias"] = (to_rgb.bias, np.ravel)
    return entries


def expected_buffers(generator, prefix: str = "") -> set:
    """Official buffer names that carry no learned state (checked for presence only)."""
    names = {f"{prefix}texture_synthesizer.convs.{i}.conv.blur.kernel"
             for i, conv in enumerate(generator.texture.convs) if conv.upsample}
    names |= {f"{prefix}texture_synthesizer.to_rgbs.{j}.upsample.kernel" for j in range(len(generator.texture.to_rgbs))}
    return names


def check_and_assign(state: dict, weight_map: dict, buffers: set, what: str, path) -> list:
    """``[(variable, array)]`` of an InfinityGAN state dict, or a UserError naming every problem (nothing assigned)."""
    return check_weights(state, weight_map, what, path, "pass the --config preset the checkpoint was trained with "
                         "(model.ts_channels, global_latent_dim, local_latent_dim, n_mlp, ...)", buffers=buffers,
                         ignored=lambda name: name.startswith(BUFFER_PREFIXES))


def read_checkpoint(path) -> dict:
    """The official checkpoint as ``{'g_ema': state, 'g': state or None, 'd': state or None}``."""
    from tfcoord.torch_pickle import load

    obj = load(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not an InfinityGAN checkpoint dict; "
                        "pass the official .pth.tar (with g_ema) or a generator state_dict")
    if "g_ema" in obj:
        parts = {"g_ema": obj["g_ema"], "g": obj.get("g"), "d": obj.get("d")}
    else:
        parts = {"g_ema": obj, "g": None, "d": None}
    for key, state in parts.items():
        if state is None:
            continue
        if not isinstance(state, dict):
            raise UserError(f"{path}: '{key}' is not a state dict")
        parts[key] = {name.removeprefix("module."): value for name, value in state.items()}
    generator_keys = [k for k in parts["g_ema"] if isinstance(k, str)]
    if not any(k.startswith("texture_synthesizer.") for k in generator_keys):
        sample = ", ".join(sorted(generator_keys)[:4]) or "nothing"
        raise UserError(f"{path} is not an InfinityGAN generator checkpoint (no texture_synthesizer.* tensors; "
                        f"it holds {sample} ...); convert it with the converter of its own model")
    return parts


def discriminator_weight_map(discriminator, coord_head) -> dict:
    """Official ``d`` state-dict names -> (variable, transform), coordinate head included."""
    entries = discriminator.official_weight_map(prefix="")
    if coord_head is not None:
        entries.update(coord_head.official_weight_map(discriminator.side, discriminator.linear_channels))
    return entries


def convert(checkpoint_path, config):
    """A built :class:`~tfcoord.models.infinitygan.model.InfinityGan` holding the official weights."""
    from tfcoord.models.infinitygan.model import InfinityGan

    parts = read_checkpoint(checkpoint_path)  # before building: a bad file fails fast
    model = InfinityGan(config)
    model.build_all_networks()
    assignments = check_and_assign(parts["g_ema"], generator_weight_map(model.generator_ema),
                                   expected_buffers(model.generator_ema), "generator (g_ema)", checkpoint_path)
    source_g = parts["g"] if parts["g"] is not None else parts["g_ema"]
    assignments += check_and_assign(source_g, generator_weight_map(model.generator),
                                    expected_buffers(model.generator), "generator (g)", checkpoint_path)
    if parts["d"] is not None:
        d_map = discriminator_weight_map(model.discriminator, model.coord_head)
        blur_buffers = {name for name in parts["d"] if name.endswith(".kernel")}  # fixed FIR kernels
        assignments += check_and_assign(parts["d"], d_map, blur_buffers, "discriminator (d)", checkpoint_path)
    for variable, array in assignments:  # every check passed: only now touch the variables
        variable.assign(array)
    return model
