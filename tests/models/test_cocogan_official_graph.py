"""Checkpoints of the official COCO-GAN TF1 graph convert; its outputs and one training iteration are reproduced.

Fixtures (``shared/fixtures/official``, README there), made by running hubert0527/COCO-GAN (``ops.py``,
``models/*.py``, ``trainer.py``) under ``tf.compat.v1``:

* ``cocogan_official_tiny``: a ``tf.train.Saver`` checkpoint of G, D and heads A and Q with the Adam slots of
  the official optimizers, and eval-mode outputs of G, D (with and without the projection term), D's pooled
  features, A and Q on recorded inputs.
* ``cocogan_train_step_s``: one iteration of the official ``Trainer`` (``d_optim``, ``g_optim``, then
  ``q_optim`` on one feed): the checkpoint before it, the feed, the gradient-penalty draw, every loss term and
  every variable that changed after each step.

The iteration runs tfcoord's own ``CocoGan.train_step`` (what ``python -m tfcoord.train`` runs) on the recorded
feed and gradient-penalty weights. Each step starts from the official state before it (a test-side seam on the
optimizers records the variables after each update, then loads the official ones), so a step's comparison does
not inherit the round-off of the one before. Two things the recording cannot pin down element by element:

* Adam's first update is ``lr g / (|g| + eps)``: where the gradient is zero up to float32 round-off (a bias in
  front of a batch norm; a channel of D's last block that is positive everywhere, whose real and fake
  contributions cancel), either side may move by up to lr in either direction. These elements are found by
  running the same iteration in float64, where their gradient is ~1e-13 of the step's largest; they are compared
  against lr, every other element against 1e-5.
* The official graph assigns a spectral-norm ``u`` once per training-mode call of its network; when a network
  is called twice in one ``sess.run`` the two assignments are unordered, and the later may start from the
  earlier's result. Q's ``fc1/u`` after ``q_optim`` holds two power iterations where tfcoord (one per step)
  holds one; such a ``u`` must equal one more iteration of tfcoord's.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SHARED
from tfcoord.config import load_config
from tfcoord.convert import main as convert_main
from tfcoord.errors import UserError
from tfcoord.models import default_preset, section_classes
from tfcoord.models.cocogan.convert import (BOOKKEEPING, OFFICIAL_COMPAT, checkpoint_prefix, convert,
                                           official_config_overrides, official_name, read_checkpoint)
from tfcoord.models.cocogan.normalization import BatchNorm
from tfcoord.runs import load_run

OFFICIAL = SHARED / "fixtures" / "official"
TINY = OFFICIAL / "cocogan_official_tiny"
TRAIN = OFFICIAL / "cocogan_train_step_s"
pytestmark = pytest.mark.skipif(not (TINY.with_suffix(".json").is_file() and TRAIN.with_suffix(".json").is_file()),
                                reason="official fixtures not available")

STEPS = ("d_step", "g_step", "q_step")  # the official order, one optimizer each
# Networks called more than once in training mode in a step of the official graph (u may hold extra iterations).
REPEATED_CALLS = {"d_step": ("D_discriminator/", "GD_spatial_prediction_head/"),
                  "g_step": ("GD_spatial_prediction_head/",), "q_step": ("Q_content_prediction_head/",)}


def meta(fixture):
    return json.loads(fixture.with_suffix(".json").read_text())


def official_config(fixture):
    """The tfcoord config of a fixture: its official config translated, plus the official compat flags."""
    overrides = official_config_overrides(meta(fixture)) + list(OFFICIAL_COMPAT)
    return load_config("cocogan", section_classes("cocogan"), preset=default_preset("cocogan"), overrides=overrides)


# -- part 3: a checkpoint the official graph wrote -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return convert(TINY, official_config(TINY))


def test_converted_networks_reproduce_the_official_graph(tiny_model):
    ref = np.load(TINY.with_suffix(".npz"))
    model = tiny_model
    d, features = model.discriminator(ref["macro_patch"], ref["macro_coord"], training=False)
    d_no_projection, _ = model.discriminator(ref["macro_patch"], None, training=False)
    outputs = {"g_test": model.sampler.micro_patches(ref["z"], ref["micro_coord"]), "d_test": d[:, None],
               "d_test_noproj": d_no_projection[:, None], "h_test": features,
               "a_test": model.spatial_head(ref["h_test"], training=False),
               "q_test": model.content_head(ref["h_test"], training=False)}
    for key, ours in outputs.items():
        np.testing.assert_allclose(np.asarray(ours), ref[key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_optimizer_bookkeeping_is_recognised_and_everything_else_used():
    reader = tf.train.load_checkpoint(str(TINY / "model.ckpt-1000"))
    names = set(reader.get_variable_to_shape_map())
    skipped = {name for name in names if BOOKKEEPING.search(name)}
    # Adam moments (head A sits in both G's and D's optimizer: Adam_2, Adam_3) and the three beta-power pairs.
    assert skipped == {n for n in names if n.rsplit("/", 1)[-1] in ("Adam", "Adam_1", "Adam_2", "Adam_3")
                       or n.startswith(("beta1_power", "beta2_power"))}
    assert {n.rsplit("/", 1)[-1] for n in skipped if n.startswith("GD_")} == {"Adam", "Adam_1", "Adam_2", "Adam_3"}
    assert set(read_checkpoint(TINY)) == names - skipped
    model = convert(TINY, official_config(TINY))  # raises on any missing, mis-shaped or unexpected name
    used = {official_name(v.path) for net in model.network_items().values() for v in net.weights}
    assert used == names - skipped


@pytest.mark.parametrize("form", ["folder", "prefix", "index"])
def test_convert_cli_takes_every_checkpoint_form_and_the_official_config(tmp_path, form, tiny_model):
    checkpoint = {"folder": TINY, "prefix": TINY / "model.ckpt-1000", "index": TINY / "model.ckpt-1000.index"}[form]
    assert checkpoint_prefix(checkpoint) == str(TINY / "model.ckpt-1000")
    out = tmp_path / "run"
    assert convert_main(["cocogan", "--checkpoint", str(checkpoint), "--config", str(TINY.with_suffix(".json")),
                         "--out", str(out)]) == 0
    model, _ = load_run(out)
    assert model.config.model.cbn_variance == "official_squared" and model.config.model.content_head
    ref = np.load(TINY.with_suffix(".npz"))
    np.testing.assert_allclose(model.sampler.micro_patches(ref["z"], ref["micro_coord"]), ref["g_test"], atol=1e-4)


def mutated_copy(tmp_path, rename=None, swap=None):
    """The official checkpoint rewritten with one variable renamed, or two variables' values swapped."""
    reader = tf.train.load_checkpoint(str(TINY / "model.ckpt-1000"))
    tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    for old, new in (rename or {}).items():
        tensors[new] = tensors.pop(old)
    if swap:
        first, second = swap
        tensors[first], tensors[second] = tensors[second], tensors[first]
    prefix = str(tmp_path / "model.ckpt-1")
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])
    return prefix


