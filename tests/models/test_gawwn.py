"""GAWWN: the paper's networks, keypoint maps and completion, GAN-CLS, text encoders, train and generate."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import run_module
from tfcoord.config import load_config
from tfcoord.data.gawwn.captions import tokenize_all
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.gawwn import networks
from tfcoord.models.gawwn.blocks import keypoint_maps
from tfcoord.models.gawwn.config import GawwnConfig
from tfcoord.gan.losses import bce
from tfcoord.models.gawwn.model import Gawwn
from tfcoord.models.text_encoder.loss import joint_embedding_loss
from tfcoord.models.text_encoder.networks import CharCnnGru, HashedNgramEncoder, steps_after_cnn

TINY = ["model.ngf=8", "model.ndf=8", "model.text_features=8", "model.keypoint_generator_width=8",
        "text.embedding_dim=16", "train.batch_size=4", "log.num_samples=4", "log.progress_bar=false"]


def params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def tiny_model(*overrides, build=True):
    config = load_config("gawwn", section_classes("gawwn"), preset="tiny", overrides=TINY + list(overrides))
    model = Gawwn(config)
    if build:
        model.build()
    return model


@pytest.mark.parametrize("name, build, expected", [
    ("bounding-box G, CUB", lambda: networks.box_generator(GawwnConfig(ngf=128), 1024), 73_545_699),
    ("bounding-box D, ndf 128", lambda: networks.box_discriminator(GawwnConfig(ndf=128), 1024), 16_763_137),
    ("bounding-box D, ndf 64", lambda: networks.box_discriminator(GawwnConfig(ndf=64), 1024), 4_629_697),
    ("keypoint G, CUB", lambda: networks.keypoint_generator(GawwnConfig(), 1024, 15), 26_471_043),
    ("keypoint G, MHP", lambda: networks.keypoint_generator(GawwnConfig(variant="mhp"), 1024, 16), 27_281_795),
    ("keypoint D, ndf 128", lambda: networks.keypoint_discriminator(GawwnConfig(ndf=128), 1024, 15), 14_667_905),
    ("keypoint D, ndf 64", lambda: networks.keypoint_discriminator(GawwnConfig(ndf=64), 1024, 15), 3_860_609),
    ("keypoint generator G", lambda: networks.keypoint_completer(GawwnConfig(), 1024, 15), 2_715_949),
    ("keypoint generator D", lambda: networks.keypoint_critic(GawwnConfig(), 1024, 15), 946_177),
])
def test_parameter_counts_match_models_md(name, build, expected):
    assert params(build()) == expected, name


@pytest.mark.parametrize("size", [32, 64, 128])
def test_generators_and_discriminators_fit_every_image_size(size):
    cfg = GawwnConfig(image_size=size, ngf=8, ndf=8, text_features=8)
    z, text = np.zeros((2, 100), np.float32), np.zeros((2, 16), np.float32)
    box = np.array([[0.1, 0.2, 0.7, 0.9]] * 2, np.float32)
    image = np.asarray(networks.box_generator(cfg, 16)([z, text, box]))
    assert image.shape == (2, size, size, 3)
    assert networks.box_discriminator(cfg, 16)([image, box, text]).shape == (2,)
    maps = np.zeros((2, 16, 16, 15), np.float32)
    image = np.asarray(networks.keypoint_generator(cfg, 16, 15)([z, text, maps]))
    assert image.shape == (2, size, size, 3)
    assert networks.keypoint_discriminator(cfg, 16, 15)([image, maps, text]).shape == (2,)


def test_resize_upsampling_repeats_pixels_and_keeps_the_networks_shapes():
    from tfcoord.models.gawwn.blocks import nearest_up2 as _nearest_up2

    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(_nearest_up2(tf.constant(x)), x.repeat(2, axis=1).repeat(2, axis=2))
    cfg = GawwnConfig(image_size=64, ngf=8, ndf=8, text_features=8, keypoint_generator_width=8, upsample="resize")
    box_g, kp_g = networks.box_generator(cfg, 16), networks.keypoint_generator(cfg, 16, 15)
    assert box_g.output_shape == kp_g.output_shape == (None, 64, 64, 3)
    names = [layer.name for layer in box_g.layers if "to_rgb" in layer.name]
    assert names and all(type(box_g.get_layer(n)).__name__ == "Conv2D" for n in names)  # not transposed


def test_keypoint_maps_set_one_cell_per_visible_part():
    keypoints = np.array([[[0.0, 0.0, 1.0], [0.5, 0.25, 1.0], [0.999, 0.03, 1.0], [0.5, 0.5, 0.05]]], np.float32)
    maps = np.asarray(keypoint_maps(keypoints))
    assert maps.shape == (1, 16, 16, 4) and maps.sum() == 3
    # row = clamp(floor(16 y + 0.5), 1, 16) - 1, likewise the column (models.md §3.2)
    assert maps[0, 0, 0, 0] == 1 and maps[0, 3, 7, 1] == 1 and maps[0, 0, 15, 2] == 1
    assert maps[..., 3].sum() == 0  # visibility <= 0.1: not drawn


def test_conditional_keypoint_generation_keeps_given_parts_and_fills_the_rest():
    completer = networks.keypoint_completer(GawwnConfig(keypoint_generator_width=8), 16, 15)
    rng = np.random.default_rng(0)
    given = np.zeros((6, 15, 3), np.float32)
    for row, count in enumerate((0, 1, 2, 5, 14, 15)):
        parts = rng.choice(15, count, replace=False)
        given[row, parts] = np.concatenate([rng.uniform(0, 1, (count, 2)), np.ones((count, 1))], axis=1)
    z, text = rng.normal(size=(6, 100)).astype(np.float32), rng.normal(size=(6, 16)).astype(np.float32)
    for training in (False, True):
        out = np.asarray(completer([z, text, given], training=training))
        mask = given[..., 2] == 1
        np.testing.assert_array_equal(out[mask], given[mask])  # bit for bit
        assert np.all((out[~mask] >= 0) & (out[~mask] <= 1))
        assert np.ptp(out[~mask]) > 0  # really generated, not a constant


def test_gan_cls_loss_is_the_matching_aware_binary_cross_entropy():
    logits = tf.constant([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(bce(1.0, logits), -np.log(1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0])))), rtol=1e-5)
    np.testing.assert_allclose(bce(0.0, logits), -np.log(1 - 1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0])))),
                               rtol=1e-5)


def test_training_text_is_the_mean_of_random_captions_never_the_held_out_one():
    model = tiny_model("text.num_captions=2", "text.num_holdout=1", build=False)
    model.build_networks()
    captions = ["a red bird.", "a blue bird.", "a green bird.", "held out caption."]
    tokens = tokenize_all(captions)
    batch = {"captions": tf.constant(np.stack([np.pad(tokens, ((0, 6), (0, 0)))] * 2)),
             "num_captions": tf.constant([4, 2]), "caption_keys": tf.constant(np.random.default_rng(0).uniform(
                 size=(2, 10)).astype(np.float32))}
    text = np.asarray(model._mean_caption_embedding(batch, training=False))
    encoded = np.asarray(model.text_encoder(tokens))
    pairs = [encoded[[a, b]].mean(0) for a in range(3) for b in range(a + 1, 3)]
    assert min(np.abs(text[0] - p).max() for p in pairs) < 1e-5  # two of the first three, never the fourth
    np.testing.assert_allclose(text[1], encoded[0], atol=1e-5)  # 2 captions, 1 held out: only the first


def test_quirk_w4_undoes_the_left_right_swap_of_flipped_images():
    model = tiny_model("model.flip_swaps_lr=false", build=False)
    keypoints = np.zeros((2, 15, 3), np.float32)
    keypoints[:, 6] = (0.3, 0.4, 1.0)  # left_eye
    batch = {"keypoints": tf.constant(keypoints), "flipped": tf.constant([False, True])}
    out = np.asarray(model._keypoints(batch))
    assert out[0, 6, 2] == 1 and out[1, 10, 2] == 1 and out[1, 6, 2] == 0  # right_eye on the flipped one
    assert np.array_equal(np.asarray(tiny_model(build=False)._keypoints(batch)), keypoints)


def test_hashed_ngram_encoder_is_fixed_and_binds_colours_to_parts():
    encoder = HashedNgramEncoder(128)
    captions = ["a bird with a red crown and blue wings.", "a bird with a blue crown and red wings.",
                "a bird with a red crown and blue wings."]
    out = np.asarray(encoder(tokenize_all(captions)))
    np.testing.assert_array_equal(out[0], out[2])
    assert np.abs(out[0] - out[1]).max() > 0.5  # same words, other bindings
    np.testing.assert_array_equal(out, np.asarray(HashedNgramEncoder(128)(tokenize_all(captions))))


def test_char_cnn_gru_reduces_201_characters_to_8_steps():
    assert steps_after_cnn(201) == 8
    encoder = CharCnnGru(32, (16, 16, 16))
    out = np.asarray(encoder(tokenize_all(["a small bird.", "another bird with wings."])))
    assert out.shape == (2, 32) and np.abs(out[0] - out[1]).max() > 1e-3


def test_joint_embedding_loss_ignores_same_class_pairs_and_vanishes_with_margin():
    image = np.eye(3, dtype=np.float32) * 2.0
    loss, correct = joint_embedding_loss(image, image, np.array([0, 1, 2]))
    np.testing.assert_allclose(loss, 0.0)  # own score 4, others 0: margin 1 met
    np.testing.assert_array_equal(correct, 1.0)
    text = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]], np.float32)
    loss, _ = joint_embedding_loss(image, text, np.array([0, 0, 2]))  # rows 0 and 1 share a class
    loss = np.asarray(loss)
    # row 1: image (0,2,0) scores 0 with its text and 0 with class 2's: hinge 1 each way
    assert loss[0] == pytest.approx(0.0) and loss[1] == pytest.approx(2 / 3) and loss[2] == pytest.approx(0.0)


def test_train_step_updates_every_network():
    model = tiny_model()
    from tfcoord.data import make_dataset

    batch = next(iter(make_dataset("synthetic-birds", image_size=model.image_size(), batch_size=4, seed=0)))
    batch = {**batch, **model.step_inputs(1, 4)}
    before = {name: [w.numpy().copy() for w in net.trainable_weights] for name, net in model.network_items().items()}
    losses = {k: float(v) for k, v in tf.function(lambda b: model.train_step(b, 4))(batch).items()}
    model.after_step()  # the trainer's cross-replica update: G's EMA (on in the tiny preset)
    assert set(losses) >= {"d_loss", "g_loss", "d_real", "d_wrong", "d_fake", "keypoint_d_loss", "keypoint_g_loss"}
    assert all(math.isfinite(v) for v in losses.values())
    for name, net in model.network_items().items():
        if before[name]:
            assert max(np.abs(a - w.numpy()).max() for a, w in zip(before[name], net.trainable_weights)) > 0, name


def test_generator_ema_follows_the_trained_generator_and_draws_the_samples():
    model = tiny_model("optim.g_ema_decay=0.5")
    from tfcoord.data import make_dataset

    assert "generator_ema" in model.network_items() and model.sampling_generator is model.generator_ema
    start = [w.numpy().copy() for w in model.generator.weights]
    assert all(np.array_equal(a, e.numpy()) for a, e in zip(start, model.generator_ema.weights))
    batch = next(iter(make_dataset("synthetic-birds", image_size=model.image_size(), batch_size=4, seed=0)))
    batch = {**batch, **model.step_inputs(1, 4)}
    tf.function(lambda b: model.train_step(b, 4))(batch)
    model.after_step()
    decay = 2.0 / 11.0  # min(0.5, (1 + 1) / (10 + 1)): the warm-up after G's first update
    for a, w, e in zip(start, model.generator.weights, model.generator_ema.weights):
        np.testing.assert_allclose(e.numpy(), decay * a + (1 - decay) * w.numpy(), rtol=1e-5, atol=1e-6)
    z, text = model.sampler.latents(0, 2), np.zeros((2, model.text_dim), np.float32)
    box = np.array([[0.2, 0.1, 0.7, 0.6]] * 2, np.float32)
    np.testing.assert_allclose(model.sampler.generate_from_box(z, text, box),
                               model.generator_ema([z, text, box], training=False), atol=1e-5)
    paper = load_config("gawwn", section_classes("gawwn"), preset="cub_bbox")
    assert paper.optim.g_ema_decay == 0.0 and Gawwn(paper).generator_ema is None  # off in the paper presets


def test_generation_refuses_bad_boxes_and_missing_generators():
    model = tiny_model(build=False)
    model.build_networks()
    z, text = model.sampler.latents(0, 1), np.zeros((1, 16), np.float32)
    with pytest.raises(UserError, match="inside the image"):
        model.sampler.generate_from_box(z, text, [[0.1, 0.2, 1.3, 0.5]])
    with pytest.raises(UserError, match="positive width"):
        model.sampler.generate_from_box(z, text, [[0.5, 0.2, 0.4, 0.6]])
    with pytest.raises(UserError, match="conditioned on box"):
        model.sampler.generate_from_keypoints(z, text, np.zeros((1, 15, 3)))
    assert model.sampler.generate_from_box(z, text, [[0.1, 0.2, 0.6, 0.9]]).shape == (1, 64, 64, 3)


def test_serving_signatures_equal_the_model_and_convert_to_tflite(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model = tiny_model("model.conditioning=keypoints", build=False)
    model.build_networks()
    functions = model.serving_functions()
    assert set(functions) == {"generate_patch", "generate_from_keypoints", "complete_keypoints", "encode_text"}
    assert model.serving_description()["parts"][6] == "left_eye"
    rng = np.random.default_rng(0)
    z, text = model.sampler.latents(1, 2), rng.normal(size=(2, 16)).astype(np.float32)
    keypoints = np.zeros((2, 15, 3), np.float32)
    keypoints[:, :5] = np.concatenate([rng.uniform(0, 1, (2, 5, 2)), np.ones((2, 5, 1))], -1)
    rgb = functions["generate_patch"](z=tf.constant(z), text_embedding=tf.constant(text),
                                      keypoints=tf.constant(keypoints))["rgb"]
    np.testing.assert_allclose(rgb, model.sampler.generate_from_keypoints(z, text, keypoints), atol=1e-6)
    done = functions["complete_keypoints"](z=tf.constant(z), text_embedding=tf.constant(text),
                                           keypoints=tf.constant(keypoints))["keypoints"]
    np.testing.assert_array_equal(np.asarray(done)[:, :5], keypoints[:, :5])
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        functions["generate_patch"](z=tf.constant(z * np.nan), text_embedding=tf.constant(text),
                                    keypoints=tf.constant(keypoints))
    with pytest.raises(UserError, match="whole 64x64"):
        model.serving_functions(patch_size=32)

    box_model = tiny_model(build=False)
    box_model.build_networks()
    module = tf.Module()
    module.variables_ = [w.value for w in box_model.sampling_generator.weights]
    fn = box_model.serving_functions()["generate_from_box"]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    ops_used = {d["op_name"] for d in interpreter._get_ops_details()}
    assert "BATCH_MATMUL" in ops_used and not ops_used & {"GATHER", "READ_VARIABLE", "VAR_HANDLE", "CUSTOM"}, ops_used
    box = np.array([[0.2, 0.1, 0.7, 0.6]], np.float32)
    runner = interpreter.get_signature_runner()
    out = runner(z=z[:1], text_embedding=text[:1], box=box)["rgb"]
    np.testing.assert_allclose(out, box_model.sampler.generate_from_box(z[:1], text[:1], box), atol=1e-4)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """``python -m tfcoord.train --model gawwn`` with only the step count, the folder and smaller widths."""
    run = tmp_path_factory.mktemp("gawwn") / "run"
    result = run_module("tfcoord.train", "--model", "gawwn", "--steps", "2", "--out", run,
                        *[arg for item in TINY for arg in ("--set", item)])
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_default_command_trains_on_synthetic_birds_and_writes_samples_and_checkpoint(trained_run):
    config = (trained_run / "config.yaml").read_text()
    assert "synthetic-birds" in config and "preset: tiny" in config
    assert (trained_run / "samples" / "step_00000002.png").is_file()
    assert any(p.name.startswith("ckpt-2") for p in (trained_run / "checkpoints").iterdir())
    grid = np.asarray(Image.open(trained_run / "samples" / "step_00000002.png"))
    assert grid.shape == (2 * 64 + 2, 2 * 64 + 2, 3)
    # The sample rows draw their box in magenta.
    assert (grid == [255, 0, 255]).all(-1).sum() > 50


def generate(argv):
    from tfcoord.generate import main

    return main([str(a) for a in argv])


def test_generate_a_captioned_bird_in_a_box_and_the_demos(trained_run, tmp_path):
    out = tmp_path / "out"
    generate(["--run", trained_run, "--caption", "a small bird with a red crown, blue wings and a white belly.",
              "--bbox", "0.1,0.2,0.5,0.6", "--num", "3", "--out", out])
    record = json.loads((out / "conditions.json").read_text())
    assert [i["bbox_xywh"] for i in record["images"]] == [pytest.approx([0.1, 0.2, 0.5, 0.6])] * 3
    first = np.asarray(Image.open(out / "seed0_0000.png"))
    assert first.shape == (64, 64, 3)
    generate(["--run", trained_run, "--caption", "a small bird with a red crown, blue wings and a white belly.",
              "--bbox", "0.1,0.2,0.5,0.6", "--num", "3", "--out", tmp_path / "again"])
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "again" / "seed0_0000.png")))
    for demo in ("move", "stretch", "shrink", "text-only"):
        generate(["--run", trained_run, "--caption", "a red bird.", "--demo", demo, "--num", "4", "--out", out])
        boxes = [i["bbox_xywh"] for i in json.loads((out / f"{demo}_conditions.json").read_text())["images"]]
        assert len(boxes) == 4 and all(0 <= x and 0 <= y and x + w <= 1 + 1e-6 and y + h <= 1 + 1e-6
                                       for x, y, w, h in boxes)
        if demo == "move":
            assert boxes[0][0] < boxes[-1][0] and boxes[0][2] == pytest.approx(boxes[-1][2])
    for argv, message in ((["--bbox", "0.6,0.2,0.5,0.5"], "inside the image"), (["--bbox", "0.1,0.2,0.5"], "4 comma"),
                          (["--keypoints", "crown=0.5,0.5"], "pass --bbox"), (["--demo", "move-keypoints"],
                                                                                "keypoint run")):
        with pytest.raises(UserError, match=message):
            generate(["--run", trained_run, "--caption", "a bird.", "--out", out, *argv])
    with pytest.raises(UserError, match="what to draw"):
        generate(["--run", trained_run, "--out", out])


@pytest.fixture(scope="module")
def keypoint_run(tmp_path_factory):
    """A keypoint run directory holding untrained networks (generation needs no training)."""
    import keras

    from tfcoord.training.checkpoints import CheckpointKeeper

    run = tmp_path_factory.mktemp("gawwn_kp") / "run"
    model = tiny_model("model.conditioning=keypoints", build=False)
    keras.utils.set_random_seed(0)
    model.build_networks()
    run.mkdir()
    model.config.save(run / "config.yaml")
    CheckpointKeeper(run / "checkpoints", step=tf.Variable(1, dtype=tf.int64), **model.network_items()).save(1)
    return run


def test_generate_from_given_parts_fills_in_the_rest(keypoint_run, tmp_path):
    out = tmp_path / "out"
    generate(["--run", keypoint_run, "--caption", "a bird with a red crown.", "--keypoints", "crown=0.4,0.3",
              "beak=0.55,0.35", "--num", "2", "--out", out])
    images = json.loads((out / "conditions.json").read_text())["images"]
    for image in images:
        assert image["keypoints"]["crown"] == pytest.approx([0.4, 0.3]) and image["keypoints"]["beak"] == \
            pytest.approx([0.55, 0.35])
        assert all(0 <= v <= 1 for xy in image["keypoints"].values() for v in xy)
    generate(["--run", keypoint_run, "--caption", "a red bird.", "--demo", "move-keypoints", "--keypoints",
              "crown=0.4,0.3", "--num", "3", "--out", out])
    frames = json.loads((out / "move-keypoints_conditions.json").read_text())["images"]
    assert frames[0]["keypoints"]["crown"][0] < frames[-1]["keypoints"]["crown"][0]
    assert frames[0]["keypoints"]["crown"][1] == pytest.approx(frames[-1]["keypoints"]["crown"][1])
    generate(["--run", keypoint_run, "--caption", "a red bird.", "--demo", "text-only", "--num", "2", "--out", out])
    assert (out / "text-only_seed0_grid.png").is_file()
    for argv, message in ((["--keypoints", "krown=0.4,0.3"], "did you mean 'crown'"),
                          (["--keypoints", "crown=1.4,0.3"], r"in \[0, 1\]"), (["--bbox", "0.1,0.1,0.5,0.5"],
                                                                              "conditioned on parts")):
        with pytest.raises(UserError, match=message):
            generate(["--run", keypoint_run, "--caption", "a bird.", "--out", out, *argv])
