"""GAWWN's GAN-CLS losses equal the official Torch training closures (reedscot/nips2016).

The official scripts cannot run here, so their loss code is transcribed to NumPy below, with
file and line citations (commit 6f53bb9 of reedscot/nips2016; torch/nn ``BCECriterion.lua`` at
1bcc74f). The transcription works on what the official D outputs, probabilities (its last
module is ``nn.Sigmoid``, main_cub_bbox.lua:373); tfcoord's D returns the logits before it.

Two levels:
1. the loss functions on hand-fed logits: values and gradients (the official ``df_do``) of
   each term, with its weight;
2. one training step of the model: D's gradient is the official ``df_do`` of the three terms
   pulled back through D, G's the official generator ``df_do`` pulled back through D and G,
   each network changed only by its own step, the text encoder frozen.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfcoord.config import load_config
from tfcoord.models import section_classes
from tfcoord.gan.losses import gan_cls_discriminator_loss as discriminator_loss
from tfcoord.gan.losses import gan_cls_generator_loss as generator_loss
from tfcoord.models.gawwn.model import Gawwn

# --- NumPy transcription of the official losses --------------------------------------------
EPS = 1e-12  # torch/nn BCECriterion.lua:3


def official_bce(output, target):
    """``BCECriterion:updateOutput`` (BCECriterion.lua:10-34), ``sizeAverage = true`` (line 7)."""
    return -np.sum(np.log(output + EPS) * target + np.log(1 - output + EPS) * (1 - target)) / output.size


def official_bce_backward(output, target):
    """``BCECriterion:updateGradInput`` (BCECriterion.lua:36-67): d(loss)/d(output)."""
    return -(target / (output + EPS) - (1 - target) / (1 - output + EPS)) / output.size


def sigmoid_backward(output, grad_output):
    """``nn.Sigmoid`` backward: from D's output (a probability) to the logit before it."""
    return grad_output * output * (1 - output)


def official_fdx(real, wrong, fake, cls_weight=0.5, real_label=1.0):
    """D's closure ``fDx`` on D's outputs (probabilities) for the three groups.

    main_cub_bbox.lua:464-511 (identical: main_cub_keypoints.lua:370-415, main_mhp.lua:440-485).
    Returns errD (line 507) and d(errD)/d(logit) of each group: the ``df_do`` handed to
    ``netD:backward``, times the sigmoid's derivative.
    """
    fake_label = 0.0  # main_cub_bbox.lua:98 (real_label = 1 at line 97; other values: tfcoord's smoothing)
    # train with real (lines 468-472): weight 1
    real_t = np.full_like(real, real_label)  # label:fill(real_label)
    err_real = official_bce(real, real_t)
    grad_real = official_bce_backward(real, real_t)
    # train with wrong (lines 474-483): value and gradient both times cls_weight; skipped at 0
    err_wrong, grad_wrong = 0.0, None
    if cls_weight > 0:
        wrong_t = np.full_like(wrong, fake_label)
        err_wrong = cls_weight * official_bce(wrong, wrong_t)  # line 479
        grad_wrong = official_bce_backward(wrong, wrong_t) * cls_weight  # df_do:mul(opt.cls_weight), line 481
    # train with fake (lines 492-505): value and gradient both times 1 - cls_weight
    fake_t = np.full_like(fake, fake_label)
    fake_weight = 1 - cls_weight  # line 502
    err_fake = official_bce(fake, fake_t) * fake_weight  # line 503
    grad_fake = official_bce_backward(fake, fake_t) * fake_weight  # df_do:mul(fake_weight), line 504
    err_d = err_real + err_fake + err_wrong  # line 507
    grads = [sigmoid_backward(real, grad_real), None if grad_wrong is None else sigmoid_backward(wrong, grad_wrong),
             sigmoid_backward(fake, grad_fake)]
    return err_d, grads


def official_fgx(fake):
    """G's closure ``fGx`` (main_cub_bbox.lua:514-529; main_cub_keypoints.lua:418-433).

    ``label:fill(real_label)`` (line 517) against D's output on the fake batch (``netD.output``,
    line 518, the last forward of fDx); errG (line 523) and d(errG)/d(logit) (line 524), which
    ``netD:updateGradInput`` pulls back to the image (line 525) and netG to its weights (526).
    """
    real_t = np.ones_like(fake)
    return official_bce(fake, real_t), sigmoid_backward(fake, official_bce_backward(fake, real_t))