CBN = "G_generator/g_resblock_1/g_resblock_cbn_2"


@pytest.mark.parametrize("old, new", [
    ("D_discriminator/y_emb/w", "D_discriminator/y_embedding/w"),
    # slim numbering its linears on from an earlier scope (fully_connected_2, _3) instead of restarting at 0
    (f"{CBN}/fully_connected/weights", f"{CBN}/fully_connected_2/weights"),
])
def test_renamed_variable_is_named(tmp_path, old, new):
    with pytest.raises(UserError) as error:
        convert(mutated_copy(tmp_path, rename={old: new}), official_config(TINY))
    assert f"missing: {old}" in str(error.value) and f"unexpected: {new}" in str(error.value)


def test_swapped_gamma_and_beta_linears_are_caught_by_the_outputs(tmp_path):
    # γ (fully_connected) and β (fully_connected_1) of one CBN have the same shape: names and shapes cannot tell a
    # swap, so the converter loads it; the recorded outputs show it.
    swap = (f"{CBN}/fully_connected/weights", f"{CBN}/fully_connected_1/weights")
    model = convert(mutated_copy(tmp_path, swap=swap), official_config(TINY))
    ref = np.load(TINY.with_suffix(".npz"))
    assert np.max(np.abs(np.asarray(model.sampler.micro_patches(ref["z"], ref["micro_coord"])) - ref["g_test"])) > 1e-2


# -- part 4: one official training iteration --------------------------------------------------------------------


