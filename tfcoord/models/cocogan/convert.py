"""Official COCO-GAN TensorFlow 1 checkpoints -> tfcoord networks (models.md §1.13).

The official variables are already in TensorFlow layout (conv ``[kh, kw, in, out]``,
linear ``[in, out]``), so conversion is a renaming: tfcoord's layer names follow the
official scopes except for a few suffixes (see :func:`official_name`). The spectral
norm vectors ``u`` are copied too, so the first converted forward equals the official
one. Every tfcoord variable must be found with its shape, and every official network
variable must be used; problems are reported together, by name, before anything is
written. Adam slots and bookkeeping variables are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError

# The official code's behaviour (models.md §1.11): converted models reproduce its outputs
# (cbn_variance) and fine-tune as it trained.
OFFICIAL_COMPAT = (
    "model.cbn_variance=official_squared",
    "model.snlinear_init=glorot_uniform",
    "model.sn_grad_through_uv=true",
    "loss.gp_norm=official_axis1",
    "loss.gp_alpha=per_element",
    "loss.spatial_head_optimizers=both",
)

NETWORK_SCOPES = ("G_generator/", "D_discriminator/", "GD_spatial_prediction_head/", "Q_content_prediction_head/")
IGNORED = re.compile(r"(/Adam(_\d+)?$|^global_step$|beta[12]_power|^Variable)")

_RENAMES = (
    (re.compile(r"/cbn_(\d)/gamma/kernel$"), r"/g_resblock_cbn_\1/fully_connected/weights"),
    (re.compile(r"/cbn_(\d)/gamma/bias$"), r"/g_resblock_cbn_\1/fully_connected/biases"),
    (re.compile(r"/cbn_(\d)/beta/kernel$"), r"/g_resblock_cbn_\1/fully_connected_1/weights"),
    (re.compile(r"/cbn_(\d)/beta/bias$"), r"/g_resblock_cbn_\1/fully_connected_1/biases"),
    (re.compile(r"/cbn_(\d)/moving_mean$"), r"/g_resblock_cbn_\1/mean_recorder"),
    (re.compile(r"/cbn_(\d)/moving_variance$"), r"/g_resblock_cbn_\1/var_recorder"),
    (re.compile(r"^(G_generator/g_resblock_\d+)/conv_(1|2|sc)/"), r"\1/g_resblock_conv_\2/"),
    (re.compile(r"^(D_discriminator/d_resblock_\d+)/conv_(1|2|sc)/"), r"\1/d_resblock_conv_\2/"),
    (re.compile(r"^G_generator/g_last_conv/"), "G_generator/g_last_conv_2/"),
)


def official_name(keras_path: str) -> str:
    """The official TF1 variable name of a tfcoord COCO-GAN variable path."""
    for pattern, replacement in _RENAMES:
        keras_path = pattern.sub(replacement, keras_path)
    return keras_path


def checkpoint_prefix(path) -> str:
    """A checkpoint prefix from a prefix, a ``.index``/``.data`` file name or a folder."""
    path = str(path)
    if Path(path).is_dir():
        import tensorflow as tf

        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            candidates = sorted(Path(path).glob("*.index"))
            if not candidates:
                raise UserError(f"{path} holds no TensorFlow checkpoint (no 'checkpoint' file and no *.index)")
            prefix = str(candidates[-1])[:-len(".index")]
        return prefix
    return re.sub(r"\.(index|data-\d+-of-\d+)$", "", path)


def read_checkpoint(path) -> dict:
    """``{name: array}`` of the network variables of a TF1 checkpoint."""
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
        return {name: reader.get_tensor(name) for name in names
                if name.startswith(NETWORK_SCOPES) and not IGNORED.search(name)}
    except (tf.errors.OpError, ValueError, IndexError, OSError) as err:
        raise UserError(f"{prefix} is not a readable TensorFlow checkpoint "
                        f"({str(err).splitlines()[0][:200]}); is it truncated or corrupt?") from None


def assign_official_weights(model, tensors: dict) -> None:
    """Check every name and shape, then copy ``tensors`` into the model's networks."""
    if not any(name.startswith("G_generator/") for name in tensors):
        raise UserError("the checkpoint has no G_generator variables: it is not a COCO-GAN checkpoint")
    missing, misshaped, plan = [], [], []
    for network in model.network_items().values():
        for variable in network.weights:
            name = official_name(variable.path)
            if name not in tensors:
                missing.append(name)
            elif tuple(tensors[name].shape) != tuple(variable.shape):
                misshaped.append(f"{name} {tuple(tensors[name].shape)} vs expected {tuple(variable.shape)}")
            else:
                plan.append((variable, name))
    unexpected = sorted(set(tensors) - {name for _, name in plan} - set(missing)
                        - {m.split(" ")[0] for m in misshaped})
    problems = [f"missing: {', '.join(missing)}" if missing else "",
                f"mis-shaped: {'; '.join(misshaped)}" if misshaped else "",
                f"unexpected: {', '.join(unexpected)}" if unexpected else ""]
    problems = [p for p in problems if p]
    if problems:
        hint = ""
        if any(n.startswith("Q_content_prediction_head/") for n in unexpected):
            hint = " (the checkpoint has a content head: use a preset with model.content_head=true)"
        elif misshaped:
            hint = " (the config does not match the checkpoint: check full_size, macro_size, micro_size, ngf, ndf)"
        raise UserError("the checkpoint does not match the config" + hint + ": " + " | ".join(problems))
    for variable, name in plan:
        variable.assign(np.asarray(tensors[name], dtype=variable.dtype))


def convert(checkpoint_path, config):
    """A COCO-GAN built from ``config`` holding the official weights of ``checkpoint_path``."""
    from tfcoord.models.cocogan.model import CocoGan

    tensors = read_checkpoint(checkpoint_path)
    model = CocoGan(config)
    model.build_networks()
    assign_official_weights(model, tensors)
    return model