def official_keypoint_fdx(real, fake):
    """The keypoint generator's D (main_gen_keypoints.lua:251-280): real and fake, weight 1 each."""
    err = official_bce(real, np.ones_like(real)) + official_bce(fake, np.zeros_like(fake))  # line 278
    return err, [sigmoid_backward(real, official_bce_backward(real, np.ones_like(real))),
                 sigmoid_backward(fake, official_bce_backward(fake, np.zeros_like(fake)))]


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


# --- 1. the loss functions on hand-fed logits -------------------------------------------------
def loss_and_grads(fn, *logits):
    """tfcoord's batch-mean loss and its gradient with respect to each logits group."""
    variables = [None if x is None else tf.constant(x, tf.float32) for x in logits]
    with tf.GradientTape() as tape:
        for v in variables:
            if v is not None:
                tape.watch(v)
        loss = tf.reduce_mean(fn(*variables))
    grads = tape.gradient(loss, [v for v in variables if v is not None])
    grads = iter(grads)
    return float(loss), [None if v is None else np.asarray(next(grads), np.float64) for v in variables]


LOGITS = np.random.default_rng(0).uniform(-4, 4, (3, 8))


@pytest.mark.parametrize("cls_weight", [0.5, 0.3, 0.0])
@pytest.mark.parametrize("real_label", [1.0, 0.9])
def test_discriminator_loss_equals_official_fdx_term_by_term(cls_weight, real_label):
    real, wrong, fake = LOGITS
    wrong = None if cls_weight == 0 else wrong  # the official script skips the wrong-text forward at 0
    loss, grads = loss_and_grads(lambda r, w, f: discriminator_loss(r, w, f, cls_weight, real_label),
                                 real, wrong, fake)
    expected, expected_grads = official_fdx(sigmoid(real), None if wrong is None else sigmoid(wrong), sigmoid(fake),
                                            cls_weight, real_label)
    assert loss == pytest.approx(expected, rel=1e-5)
    # The gradient with respect to each group's logits is that group's term alone: its target and weight.
    for name, got, want in zip(("real", "wrong", "fake"), grads, expected_grads):
        if want is None:
            assert got is None, name
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9, err_msg=name)


def test_generator_loss_equals_official_fgx():
    fake = LOGITS[2]
    loss, (grad,) = loss_and_grads(generator_loss, fake)
    expected, expected_grad = official_fgx(sigmoid(fake))
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-9)


