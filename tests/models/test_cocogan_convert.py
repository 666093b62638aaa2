"""Official COCO-GAN TF1 checkpoints: every variable is mapped, problems are named, outputs match the graph.

The checkpoint is written in tf.compat.v1 graph mode with the variable names of the
official code (hubert0527/COCO-GAN, models/*.py and ops.py), enumerated here
independently of the converter. The reference output is a NumPy re-implementation of
the official generator graph in eval mode (spectral norm with the stored u, conditional
BN dividing by sqrt(var^2 + eps), quirk Q1).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module
from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.cocogan.convert import OFFICIAL_COMPAT, convert
from tfcoord.runs import load_run

Z, NGF, NDF, AUX = 8, 4, 4, 8
OVERRIDES = [f"model.z_dim={Z}", f"model.ngf={NGF}", f"model.ndf={NDF}", f"model.aux_dim={AUX}"]


def official_shapes():
    """Names and shapes of the official variables of the tiny preset (full 32, macro 16, micro 8)."""
    shapes, cond = {}, Z + 2

    def sn(scope, shape):
        shapes.update({f"{scope}/w": shape, f"{scope}/b": (shape[-1],), f"{scope}/u": (1, shape[-1])})

    sn("G_generator/g_z_fc", (cond, 16 * NGF * 4))
    channels = 16 * NGF
    for i, multiplier in enumerate([8, 4]):  # micro 8: two upsampling blocks
        out, scope = multiplier * NGF, f"G_generator/g_resblock_{i}"
        for k, width in ((1, channels), (2, out)):
            cbn = f"{scope}/g_resblock_cbn_{k}"
            for fc in ("fully_connected", "fully_connected_1"):
                shapes.update({f"{cbn}/{fc}/weights": (cond, width), f"{cbn}/{fc}/biases": (width,)})
            shapes.update({f"{cbn}/mean_recorder": (width,), f"{cbn}/var_recorder": (width,)})
        sn(f"{scope}/g_resblock_conv_1", (3, 3, channels, out))
        sn(f"{scope}/g_resblock_conv_2", (3, 3, out, out))
        sn(f"{scope}/g_resblock_conv_sc", (1, 1, channels, out))
        channels = out
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        shapes[f"G_generator/g_last_bn/{name}"] = (channels,)
    sn("G_generator/g_last_conv_2", (3, 3, channels, 3))
    channels = 3
    for i, multiplier in enumerate([1, 8, 8]):  # macro 16
        out, scope = multiplier * NDF, f"D_discriminator/d_resblock_{i}"
        sn(f"{scope}/d_resblock_conv_1", (3, 3, channels, out))
        sn(f"{scope}/d_resblock_conv_2", (3, 3, out, out))
        sn(f"{scope}/d_resblock_conv_sc", (1, 1, channels, out))
        channels = out
    sn("D_discriminator/main_steam_out", (channels, 1))
    sn("D_discriminator/y_emb", (2, channels))
    sn("GD_spatial_prediction_head/fc1", (channels, AUX))
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        shapes[f"GD_spatial_prediction_head/bn1/{name}"] = (AUX,)
    sn("GD_spatial_prediction_head/fc2", (AUX, 2))
    return shapes


def official_tensors(seed=0):
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in official_shapes().items():
        value = rng.normal(0.0, 0.3, shape)
        if name.endswith(("var_recorder", "moving_variance")):
            value = rng.uniform(0.5, 1.5, shape)
        tensors[name] = value.astype("float32")
    return tensors


def write_tf1_checkpoint(prefix, tensors, extra_bookkeeping=True):
    """A tf.train.Saver checkpoint as the official TF 1.x code writes it."""
    graph = tf.Graph()
    with graph.as_default():
        for name, value in tensors.items():
            scope, leaf = name.rsplit("/", 1)
            with tf.compat.v1.variable_scope(scope):
                tf.compat.v1.get_variable(leaf, initializer=tf.constant(value))
        if extra_bookkeeping:  # Adam slots and counters the converter must ignore
            with tf.compat.v1.variable_scope("G_generator/g_z_fc/w"):
                tf.compat.v1.get_variable("Adam", initializer=tf.zeros_like(tensors["G_generator/g_z_fc/w"]))
            tf.compat.v1.get_variable("beta1_power", initializer=tf.constant(0.9))
            tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(prefix))


def tiny_config(*extra):
    return load_config("cocogan", section_classes("cocogan"), preset="tiny",
                       overrides=list(OFFICIAL_COMPAT) + OVERRIDES + list(extra))


def l2n(a):
    return a / (np.sqrt(np.sum(a ** 2)) + 1e-12)


def sn_weight(tensors, scope):
    w = tensors[f"{scope}/w"].astype("float64")
    matrix = w.reshape(-1, w.shape[-1])
    v = l2n(tensors[f"{scope}/u"] @ matrix.T)
    u = l2n(v @ matrix)
    return w / (v @ matrix @ u.T).item(), tensors[f"{scope}/b"]


def conv_same(x, w, b):
    k = w.shape[0]
    p = k // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    height, width = x.shape[1:3]
    out = sum(padded[:, dy:dy + height, dx:dx + width] @ w[dy, dx] for dy in range(k) for dx in range(k))
    return out + b


def reference_generator(tensors, z, coords):
    """The official G graph in eval mode (models/generator.py, ops.py), in NumPy float64."""
    cond = np.concatenate([z, coords], axis=1).astype("float64")
    w, b = sn_weight(tensors, "G_generator/g_z_fc")
    h = (cond @ w + b).reshape(-1, 2, 2, 16 * NGF)

    def cbn(x, scope):
        gamma = cond @ tensors[f"{scope}/fully_connected/weights"] + tensors[f"{scope}/fully_connected/biases"]
        beta = cond @ tensors[f"{scope}/fully_connected_1/weights"] + tensors[f"{scope}/fully_connected_1/biases"]
        mean, var = tensors[f"{scope}/mean_recorder"], tensors[f"{scope}/var_recorder"]
        return (x - mean) / np.sqrt(var ** 2 + 1e-5) * gamma[:, None, None] + beta[:, None, None]

    def up(x):
        return x.repeat(2, axis=1).repeat(2, axis=2)

    for i in range(2):
        scope = f"G_generator/g_resblock_{i}"
        r = up(np.maximum(cbn(h, f"{scope}/g_resblock_cbn_1"), 0))
        r = conv_same(r, *sn_weight(tensors, f"{scope}/g_resblock_conv_1"))
        r = np.maximum(cbn(r, f"{scope}/g_resblock_cbn_2"), 0)
        r = conv_same(r, *sn_weight(tensors, f"{scope}/g_resblock_conv_2"))
        h = r + conv_same(up(h), *sn_weight(tensors, f"{scope}/g_resblock_conv_sc"))
    bn = {k: tensors[f"G_generator/g_last_bn/{k}"] for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    h = (h - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-5) * bn["gamma"] + bn["beta"]
    return np.tanh(conv_same(np.maximum(h, 0), *sn_weight(tensors, "G_generator/g_last_conv_2")))


def test_converted_generator_reproduces_the_official_graph(tmp_path):
    tensors = official_tensors()
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt-1000", tensors)
    model = convert(prefix, tiny_config())
    rng = np.random.default_rng(1)
    z = rng.uniform(-1, 1, (3, Z)).astype("float32")
    coords = np.array([[-1, -1], [1 / 3, -1 / 3], [1, 5 / 3]], "float32")
    ours = np.asarray(model.sampler.micro_patches(z, coords))
    np.testing.assert_allclose(ours, reference_generator(tensors, z, coords), atol=1e-4)
    for name in ("D_discriminator/y_emb/u", "GD_spatial_prediction_head/bn1/moving_variance"):
        assert any(np.array_equal(v.numpy(), tensors[name]) for net in model.network_items().values()
                   for v in net.weights)


def test_folder_and_prefix_forms(tmp_path):
    tensors = official_tensors()
    write_tf1_checkpoint(tmp_path / "ckpt" / "model.ckpt-5", tensors)
    by_folder = convert(tmp_path / "ckpt", tiny_config())
    by_index = convert(str(tmp_path / "ckpt" / "model.ckpt-5.index"), tiny_config())
    z = np.zeros((1, Z), "float32")
    coords = np.zeros((1, 2), "float32")
    np.testing.assert_array_equal(by_folder.sampler.micro_patches(z, coords),
                                  by_index.sampler.micro_patches(z, coords))


def test_missing_and_extra_variables_are_named(tmp_path):
    tensors = official_tensors()
    del tensors["G_generator/g_resblock_1/g_resblock_cbn_2/var_recorder"]
    tensors["D_discriminator/d_resblock_9/d_resblock_conv_1/w"] = np.zeros((3, 3, 4, 4), "float32")
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt-1", tensors)
    with pytest.raises(UserError) as error:
        convert(prefix, tiny_config())
    message = str(error.value)
    assert "missing: G_generator/g_resblock_1/g_resblock_cbn_2/var_recorder" in message
    assert "unexpected: D_discriminator/d_resblock_9/d_resblock_conv_1/w" in message


def test_config_that_does_not_match_the_shapes(tmp_path):
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt-1", official_tensors())
    with pytest.raises(UserError, match="mis-shaped: G_generator/g_z_fc/w"):
        convert(prefix, tiny_config("model.z_dim=16"))


def test_corrupt_and_foreign_checkpoints(tmp_path):
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt-1", official_tensors())
    data = next(tmp_path.glob("model.ckpt-1.data-*"))
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(UserError, match="truncated or corrupt"):
        convert(prefix, tiny_config())
    foreign = write_tf1_checkpoint(tmp_path / "other.ckpt", {"generator/dense/kernel": np.zeros((2, 2), "float32")},
                                   extra_bookkeeping=False)
    with pytest.raises(UserError, match="not a COCO-GAN checkpoint"):
        convert(foreign, tiny_config())


def test_convert_cli_writes_a_run_that_generates(tmp_path):
    tensors = official_tensors()
    prefix = write_tf1_checkpoint(tmp_path / "official" / "model.ckpt-1000", tensors)
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text("model:\n  full_size: [32, 32]\n  macro_size: 16\n  micro_size: 8\n"
                           f"  z_dim: {Z}\n  ngf: {NGF}\n  ndf: {NDF}\n  aux_dim: {AUX}\n")
    out = tmp_path / "runs" / "converted"
    result = run_module("tfcoord.convert", "cocogan", "--checkpoint", prefix, "--config", config_file, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((out / "converted_from.json").read_text())
    assert record["model"] == "cocogan" and "model.cbn_variance=official_squared" in record["compat_overrides"]
    model, _ = load_run(out)
    assert model.config.model.cbn_variance == "official_squared"
    z = np.random.default_rng(2).uniform(-1, 1, (1, Z)).astype("float32")
    coords = np.array([[1 / 3, 1]], "float32")
    np.testing.assert_allclose(model.sampler.micro_patches(z, coords), reference_generator(tensors, z, coords),
                               atol=1e-4)

    bad = run_module("tfcoord.convert", "cocogan", "--checkpoint", tmp_path / "nothing", "--config", config_file,
                     "--out", tmp_path / "runs" / "x")
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    assert not (tmp_path / "runs" / "x").exists()
