"""train.precision: mixed_bfloat16 and mixed_float16 train every model like float32, with float32 master weights.

Every model trains 3 steps (batch 2, tiny presets, the step variants of steps 1-3, so CIPS's and
InfinityGAN's lazy R1 and path-length updates run) in each precision from the same initial weights and
data. Checkpoints restore across precisions; generation and SavedModel export take --precision.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.config import load_config
from tfcoord.data import make_dataset
from tfcoord.errors import UserError
from tfcoord.models import model_class, section_classes
from tfcoord.training.checkpoints import CheckpointKeeper, variable_map
from tfcoord.training.precision import INITIAL_LOSS_SCALE, PRECISIONS, compute_dtype, scaled_gradients

from conftest import make_run, run_module

STEPS, BATCH = 3, 2
# Smaller than the presets where they allow it, so 12 short runs stay quick on 2 CPU cores.
OVERRIDES = {
    "cocogan": ["model.ngf=8", "model.ndf=8"],
    "cips": [],
    "gawwn": ["model.ngf=8", "model.ndf=8", "model.keypoint_generator_width=8", "model.text_features=16"],
    "infinitygan": [],
}
MIXED = ("mixed_bfloat16", "mixed_float16")


def config(model_type, precision, *extra):
    return load_config(model_type, section_classes(model_type), preset="tiny",
                       overrides=[f"train.precision={precision}", f"train.batch_size={BATCH}",
                                  *OVERRIDES[model_type], *extra])


def build(model_type, precision, *extra):
    keras.utils.set_random_seed(0)  # the same initial weights in every precision
    model = model_class(model_type)(config(model_type, precision, *extra))
    model.build()
    return model


def batches(model):
    cfg = model.config
    data = make_dataset(cfg.data.source, image_size=model.image_size(), batch_size=BATCH, seed=0, start_index=0,
                        training=True, preprocessing=cfg.data)
    return iter(data)


def train(model, steps=STEPS, first_step=1):
    """``steps`` training steps as the trainer runs them (step variants, after_step); the losses of each."""
    data = batches(model)
    history = []
    for step in range(first_step, first_step + steps):
        variant = model.step_variant(step)
        kwargs = {} if variant is None else {"variant": variant}
        losses = model.train_step({**next(data), **model.step_inputs(step, BATCH)}, BATCH, **kwargs)
        model.after_step()
        history.append({name: float(value) for name, value in losses.items()})
    return history


@pytest.fixture(scope="module")
def runs():
    """{(model_type, precision): (model, losses per step)}, trained once for the module."""
    results = {}
    previous_policy = keras.config.dtype_policy().name
    for model_type in OVERRIDES:
        for precision in PRECISIONS:
            model = build(model_type, precision)
            results[model_type, precision] = (model, train(model))
            assert keras.config.dtype_policy().name == previous_policy  # no policy leaks out of a build
    return results


@pytest.mark.parametrize("model_type", list(OVERRIDES))
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_trains_with_float32_master_weights(runs, model_type, precision):
    model, history = runs[model_type, precision]
    for step, losses in enumerate(history, 1):
        assert all(math.isfinite(v) for v in losses.values()), (step, losses)
    networks = model.network_items()
    layers = [layer for network in networks.values() for layer in network._flatten_layers(include_self=False)]
    computing = {layer.compute_dtype for layer in layers if layer.weights}
    # Every layer with weights computes in the requested dtype, except the coordinate layers CIPS keeps
    # in float32 (a bfloat16 coordinate rounds past the embedding table's last row).
    kept = {layer.name for layer in layers if layer.weights and layer.compute_dtype != compute_dtype(precision)}
    assert compute_dtype(precision) in computing
    assert kept <= ({"fourier", "embedding"} if model_type == "cips" else set()), kept
    checkpointed = variable_map(model.checkpoint_items())
    floats = {key: v.dtype for key, v in checkpointed.items() if v.dtype.is_floating}
    assert set(floats.values()) == {tf.float32}, {k: d for k, d in floats.items() if d != tf.float32}
    for name, network in networks.items():  # samples and exports come from float32 images
        if name.startswith("generator") and model_type == "cips":
            rgb = network(tf.zeros([1, 64]), tf.zeros([1, 4, 4, 2]))
            assert rgb.dtype == tf.float32


# Tolerances, relative to the float32 loss (plus 0.02 absolute for losses near 0). The first D loss
# is computed on the initial weights: only the forward pass's rounding separates it from float32
# (bfloat16 keeps 8 significant bits, 0.4 %, float16 11 bits, 0.05 %; through ~10 layers and batch
# statistics of 2 samples, up to a few per cent). After that each precision trains its own weights:
# Adam's first steps move every weight by about lr * sign(gradient), so a gradient element whose sign
# differs moves its weight by 2 lr and the later losses drift apart. Measured worst / mean relative
# difference over every logged loss of the 3 steps: CIPS 0.27 / 0.06 (bfloat16), InfinityGAN 0.08 /
# 0.02, GAWWN 0.2 / 0.04. COCO-GAN is chaotic at batch 2 (its spatial loss, weighted 100, passes
# through batch norms of 2 samples): 0.75 / 0.28, and in float16 its D skips its first steps while the
# loss scale backs off (see test_float16_keeps_its_loss_scale). Broken precision (NaN, skipped updates,
# an untrained network) is far outside these bounds.
FIRST_LOSS_TOLERANCE = {"mixed_bfloat16": 0.05, "mixed_float16": 0.03}
LATER_TOLERANCE = {"cocogan": (1.2, 0.4), "cips": (0.45, 0.1), "gawwn": (0.45, 0.1), "infinitygan": (0.3, 0.05)}


def relative_difference(value, reference):
    return abs(value - reference) / (abs(reference) + 0.02)


@pytest.mark.parametrize("model_type", list(OVERRIDES))
@pytest.mark.parametrize("precision", MIXED)
def test_mixed_losses_are_close_to_float32(runs, model_type, precision):
    reference = runs[model_type, "float32"][1]
    history = runs[model_type, precision][1]
    first = "d_loss" if "d_loss" in reference[0] else next(iter(reference[0]))
    assert relative_difference(history[0][first], reference[0][first]) < FIRST_LOSS_TOLERANCE[precision], (
        history[0][first], reference[0][first])
    differences = {(step, name): relative_difference(history[step][name], value)
                   for step in range(STEPS) for name, value in reference[step].items()}
    worst, mean = max(differences, key=differences.get), np.mean(list(differences.values()))
    worst_bound, mean_bound = LATER_TOLERANCE[model_type]
    assert differences[worst] < worst_bound, (worst, history[worst[0]][worst[1]], reference[worst[0]][worst[1]])
    assert mean < mean_bound, mean


@pytest.mark.parametrize("model_type", list(OVERRIDES))
def test_float16_keeps_its_loss_scale(runs, model_type):
    """Every float16 step of CIPS, GAWWN and InfinityGAN is applied: the first loss scale
    (INITIAL_LOSS_SCALE) overflows none of them (a non-finite step halves the scale). COCO-GAN's D
    gradients reach ~1e3 (spectral norm, gradient penalty x 10, spatial loss x 100): its scale backs
    off to 2^5 in its first steps, which are skipped, as Keras's LossScaleOptimizer does."""
    model, _ = runs[model_type, "mixed_float16"]
    scales = {name: float(item.dynamic_scale.numpy()) for name, item in model.checkpoint_items().items()
              if isinstance(item, keras.optimizers.LossScaleOptimizer)}
    assert scales and "g_optimizer" in scales
    if model_type == "cocogan":
        assert all(2**4 <= scale <= INITIAL_LOSS_SCALE for scale in scales.values()), scales
    else:
        assert set(scales.values()) == {INITIAL_LOSS_SCALE}, scales