def test_keypoint_critic_loss_equals_official_gen_keypoints_fdx():
    real, _, fake = LOGITS
    loss, (grad_real, grad_fake) = loss_and_grads(lambda r, f: discriminator_loss(r, None, f, cls_weight=0.0),
                                                  real, fake)
    expected, (want_real, want_fake) = official_keypoint_fdx(sigmoid(real), sigmoid(fake))
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(grad_real, want_real, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(grad_fake, want_fake, rtol=1e-4, atol=1e-9)


def test_matching_aware_term_needs_wrong_text_logits():
    with pytest.raises(ValueError, match="wrong-text"):
        discriminator_loss(tf.zeros(2), None, tf.zeros(2), cls_weight=0.5)


# --- 2. one training step of the model ---------------------------------------------------------
OVERRIDES = ["model.ngf=8", "model.ndf=8", "model.text_features=8", "model.keypoint_generator_width=8",
             "model.image_size=32", "text.embedding_dim=16", "text.encoder=char-cnn-gru", "text.cnn_channels=[8, 8, 8]",
             "train.batch_size=4", "log.progress_bar=false", "optim.d_lr_ratio=1", "model.d_joint_batch=false",
             # weights that tell the three D terms apart, and the paper's targets
             "loss.cls_weight=0.3", "loss.real_label=1.0"]
BATCH = 4


class RecordingOptimizer:
    """Records the gradients and variables handed to the optimizer, and every network's weights then."""

    def __init__(self, optimizer, name, model, log):
        self.optimizer, self.name, self.model, self.log = optimizer, name, model, log

    def apply_gradients(self, pairs):
        pairs = list(pairs)
        self.log.append({"name": self.name, "grads": [np.asarray(g) for g, _ in pairs],
                         "variables": [v for _, v in pairs], "weights": snapshot(self.model)})
        self.optimizer.apply_gradients(pairs)


def snapshot(model):
    return {name: [np.array(w) for w in net.trainable_weights] for name, net in model.network_items().items()}


def restore(network, weights):
    for variable, value in zip(network.trainable_weights, weights):
        variable.assign(value)


@pytest.fixture(scope="module")
def setup():
    from tfcoord.data import make_dataset

    config = load_config("gawwn", section_classes("gawwn"), preset="tiny", overrides=OVERRIDES)
    model = Gawwn(config)
    model.build()
    batch = next(iter(make_dataset("synthetic-birds", image_size=model.image_size(), batch_size=BATCH, seed=0)))
    batch = {**batch, **model.step_inputs(1, BATCH)}
    return model, batch, snapshot(model)


def run_step(model, batch, initial, **flags):
    """One eager training step from the initial weights with the given ``model`` flags; the records."""
    for name, net in model.network_items().items():
        restore(net, initial[name])
    saved_flags = {key: getattr(model.config.model, key) for key in flags}
    for key, value in flags.items():
        setattr(model.config.model, key, value)
    log = []
    originals = {}
    for key in ("d_optimizer", "g_optimizer", "kd_optimizer", "kg_optimizer"):
        originals[key] = getattr(model, key)
        setattr(model, key, RecordingOptimizer(originals[key], key, model, log))
    try:
        losses = model.train_step(batch, BATCH)
    finally:
        for key, value in originals.items():
            setattr(model, key, value)
        for key, value in saved_flags.items():
            setattr(model.config.model, key, value)
    return {record["name"]: record for record in log}, [r["name"] for r in log], losses, snapshot(model)


def pulled_back(outputs, variables, output_gradients, tape):
    return [np.asarray(g) for g in tape.gradient(outputs, variables, output_gradients=output_gradients)]


def discriminate(model, joint, images, conditions, texts):
    d = model.discriminator
    if not joint:
        return [d([i, c, t], training=True) for i, c, t in zip(images, conditions, texts)]
    out = d([tf.concat(list(g), 0) for g in (images, conditions, texts)], training=True)
    return tf.split(out, len(images), 0)


def assert_same(got, want, what, atol=1e-3):
    """Equal up to float32 noise; ``atol`` is relative to the largest gradient. (The gradients of biases
    followed by a batch norm are zero in exact arithmetic and round-off, up to ~2e-4 of it, in float32,
    varying from run to run with the threads' summation order. Changing a loss term's weight moves the
    largest gradients by far more than 1e-3 of them.)"""
    assert len(got) == len(want), what
    scale = max(np.abs(w).max() for w in want)
    assert scale > 0, what
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=atol * scale, err_msg=what)


def assert_equal_weights(got, want, what):
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want)), what


@pytest.mark.parametrize("flags", [{}, {"d_joint_batch": True, "reuse_d_forward": True}],
                         ids=["official-batches", "joint-batch-reuse-d"])
