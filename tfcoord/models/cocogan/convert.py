"""Official COCO-GAN TensorFlow 1 checkpoints -> tfcoord networks (models.md §1.13).

The official variables are already in TensorFlow layout (conv ``[kh, kw, in, out]``,
linear ``[in, out]``), so conversion is a renaming: tfcoord's layer names follow the
official scopes except for a few suffixes (see :func:`official_name`). The spectral
norm vectors ``u`` are copied too, so the first converted forward equals the official
one. Every tfcoord variable must be found with its shape, and every other official
variable must be used; problems are reported together, by name, before anything is
written. Adam slots and bookkeeping variables (:data:`BOOKKEEPING`) are skipped.

The config can come from the official experiment config (:func:`official_config_overrides`):
``python -m tfcoord.convert cocogan --checkpoint logs/<exp>/ckpt --config configs/<exp>.yaml --out runs/<exp>``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError
from tfcoord.torch_pickle import match_weights

# The official code's behaviour (models.md §1.11): converted models reproduce its outputs
# (cbn_variance) and fine-tune as it trained.
OFFICIAL_COMPAT = (
    "model.cbn_variance=official_squared",
    "model.snlinear_init=glorot_uniform",
    "model.sn_grad_through_uv=true",
    "model.bn_moving_stats=official_tf1",
    "loss.gp_norm=official_axis1",
    "loss.gp_alpha=per_element",
    "loss.spatial_head_optimizers=both",
)

# What tf.train.Saver also keeps besides the networks (logger.py saves every global variable):
# the Adam moments of each optimizer ("<var>/Adam", "<var>/Adam_1"; a variable in two optimizers,
# like head A, gets "Adam_2", "Adam_3"), the optimizers' beta powers ("beta1_power", "beta1_power_1",
# ...), a global step, and the logger's FID scalar (an unnamed tf.Variable, "Variable").
BOOKKEEPING = re.compile(r"(/Adam(_\d+)?$|^global_step$|(^|/)beta[12]_power(_\d+)?$|^Variable(_\d+)?$)")

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
    """``{name: array}`` of a TF1 checkpoint's variables, less the optimizer bookkeeping."""
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
        return {name: reader.get_tensor(name) for name in names if not BOOKKEEPING.search(name)}
    except (tf.errors.OpError, ValueError, IndexError, OSError) as err:
        raise UserError(f"{prefix} is not a readable TensorFlow checkpoint "
                        f"({str(err).splitlines()[0][:200]}); is it truncated or corrupt?") from None


def official_config_overrides(raw: dict) -> list[str] | None:
    """``--set`` overrides equivalent to an official experiment config, or None if ``raw`` is not one.

    ``raw`` is a parsed official ``configs/*.yaml`` of hubert0527/COCO-GAN (``data_params``,
    ``model_params``, ``loss_params``, ``train_params``), or a record holding one under
    ``config`` (the official fixtures' JSON). The official graph always builds head Q, so
    the converted model has it; ``code_loss_w`` becomes its loss weight.
    """
    if isinstance(raw.get("config"), dict):
        raw = raw["config"]
    if not isinstance(raw.get("data_params"), dict) or not isinstance(raw.get("model_params"), dict):
        return None
    data, model = raw["data_params"], raw["model_params"]
    loss, train = raw.get("loss_params") or {}, raw.get("train_params") or {}
    for key in ("macro_patch_size", "micro_patch_size"):
        if len(set(data[key])) != 1:
            raise UserError(f"official data_params.{key} {data[key]} is not square; tfcoord's patches are square")
    if model.get("d_extra_layers", 0):
        raise UserError("official model_params.d_extra_layers > 0 is not supported (no shipped config uses it)")
    height, width = data["full_image_size"]
    overrides = [f"model.full_size=[{height}, {width}]", f"model.macro_size={data['macro_patch_size'][0]}",
                 f"model.micro_size={data['micro_patch_size'][0]}", f"model.z_dim={model['z_dim']}",
                 f"model.ngf={model['ngf_base']}", f"model.ndf={model['ndf_base']}",
                 f"model.g_extra_layers={model.get('g_extra_layers', 0)}", f"model.aux_dim={model['aux_dim']}",
                 f"model.coordinate_system={data.get('coordinate_system', 'euclidean')}", "model.content_head=true",
                 "optim.g_ema_decay=0"]  # the official code samples from G itself
    renames = (("gp_lambda", "loss.gp_weight"), ("coord_loss_w", "loss.spatial_weight"),
               ("code_loss_w", "loss.content_weight"))
    overrides += [f"{ours}={loss[key]}" for key, ours in renames if key in loss]
    renames = (("batch_size", "train.batch_size"), ("glr", "optim.lr_g"), ("dlr", "optim.lr_d"),
               ("qlr", "optim.lr_q"), ("beta1", "optim.beta_1"), ("beta2", "optim.beta_2"))
    overrides += [f"{ours}={train[key]}" for key, ours in renames if key in train]
    if train.get("train_extrap"):
        overrides.append(f"loss.extrapolation_steps={train['num_extrap_steps']}")
    return overrides


def assign_official_weights(model, tensors: dict) -> None:
    """Check every name and shape, then copy ``tensors`` into the model's networks."""
    if not any(name.startswith("G_generator/") for name in tensors):
        raise UserError("the checkpoint has no G_generator variables: it is not a COCO-GAN checkpoint")
    networks = [network for key, network in model.network_items().items() if key != "generator_ema"]
    weight_map = {official_name(variable.path): (variable, np.asarray)
                  for network in networks for variable in network.weights}
    assignments, problems = match_weights(tensors, weight_map)
    if problems:
        hint = ""
        if any(n.startswith("Q_content_prediction_head/") for n in problems.get("unexpected", ())):
            hint = " (the checkpoint has a content head: use a preset with model.content_head=true)"
        elif "mis-shaped" in problems:
            hint = " (the config does not match the checkpoint: check full_size, macro_size, micro_size, ngf, ndf)"
        raise UserError("the checkpoint does not match the config" + hint + ": "
                        + " | ".join(f"{kind}: {', '.join(names)}" for kind, names in problems.items()))
    for variable, value in assignments:
        variable.assign(value)
    if model.generator_ema is not None:  # the official code keeps no average: it starts as the converted G
        model.generator_ema.set_weights(model.generator.get_weights())


def convert(checkpoint_path, config):
    """A COCO-GAN built from ``config`` holding the official weights of ``checkpoint_path``."""
    from tfcoord.models.cocogan.model import CocoGan

    tensors = read_checkpoint(checkpoint_path)
    model = CocoGan(config)
    model.build_networks()
    assign_official_weights(model, tensors)
    return model