def test_float16_loss_scaling_keeps_small_gradients():
    """What loss scaling guards: gradients below float16's range flush to zero without it.

    CIPS's mapping network (learning-rate multiplier 0.01) has gradients around 1e-5; in float16 a
    few per mille of all G gradient elements that are non-zero in float32 come out exactly 0 unless the
    loss is scaled (measured: 90 of 89 548 without, 3 with the first loss scale, 2^8).
    """
    def g_gradients(model, scaled):
        batch = {**next(batches(model)), **model.step_inputs(1, BATCH)}
        real, coords = model.training_pixels(batch["image"], batch)
        variables = model.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = model.generator(batch["z_g"], coords, training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-model._discriminate(fake, coords)))
        if not scaled:
            return tape.gradient(loss, variables)
        scale = float(model.g_optimizer.dynamic_scale.numpy())
        return [None if g is None else g / scale for g in scaled_gradients(tape, loss, variables, model.g_optimizer)]

    def flushed(gradients, reference):
        return sum(int(np.sum((np.asarray(r) != 0) & (np.asarray(g) == 0)))
                   for g, r in zip(gradients, reference) if r is not None)

    reference = g_gradients(build("cips", "float32"), scaled=False)
    half = build("cips", "mixed_float16")
    assert isinstance(half.g_optimizer, keras.optimizers.LossScaleOptimizer)
    without, with_scaling = flushed(g_gradients(half, False), reference), flushed(g_gradients(half, True), reference)
    assert without >= 30 and with_scaling * 5 < without, (without, with_scaling)


def test_float16_skips_a_step_with_non_finite_gradients_and_halves_the_scale():
    model = build("cocogan", "mixed_float16")
    batch = {**next(batches(model)), **model.step_inputs(1, BATCH)}
    before = [np.array(v) for v in model.generator.trainable_variables]
    scale = float(model.g_optimizer.dynamic_scale.numpy())
    model.train_step(dict(batch, z=batch["z"] * np.inf), BATCH)  # every gradient non-finite
    assert float(model.g_optimizer.dynamic_scale.numpy()) == scale / 2
    assert int(model.g_optimizer.iterations.numpy()) == 0
    for old, variable in zip(before, model.generator.trainable_variables):
        np.testing.assert_array_equal(old, np.array(variable))