def test_one_step_applies_each_gan_cls_term_to_its_own_networks(setup, flags):
    model, batch, initial = setup
    records, order, losses, final = run_step(model, batch, initial, **flags)
    joint, reuse = flags.get("d_joint_batch", False), flags.get("reuse_d_forward", False)
    cls_weight = model.config.loss.cls_weight
    assert order == ["d_optimizer", "g_optimizer", "kd_optimizer", "kg_optimizer"]
    G, D = model.generator, model.discriminator
    ids = lambda variables: [id(v) for v in variables]  # noqa: E731

    # Each optimizer got exactly its own network's trainable variables.
    assert ids(records["d_optimizer"]["variables"]) == ids(D.trainable_variables)
    assert ids(records["g_optimizer"]["variables"]) == ids(G.trainable_variables)
    assert ids(records["kd_optimizer"]["variables"]) == ids(model.keypoint_critic.trainable_variables)
    assert ids(records["kg_optimizer"]["variables"]) == ids(model.keypoint_completer.trainable_variables)

    # Nothing changed before D's update; D's update changed D only; G's update changed G only.
    for name, weights in records["d_optimizer"]["weights"].items():
        assert_equal_weights(weights, initial[name], name)
    at_g = records["g_optimizer"]["weights"]
    assert_equal_weights(at_g["generator"], initial["generator"], "G before its step")
    assert max(np.abs(a - b).max() for a, b in zip(at_g["discriminator"], initial["discriminator"])) > 0
    assert_equal_weights(final["discriminator"], at_g["discriminator"], "D after G's step")
    assert max(np.abs(a - b).max() for a, b in zip(final["generator"], initial["generator"])) > 0
    # The text encoder is frozen, as in the official scripts (precomputed embeddings; main_mhp.lua
    # loads netT but optimises only netD and netG, lines 418-419).
    assert_equal_weights(final["text_encoder"], initial["text_encoder"], "text encoder")
    # The keypoint GAN leaves the image GAN alone, and vice versa.
    assert_equal_weights(final["generator"], records["kd_optimizer"]["weights"]["generator"], "G after kp step")
    assert_equal_weights(records["kd_optimizer"]["weights"]["keypoint_critic"], initial["keypoint_critic"], "D_k")
    assert_equal_weights(records["kg_optimizer"]["weights"]["keypoint_completer"], initial["keypoint_completer"],
                         "G_k before its step")

    # D's gradient: the official df_do of the three terms (with their weights), pulled back through D.
    for name in ("generator", "discriminator", "keypoint_critic", "keypoint_completer"):
        restore(model.network_items()[name], initial[name])
    text = model._mean_caption_embedding(batch, training=False)
    wrong_text = tf.gather(text, batch["wrong_index"])
    box, real, z = batch["bbox"], batch["image"], batch["z"]
    with tf.GradientTape(persistent=True) as tape:
        fake = G([z, text, box], training=True)
        logits = discriminate(model, joint, (real, real, fake), (box,) * 3, (text, wrong_text, text))
    err_d, dlogits = official_fdx(*(sigmoid(x) for x in logits), cls_weight=cls_weight)
    assert float(losses["d_loss"]) == pytest.approx(err_d, rel=1e-5)
    assert_same(records["d_optimizer"]["grads"], pulled_back(logits, D.trainable_variables,
                                                             [tf.constant(g, tf.float32) for g in dlogits], tape),
                "D gradient")
    if reuse:
        # Quirk W2: errG comes from netD.output, D's output on the fake batch before D's update.
        err_g, dlogit = official_fgx(sigmoid(logits[2]))
        want = pulled_back(logits[2], G.trainable_variables, tf.constant(dlogit, tf.float32), tape)
    else:
        # Paper: a fresh D forward with the updated D.
        restore(D, at_g["discriminator"])
        with tf.GradientTape() as g_tape:
            fake = G([z, text, box], training=True)
            fake_logits = (discriminate(model, True, (real, fake), (box,) * 2, (text, text))[1] if joint
                           else D([fake, box, text], training=True))
        err_g, dlogit = official_fgx(sigmoid(fake_logits))
        want = pulled_back(fake_logits, G.trainable_variables, tf.constant(dlogit, tf.float32), g_tape)
    del tape
    assert float(losses["g_loss"]) == pytest.approx(err_g, rel=1e-5)
    assert_same(records["g_optimizer"]["grads"], want, "G gradient")
    if not joint and not reuse:
        check_keypoint_gan(model, batch, initial, records, losses)


def check_keypoint_gan(model, batch, initial, records, losses):
    """The keypoint generator's step: the official real/fake loss of main_gen_keypoints.lua."""
    completer, critic = model.keypoint_completer, model.keypoint_critic
    for name in ("keypoint_critic", "keypoint_completer"):
        restore(model.network_items()[name], initial[name])
    text = model._mean_caption_embedding(batch, training=False)
    real = model._keypoints(batch)
    given = real * tf.cast(batch["keypoint_keep"][..., None], real.dtype)
    with tf.GradientTape() as tape:
        fake = completer([batch["keypoint_z"], text, given], training=True)
        logits = [critic([real, text], training=True), critic([fake, text], training=True)]
    err_d, dlogits = official_keypoint_fdx(*(sigmoid(x) for x in logits))
    assert float(losses["keypoint_d_loss"]) == pytest.approx(err_d, rel=1e-5)
    assert_same(records["kd_optimizer"]["grads"],
                pulled_back(logits, critic.trainable_variables, [tf.constant(g, tf.float32) for g in dlogits], tape),
                "D_k gradient")
    restore(critic, records["kg_optimizer"]["weights"]["keypoint_critic"])
    with tf.GradientTape() as tape:
        fake_logits = critic([completer([batch["keypoint_z"], text, given], training=True), text], training=True)
    err_g, dlogit = official_fgx(sigmoid(fake_logits))
    assert float(losses["keypoint_g_loss"]) == pytest.approx(err_g, rel=1e-5)
    assert_same(records["kg_optimizer"]["grads"],
                pulled_back(fake_logits, completer.trainable_variables, tf.constant(dlogit, tf.float32), tape),
                "G_k gradient")


def test_wrong_text_is_a_random_permutation_of_the_batch(setup):
    model = setup[0]
    # main_cub_bbox.lua:456-459: input_txt_shuf[n] = input_txt[randperm[n]]
    for step in range(3):
        index = np.asarray(model.step_inputs(step, 16)["wrong_index"])
        np.testing.assert_array_equal(np.sort(index), np.arange(16))
