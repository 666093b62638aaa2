"""One official CIPS training iteration equals tfcoord's (``shared/fixtures/official/cips_train_step_s8.*``).

The fixture is iteration 0 of saic-mdal/CIPS ``train.py``: the D logistic step, the lazy R1 step (a second step of
the same D Adam, so its moments carry over), the G non-saturating step and the EMA, with every input recorded (real
batch, coordinates, the z of each step, every per-pixel noise map). The training checkpoint ``{g, d, g_ema}`` goes
through the converter, the recorded inputs become the batch of tfcoord's own ``Cips.train_step`` (what
``python -m tfcoord.train`` runs, with the R1 variant of step 1) and ``after_step``; wrappers on the networks and
optimizers record what happened in between. Compared: coordinates, predictions and losses (1e-4 relative), every D
and G gradient (1e-4 of the tensor's largest reference magnitude), every parameter after each Adam step (1e-5;
within lr where the reference gradient is round-off: with beta_1 = 0 the first step is lr g / (|g| + eps), about
+-lr whatever the size of g) and the EMA weights (1e-5, see :func:`test_ema_equals_the_official_ema`).

Adam's epsilon: ``torch.optim.Adam`` adds it to ``sqrt(v / (1 - b2^t))``, Keras's Adam to ``sqrt(v)``, which makes it
~10x larger in the first steps. With Keras's placement, weights whose gradient was below ~1e-5 ended the D step up to
9e-4 (half the lr) away from the official ones, and the R1 and G steps inherited it (r1 off by 4e-4 relative, R1
gradients by 7e-2); tfcoord now uses PyTorch's placement (tfcoord.training.optimizers.PyTorchAdam).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import SHARED
from parity_recording import record_updates
from tfcoord.config import load_config
from tfcoord.models import section_classes
from tfcoord.models.cips import convert
from tfcoord.models.cips.training import R1_VARIANT

FIXTURE = SHARED / "fixtures" / "official" / "cips_train_step_s8"
META = json.loads(FIXTURE.with_suffix(".json").read_text()) if FIXTURE.with_suffix(".json").is_file() else None
pytestmark = pytest.mark.skipif(META is None, reason="official fixtures not available")

UPDATES = ("d_step", "r1_step", "g_step")  # the Adam steps, in the official order
NOISE_LAYERS = ("conv1", "linears.0", "linears.1", "linears.2", "linears.3")  # tfcoord's noise channel order


def fixture_overrides():
    g, d, train = META["generator"], META["discriminator"], META["train_args"]
    kw = g["kwargs"]
    return [f"model.size={kw['size']}", f"model.hidden_size={kw['hidden_size']}", f"model.n_mlp={kw['n_mlp']}",
            f"model.style_dim={kw['style_dim']}", f"model.lr_mlp={kw['lr_mlp']}",
            f"model.channel_multiplier={kw['channel_multiplier']}", "model.architecture=skip",
            f"model.width_multiplier={g['stage_width'] / 512}", f"model.d_width_multiplier={d['width'] / 512}",
            f"model.stddev_group={d['stddev_group']}", "model.d_input=rgb",  # --img2dis
            f"loss.r1_gamma={train['r1']}", f"loss.r1_every={train['d_reg_every']}",
            f"loss.g_reg_every={train['g_reg_every']}", f"optim.lr={train['lr']}",
            f"train.batch_size={train['batch']}"]


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


class Recording:
    """Forwards to a network and keeps the outputs of its calls (test-side seam)."""

    def __init__(self, network, log):
        self._network, self._log = network, log

    def __call__(self, *args, **kwargs):
        out = self._network(*args, **kwargs)
        self._log.append(out)
        return out

    def __getattr__(self, name):
        return getattr(self._network, name)



def batch_from_fixture(ref):
    """The recorded inputs as the batch ``step_inputs`` would give: no flip, the whole image (no crop)."""
    batch_size = ref["real"].shape[0]
    batch = {"image": nhwc(ref["real"]), "z_d": ref["z_d"], "z_g": ref["z_g"],
             "flip": np.zeros(batch_size, bool), "crop_top": np.zeros(batch_size, np.int32),
             "crop_left": np.zeros(batch_size, np.int32), "crop_stride": np.ones(batch_size, np.int32)}
    for step in ("d", "g"):
        batch[f"noise_{step}"] = np.concatenate([nhwc(ref[f"noise_{step}__{layer}.noise"]) for layer in NOISE_LAYERS],
                                                axis=-1)
    return {key: tf.constant(value) for key, value in batch.items()}


@pytest.fixture(scope="module")
def iteration():
    """Convert the checkpoint, run one training iteration on the recorded inputs; what it recorded."""
    config = load_config("cips", section_classes("cips"), preset="ffhq256",
                         overrides=fixture_overrides() + list(convert.OFFICIAL_COMPAT))
    model = convert.convert(FIXTURE.with_suffix(".pt"), config)
    model.build_optimizers()
    ref = np.load(FIXTURE.with_suffix(".npz"))

    g_map = convert.generator_weight_map(model.generator)
    d_map = model.discriminator.official_weight_map()
    ema_map = convert.generator_weight_map(model.generator_ema)
    updates = []
    record_updates(model.d_optimizer, updates, d_map)
    record_updates(model.g_optimizer, updates, g_map)
    calls = {"g": [], "d": [], "coords": []}
    generator, discriminator, training_pixels = model.generator, model.discriminator, model.training_pixels
    model.generator = Recording(generator, calls["g"])
    model.discriminator = Recording(discriminator, calls["d"])

    def recorded_training_pixels(images, batch):
        real, coords = training_pixels(images, batch)
        calls["coords"].append(coords)
        return real, coords

    model.training_pixels = recorded_training_pixels

    @tf.function  # as the trainer runs it
    def train_step(batch):
        for log in (updates, *calls.values()):
            log.clear()
        out = model.train_step(batch, ref["real"].shape[0], variant=R1_VARIANT)
        return out, updates, calls

    try:
        assert model.step_variant(1) == R1_VARIANT  # iteration 0 regularises D
        out, recorded_updates, recorded_calls = tf.nest.map_structure(
            lambda t: t.numpy(), train_step(batch_from_fixture(ref)))
        model.after_step()
    finally:
        model.generator, model.discriminator = generator, discriminator
        del model.training_pixels
    return dict(model=model, ref=ref, out={k: float(v) for k, v in out.items()}, calls=recorded_calls,
                updates=dict(zip(UPDATES, recorded_updates)), g_map=g_map, d_map=d_map, ema_map=ema_map)


def relative_error(actual, expected) -> float:
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)) / max(np.max(np.abs(expected)), 1e-12))


def test_optimisers_and_ema_are_the_official_ones(iteration):
    model = iteration["model"]
    for optimizer, official in ((model.g_optimizer, META["optimisers"]["g"]),
                                (model.d_optimizer, META["optimisers"]["d"])):
        np.testing.assert_allclose(float(optimizer.learning_rate), official["lr"], rtol=1e-6)
        np.testing.assert_allclose([optimizer.beta_1, optimizer.beta_2], official["betas"], rtol=1e-6)
        assert optimizer.epsilon == official["eps"]
    np.testing.assert_allclose(model.config.loss.ema_decay, META["train_args"]["ema_decay"], rtol=1e-12)


def test_losses_equal_the_official_losses(iteration):
    out, ref = iteration["out"], iteration["ref"]
    errors = {key: abs(out[ours] - float(ref[key])) / abs(float(ref[key]))
              for key, ours in {"d_step__d_loss": "d_loss", "r1_step__r1": "r1", "g_step__g_loss": "g_loss"}.items()}
    assert max(errors.values()) <= 1e-4, errors


def test_coordinates_and_predictions_equal_the_official_ones(iteration):
    ref, calls = iteration["ref"], iteration["calls"]
    d_fake, d_real, r1_real, g_fake = [logits for logits, _ in calls["d"]]
    expected = {
        "coords": (calls["coords"][0], nhwc(ref["coords"])),
        "d_step__fake": (calls["g"][0], nhwc(ref["d_step__fake"])),
        "d_step__fake_pred": (d_fake, ref["d_step__fake_pred"][:, 0]),
        "d_step__real_pred": (d_real, ref["d_step__real_pred"][:, 0]),
        "r1_step__real_pred": (r1_real, ref["r1_step__real_pred"][:, 0]),
        "g_step__fake": (calls["g"][1], nhwc(ref["g_step__fake"])),
        "g_step__fake_pred": (g_fake, ref["g_step__fake_pred"][:, 0]),
    }
    errors = {key: relative_error(*pair) for key, pair in expected.items()}
    assert max(errors.values()) <= 1e-4, errors


def weight_map_of(step, iteration):
    return iteration["d_map"] if step in ("d_step", "r1_step") else iteration["g_map"]


@pytest.mark.parametrize("step", UPDATES)
def test_every_gradient_equals_the_official_gradient(iteration, step):
    ref, update = iteration["ref"], iteration["updates"][step]
    errors = {}
    for name, (variable, transform) in weight_map_of(step, iteration).items():
        expected = transform(ref[f"{step}__grad__{name}"])
        errors[name] = float(np.max(np.abs(update["grads"][name] - expected))) / max(float(np.max(np.abs(expected))),
                                                                                    1e-30)
    worst = sorted(errors.items(), key=lambda item: -item[1])[:5]
    assert worst[0][1] <= 1e-4, worst


@pytest.mark.parametrize("step", UPDATES)
def test_every_parameter_after_each_adam_step_equals_the_official_one(iteration, step):
    """1e-5; within lr where the reference gradient is round-off (at most 1e-6 of the tensor's largest, i.e. a few
    float32 epsilons of it, or exactly zero), whose sign the update follows."""
    ref, update, model = iteration["ref"], iteration["updates"][step], iteration["model"]
    optimizer = model.d_optimizer if step in ("d_step", "r1_step") else model.g_optimizer
    lr = float(optimizer.learning_rate)
    errors, loose = {}, {}
    for name, (variable, transform) in weight_map_of(step, iteration).items():
        expected = transform(ref[f"{step}__after__{name}"])
        grad = np.abs(transform(ref[f"{step}__grad__{name}"]))
        roundoff = grad <= 1e-6 * max(float(np.max(grad)), 1e-30)
        diff = np.abs(update["after"][name] - expected)
        errors[name] = float(np.max(diff, where=~roundoff, initial=0.0))
        loose[name] = float(np.max(diff, where=roundoff, initial=0.0))
    worst = sorted(errors.items(), key=lambda item: -item[1])[:5]
    assert worst[0][1] <= 1e-5, worst
    worst_loose = sorted(loose.items(), key=lambda item: -item[1])[:5]
    assert worst_loose[0][1] <= lr, worst_loose


def test_ema_equals_the_official_ema(iteration):
    """1e-5, or one float32 spacing of the reference value where that is larger.

    The mapping weights are stored N(0, 1) / lr_mlp (equalised learning rate), so |w| reaches 128..256 where one
    float32 step is 1.5e-5. The official ``g_ema.mul_(decay).add_(g, alpha=1 - decay)`` rounds ``g_ema * decay``,
    then adds ``alpha * g`` with one fused multiply-add (ATen's CPU kernel); TensorFlow rounds ``alpha * g`` too, so
    a few elements land one float32 step away (measured: 2 of 1024 in each mapping layer).
    """
    ref = iteration["ref"]
    errors = {}
    for name, (variable, transform) in iteration["ema_map"].items():
        expected = transform(ref[f"ema__after__{name}"])
        tolerance = np.maximum(1e-5, np.spacing(np.abs(expected)))
        errors[name] = float(np.max(np.abs(variable.numpy() - expected) / tolerance))
    worst = sorted(errors.items(), key=lambda item: -item[1])[:5]
    assert worst[0][1] <= 1.0, worst