def test_batch_norm_groups_and_the_official_moving_statistics():
    rng = np.random.default_rng(0)
    real, fake = (rng.normal(offset, 1.0, (4, 3)).astype("float32") for offset in (5.0, -2.0))
    start = np.array([0.5, -0.5, 1.0], "float32"), np.array([2.0, 0.5, 1.5], "float32")
    norms = {}
    for moving_stats in ("per_call", "official_tf1"):
        norm = norms[moving_stats] = BatchNorm(moving_stats=moving_stats)
        norm.build((None, 3))
        norm.moving_mean.assign(start[0])
        norm.moving_variance.assign(start[1])
        grouped = np.asarray(norm(np.concatenate([real, fake]), training=True, groups=2))
        for part, x in ((grouped[:4], real), (grouped[4:], fake)):  # each part normalised with its own moments
            np.testing.assert_allclose(part, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-5)
    keras_like = start[0]
    for x in (real, fake):  # per_call: one update after the other, biased variance
        keras_like = 0.9 * keras_like + 0.1 * x.mean(0)
    np.testing.assert_allclose(norms["per_call"].moving_mean, keras_like, atol=1e-6)
    # official_tf1: both updates from the step's starting value, Bessel-corrected variance (n = 4)
    np.testing.assert_allclose(norms["official_tf1"].moving_mean,
                               start[0] - 0.1 * ((start[0] - real.mean(0)) + (start[0] - fake.mean(0))), atol=1e-6)
    np.testing.assert_allclose(norms["official_tf1"].moving_variance,
                               start[1] - 0.1 * sum(start[1] - x.var(0) * 4 / 3 for x in (real, fake)), atol=1e-5)


def official_states():
    """The official variables before the iteration and after each step (the checkpoint, then each recording)."""
    record, ref = meta(TRAIN), np.load(TRAIN.with_suffix(".npz"))
    states = [read_checkpoint(TRAIN)]
    for step in STEPS:
        states.append({**states[-1], **{name: ref[f"{step}__after__{name}"]
                                        for name in record["changed_variables"][step]}})
    return states


def recorded_batch(model, ref, dtype):
    """The official feed as tfcoord's step inputs: macro indices for the coordinates, the recorded GP draw."""
    geometry = model.geometry
    macro = ref["macro_coord"]
    row = np.round((macro[:, 0] + 1) / 2 * (geometry.macro_rows() - 1)).astype("int32")
    col = np.round((macro[:, 1] + 1) / 2 * (geometry.macro_cols() - 1)).astype("int32")
    batch = {"image": ref["real_images"].astype(dtype), "z": ref["z"].astype(dtype), "macro_row": row,
             "macro_col": col, "gp_alpha": ref["d_step__gp_alpha"].astype(dtype)}
    return {key: tf.constant(value) for key, value in batch.items()}


