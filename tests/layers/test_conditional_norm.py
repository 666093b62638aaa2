"""ConditionalBatchNorm: COCO-GAN conditional BN (models.md §1.4, quirk Q1).

Tests use keras and numpy only (the strategy test is TensorFlow-only), so they also
run under KERAS_BACKEND=jax.
"""

import inspect

import keras
import numpy as np
import pytest

from tfcoord.layers import ConditionalBatchNorm
from tfcoord.layers.conditional_norm import global_moments

CHANNELS, CONDITION_DIM = 3, 5


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def batch(size=4, seed=0):
    """Features with per-channel offsets and scales far from 0 and 1, and conditions."""
    rng = np.random.default_rng(seed)
    scale, offset = np.array([0.5, 1.5, 3.0]), np.array([-1.0, 0.5, 2.0])
    x = rng.normal(size=(size, 4, 4, CHANNELS)) * scale + offset
    condition = rng.uniform(-1.0, 1.0, size=(size, CONDITION_DIM))
    return x.astype("float32"), condition.astype("float32")


def built_layer(**kwargs):
    layer = ConditionalBatchNorm(**kwargs)
    layer(*batch())
    # Non-trivial γ/β biases (they start at zero).
    rng = np.random.default_rng(9)
    layer.gamma_dense.bias.assign(rng.normal(size=CHANNELS).astype("float32"))
    layer.beta_dense.bias.assign(rng.normal(size=CHANNELS).astype("float32"))
    return layer


def reference(layer, x, condition, mean, variance):
    """γ(c)·(x − μ)/d + β(c) in float64, d by the layer's variance_mode."""
    gamma_kernel, gamma_bias = (np.asarray(w, np.float64) for w in layer.gamma_dense.weights)
    beta_kernel, beta_bias = (np.asarray(w, np.float64) for w in layer.beta_dense.weights)
    if layer.variance_mode == "official_squared":
        variance = np.square(variance)
    gamma = condition @ gamma_kernel + gamma_bias
    beta = condition @ beta_kernel + beta_bias
    normalized = (x - mean) / np.sqrt(variance + layer.epsilon)
    return gamma[:, None, None, :] * normalized + beta[:, None, None, :]


def test_gamma_and_beta_are_plain_dense_maps_of_the_condition():
    layer = ConditionalBatchNorm()
    layer(*batch())
    for dense in (layer.gamma_dense, layer.beta_dense):
        assert tuple(dense.kernel.shape) == (CONDITION_DIM, CHANNELS)
        assert isinstance(dense.kernel_initializer, keras.initializers.GlorotUniform)
        np.testing.assert_array_equal(np.asarray(dense.bias), np.zeros(CHANNELS))
    assert [(w.name, w.trainable) for w in (layer.moving_mean, layer.moving_variance)] == [
        ("moving_mean", False),
        ("moving_variance", False),
    ]
    assert layer.moving_mean.aggregation == layer.moving_variance.aggregation == "mean"


@pytest.mark.parametrize("variance_mode", ["paper", "official_squared"])
def test_training_output_normalises_with_the_batch_moments(variance_mode):
    layer = built_layer(variance_mode=variance_mode)
    x, condition = batch(seed=1)
    y = layer(x, condition, training=True)
    x64 = x.astype(np.float64)
    expected = reference(layer, x64, condition, x64.mean((0, 1, 2)), x64.var((0, 1, 2)))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-4, atol=1e-4)


def test_the_two_variance_modes_differ():
    x, condition = batch(seed=1)
    paper, official = built_layer(), built_layer(variance_mode="official_squared")
    official.set_weights(paper.get_weights())
    difference = np.asarray(paper(x, condition, training=True)) - np.asarray(
        official(x, condition, training=True)
    )
    assert np.max(np.abs(difference)) > 0.1


def assert_recorders(layer, mean, variance):
    np.testing.assert_allclose(np.asarray(layer.moving_mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.moving_variance), variance, rtol=1e-5)


@pytest.mark.parametrize("variance_mode", ["paper", "official_squared"])
def test_recorders_move_towards_the_batch_moments_in_training_only(variance_mode):
    layer = built_layer(momentum=0.9, variance_mode=variance_mode)
    layer.moving_mean.assign(np.zeros(CHANNELS, "float32"))
    layer.moving_variance.assign(np.ones(CHANNELS, "float32"))
    expected_mean, expected_variance = np.zeros(CHANNELS), np.ones(CHANNELS)
    for seed in (1, 2):
        x, condition = batch(seed=seed)
        layer(x, condition, training=True)
        # rec <- momentum·rec + (1 − momentum)·stat; variance stored unsquared in both modes.
        expected_mean = 0.9 * expected_mean + 0.1 * x.mean((0, 1, 2), dtype=np.float64)
        expected_variance = 0.9 * expected_variance + 0.1 * x.var((0, 1, 2), dtype=np.float64)
        assert_recorders(layer, expected_mean, expected_variance)

    layer(*batch(seed=3))
    layer(*batch(seed=3), training=False)
    assert_recorders(layer, expected_mean, expected_variance)