@pytest.mark.parametrize("saved, restored", [("mixed_bfloat16", "float32"), ("float32", "mixed_bfloat16"),
                                             ("mixed_float16", "float32"), ("float32", "mixed_float16")])
def test_a_checkpoint_restores_under_another_precision(runs, tmp_path, saved, restored):
    trained, _ = runs["cocogan", saved]  # after its 3 steps
    CheckpointKeeper(tmp_path, tf.Variable(STEPS, dtype=tf.int64), **trained.checkpoint_items()).save(STEPS)

    resumed = build("cocogan", restored)
    step = tf.Variable(0, dtype=tf.int64)
    CheckpointKeeper(tmp_path, step, **resumed.checkpoint_items()).restore_latest()
    assert int(step.numpy()) == STEPS
    mine, theirs = variable_map(trained.checkpoint_items()), variable_map(resumed.checkpoint_items())
    # Everything but a float16 run's loss scale (and its growth counter) is in both.
    shared = [key for key in mine if ".loss_scale." not in key]
    assert sorted(shared) == sorted(key for key in theirs if ".loss_scale." not in key)
    assert any(".loss_scale." in key for key in {**mine, **theirs}) == ("mixed_float16" in (saved, restored))
    for key in shared:
        np.testing.assert_array_equal(mine[key].numpy(), theirs[key].numpy(), err_msg=key)
    history = train(resumed, steps=1, first_step=STEPS + 1)  # and it trains on
    assert all(math.isfinite(v) for v in history[0].values())


def test_generate_in_bfloat16_draws_images_close_to_float32(tmp_path):
    from tfcoord.runs import load_run

    run = make_run(tmp_path / "cips", "cips", overrides=["train.batch_size=2", "train.precision=mixed_bfloat16"])
    z = np.random.default_rng(0).standard_normal((2, 64)).astype("float32")
    images = {}
    for precision in ("float32", "mixed_bfloat16"):
        model, _ = load_run(run, precision=precision)
        assert model.generator_ema.conv1.compute_dtype == compute_dtype(precision)
        images[precision] = model.sampler.generate(z, height=40, width=40)  # a denser grid than the 32 trained
        assert images[precision].dtype == np.float32 and np.all(np.isfinite(images[precision]))
    # bfloat16 rounds each activation to 8 significant bits (0.4 %); through 9 modulated layers and 5
    # summed ToRGBs the pixels move by about 1.5 % of their RMS on average, 15 % at worst (measured; this
    # barely trained generator's pixels have an RMS of 2.7). float16 (11 bits): 0.2 % and 2 %.
    difference = np.abs(images["mixed_bfloat16"] - images["float32"])
    rms = float(np.sqrt(np.mean(np.square(images["float32"]))))
    assert difference.mean() < 0.03 * rms and difference.max() < 0.25 * rms, (difference.mean(), difference.max(), rms)


def test_generate_and_export_take_precision(tmp_path):
    run = make_run(tmp_path / "run", overrides=["model.ngf=8", "model.ndf=8", "train.batch_size=2"])
    result = run_module("tfcoord.generate", "--run", run, "--num", "2", "--precision", "mixed_bfloat16",
                        "--out", tmp_path / "images")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "images").glob("*.png"))) >= 2

    from export.saved_model import export_saved_model

    outputs = {}
    for precision in ("float32", "mixed_bfloat16"):
        target, _ = export_saved_model(run, tmp_path / f"serving-{precision}", precision=precision)
        signature = tf.saved_model.load(str(target)).signatures["generate_patch"]
        inputs = {name: tf.random.stateless_uniform(spec.shape.as_list()[:0] + [1] + spec.shape.as_list()[1:],
                                                    [3, 4], -1.0, 1.0, spec.dtype)
                  for name, spec in signature.structured_input_signature[1].items()}
        outputs[precision] = signature(**inputs)["rgb"]
        assert outputs[precision].dtype == tf.float32
    np.testing.assert_allclose(outputs["mixed_bfloat16"], outputs["float32"], atol=0.1)
    assert np.mean(np.abs(outputs["mixed_bfloat16"] - outputs["float32"])) < 0.02


def test_a_bad_precision_is_one_error_line(tiny_train_args, tmp_path):
    result = run_module("tfcoord.train", *tiny_train_args, "--steps", "1", "--set", "train.precision=float8",
                        "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "train.precision must be one of 'float32', 'mixed_bfloat16', 'mixed_float16'" \
        in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    with pytest.raises(UserError, match="precision must be one of"):
        from tfcoord.runs import load_run

        load_run(tmp_path, precision="half")