def run_iteration(dtype):
    """Convert the checkpoint and run tfcoord's train_step on the official feed, each step from the official state.

    Returns the losses and, per step, the gradients and every variable after the update (official names).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        config = official_config(TRAIN)
        model = convert(TRAIN, config)
        model.build_optimizers()
        ref = np.load(TRAIN.with_suffix(".npz"))
        variables = {official_name(v.path): v for net in model.network_items().values() for v in net.weights}
        names = {id(v): name for name, v in variables.items()}
        states = official_states()
        records = []

        def recorded(optimizer, official_after):
            apply_gradients = optimizer.apply_gradients

            def apply_and_record(pairs):
                pairs = list(pairs)
                result = apply_gradients(pairs)
                records.append({"grads": {names[id(v)]: g for g, v in pairs},
                                "after": {name: tf.identity(v) for name, v in variables.items()}})
                for name, variable in variables.items():  # the next step starts where the official one did
                    variable.assign(official_after[name].astype(dtype))
                return result

            optimizer.apply_gradients = apply_and_record

        for optimizer, state in zip((model.d_optimizer, model.g_optimizer, model.q_optimizer), states[1:]):
            recorded(optimizer, state)

        # Eagerly: the trainer's tf.function traces this same Python. Wrapped in tf.function every test here passes
        # too, but tracing the step (double backprop of the penalty) takes ~30 s per dtype on 2 cores.
        losses = model.train_step(recorded_batch(model, ref, dtype), config.train.batch_size)
        losses, steps = tf.nest.map_structure(lambda t: t.numpy(), (losses, records))
        return dict(model=model, config=config, losses=losses, steps=dict(zip(STEPS, steps)), states=states)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def iteration():
    return run_iteration("float32")


@pytest.fixture(scope="module")
def float64_gradients():
    return {step: record["grads"] for step, record in run_iteration("float64")["steps"].items()}


def test_config_and_feed_are_the_official_ones(iteration):
    cfg, ref, model = iteration["config"], np.load(TRAIN.with_suffix(".npz")), iteration["model"]
    assert (cfg.loss.gp_weight, cfg.loss.spatial_weight, cfg.loss.content_weight) == (10, 100, 1.0)
    assert (cfg.optim.lr_d, cfg.optim.lr_g, cfg.optim.lr_q, cfg.optim.beta_1) == (4e-4, 1e-4, 1e-4, 0.0)
    batch = recorded_batch(model, ref, "float32")
    row, col = batch["macro_row"], batch["macro_col"]
    np.testing.assert_allclose(model.geometry.macro_coords(row, col), ref["macro_coord"], atol=1e-6)
    # the micro coordinates of each macro patch (official order: the vertical index fastest)
    ours = np.sort(np.asarray(model.geometry.micro_coords_of_macro(row, col)), axis=1)
    official = np.sort(ref["micro_coord"].reshape(ours.shape), axis=1)
    np.testing.assert_allclose(ours, official, atol=1e-6)
    np.testing.assert_array_equal(model.real_macro_patches(batch["image"], row, col), ref["d_step__real_macro"])


def test_every_loss_term_equals_the_official_one(iteration):
    ours, loss, official = iteration["losses"], iteration["config"].loss, meta(TRAIN)["values"]
    alpha = loss.spatial_weight
    expected = {  # official name -> tfcoord's term with the official weighting
        "d_step__d_loss": ours["d_loss"], "d_step__w_dist": ours["wasserstein"],
        "d_step__d_adv_loss": -ours["wasserstein"], "d_step__gp_loss": loss.gp_weight * ours["gradient_penalty"],
        "d_step__coord_mse_real": alpha * ours["spatial_real"], "d_step__coord_mse_fake": alpha * ours["spatial_fake"],
        "d_step__coord_loss": alpha * (ours["spatial_real"] + ours["spatial_fake"]),
        "d_step__code_loss": loss.content_weight * ours["content"],
        "g_step__g_loss": ours["g_loss"], "g_step__g_adv_loss": ours["g_adversarial"],
        "g_step__coord_loss": alpha * (ours["g_spatial_real"] + ours["g_spatial_fake"]),
        "g_step__code_loss": loss.content_weight * ours["g_content"],
        "q_step__q_loss": ours["q_adversarial"] + ours["q_loss"],  # official q_loss = g_adv_loss + code_loss
    }
    assert set(expected) == set(official)
    for name, value in official.items():
        assert abs(expected[name] - value) <= 1e-4 * abs(value), (name, expected[name], value)


def one_more_power_iteration(kernel, u):
    matrix = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    v = u @ matrix.T
    v = v / (np.linalg.norm(v) + 1e-12)
    u_next = v @ matrix
    return u_next / (np.linalg.norm(u_next) + 1e-12)


@pytest.mark.parametrize("step", STEPS)
def test_every_variable_after_each_step_equals_the_official_one(iteration, float64_gradients, step):
    index = STEPS.index(step)
    before, official = iteration["states"][index], iteration["states"][index + 1]
    record, grads64 = iteration["steps"][step], float64_gradients[step]
    lr = {"d_step": 4e-4, "g_step": 1e-4, "q_step": 1e-4}[step]
    assert getattr(iteration["config"].optim, {"d_step": "lr_d", "g_step": "lr_g", "q_step": "lr_q"}[step]) == lr
    scale = max(float(np.max(np.abs(g))) for g in grads64.values())
    failures, relaxed, updated, extra_iteration = [], 0, 0, []
    for name, ours in record["after"].items():
        expected = official[name]
        error = np.abs(ours.astype(np.float64) - expected)
        if name in grads64:  # updated by this step's Adam
            updated += error.size
            is_roundoff = np.abs(grads64[name]) <= 1e-9 * scale
            relaxed += int((is_roundoff & (error > 1e-5)).sum())
            moved = np.maximum(np.abs(ours - before[name]), np.abs(expected - before[name]))
            bad = np.where(is_roundoff, moved > lr * (1 + 1e-3), error > 1e-5)
        else:
            bad = error > 1e-5
            if bad.any() and name.endswith("/u") and name.startswith(REPEATED_CALLS[step]):
                kernel = before[name[:-1] + "w"]
                np.testing.assert_allclose(ours, one_more_power_iteration(kernel, before[name]), atol=1e-5)
                bad = np.abs(one_more_power_iteration(kernel, ours) - expected) > 1e-5
                extra_iteration.append(name)
        if bad.any():
            failures.append(f"{name}: {int(bad.sum())} elements, max error {error.max():.2e}")
    assert not failures, failures
    assert relaxed <= 0.01 * updated, (relaxed, updated)  # the exemption decides for a handful of elements
    assert extra_iteration in ([], ["Q_content_prediction_head/fc1/u"]), extra_iteration