@pytest.mark.parametrize("variance_mode", ["paper", "official_squared"])
def test_inference_normalises_with_the_recorders(variance_mode):
    layer = built_layer(variance_mode=variance_mode)
    recorded_mean, recorded_variance = np.array([0.3, -0.2, 1.0]), np.array([0.5, 2.0, 4.0])
    layer.moving_mean.assign(recorded_mean.astype("float32"))
    layer.moving_variance.assign(recorded_variance.astype("float32"))
    x, condition = batch(seed=1)
    y = layer(x, condition)
    expected = reference(layer, x.astype(np.float64), condition, recorded_mean, recorded_variance)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_gamma_and_beta_are_per_sample():
    """In inference each sample is modulated by its own condition only."""
    layer = built_layer()
    x, condition = batch(seed=1)
    other_condition = condition.copy()
    other_condition[1] = -condition[1]
    y, y_other = (np.asarray(layer(x, c)) for c in (condition, other_condition))
    np.testing.assert_array_equal(np.delete(y, 1, axis=0), np.delete(y_other, 1, axis=0))
    assert np.max(np.abs(y[1] - y_other[1])) > 1e-2
    # A sample alone gives the same output as inside the batch.
    np.testing.assert_allclose(np.asarray(layer(x[2:3], condition[2:3]))[0], y[2], atol=1e-6)


def test_unknown_variance_mode_is_rejected():
    with pytest.raises(ValueError, match="variance_mode"):
        ConditionalBatchNorm(variance_mode="squared")


def test_get_config_is_exactly_the_constructor_arguments():
    layer = ConditionalBatchNorm(epsilon=1e-3, momentum=0.9, variance_mode="official_squared")
    config = layer.get_config()
    arguments = set(inspect.signature(ConditionalBatchNorm.__init__).parameters)
    arguments -= {"self", "kwargs"}
    assert set(config) == arguments | {"name", "trainable", "dtype"}
    assert ConditionalBatchNorm.from_config(config).get_config() == config


def test_global_moments_are_the_biased_moments_outside_a_strategy():
    x, _ = batch(seed=5)
    mean, variance = global_moments(x)
    np.testing.assert_allclose(np.asarray(mean), x.mean((0, 1, 2), dtype=np.float64), atol=1e-6)
    np.testing.assert_allclose(np.asarray(variance), x.var((0, 1, 2), dtype=np.float64), rtol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")
def test_global_moments_under_the_default_strategy_and_a_dynamic_batch():
    import tensorflow as tf

    x, _ = batch(seed=5)
    strategy = tf.distribute.get_strategy()
    traced = tf.function(global_moments, input_signature=[tf.TensorSpec((None, None, None, 3))])
    for mean, variance in (strategy.run(global_moments, args=(x,)), traced(x)):
        np.testing.assert_allclose(mean.numpy(), x.mean((0, 1, 2), dtype=np.float64), atol=1e-6)
        np.testing.assert_allclose(variance.numpy(), x.var((0, 1, 2), dtype=np.float64), rtol=1e-5)


@keras.saving.register_keras_serializable(package="tfcoord_tests")
class _Modulated(keras.Model):
    """A subclassed model calling the layer with two tensors, as the COCO-GAN up-block does."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cbn = ConditionalBatchNorm(variance_mode="official_squared")

    def call(self, inputs, training=False):
        x, condition = inputs
        return keras.ops.relu(self.cbn(x, condition, training=training))


def functional_model():
    x = keras.Input((4, 4, CHANNELS))
    condition = keras.Input((CONDITION_DIM,))
    y = ConditionalBatchNorm(epsilon=1e-3, momentum=0.9)(x, condition)
    return keras.Model([x, condition], keras.layers.ReLU()(y))


@pytest.mark.parametrize(
    "make_model", [functional_model, _Modulated], ids=["functional", "subclassed"]
)
def test_keras_file_round_trip_is_exact(tmp_path, make_model):
    model = make_model()
    x, condition = batch(seed=1)
    for seed in (2, 3):
        model(list(batch(seed=seed)), training=True)  # recorders away from 0 and 1

    path = tmp_path / "cbn.keras"
    model.save(path)
    restored = keras.models.load_model(path)

    assert [w.name for w in model.weights] == [w.name for w in restored.weights]
    for original, loaded in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(loaded))
    for training in (False, True):
        np.testing.assert_array_equal(
            np.asarray(model([x, condition], training=training)),
            np.asarray(restored([x, condition], training=training)),
        )


def test_mixed_precision_keeps_the_recorders_in_float32():
    layer = ConditionalBatchNorm(momentum=0.0, dtype="mixed_float16")
    x, condition = (a.astype("float16") for a in batch(seed=1))
    y = layer(x, condition, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert layer.moving_mean.dtype == layer.moving_variance.dtype == "float32"
    x64 = x.astype(np.float64)
    assert_recorders(layer, x64.mean((0, 1, 2)), x64.var((0, 1, 2)))
