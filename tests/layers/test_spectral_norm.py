"""SNConv2D / SNDense: Miyato et al. 2018 spectral normalisation with COCO-GAN semantics.

Forward tests use keras.ops and numpy only, so they also run under KERAS_BACKEND=jax;
gradient tests use tf.GradientTape and are TensorFlow-only.
"""

import inspect

import keras
import numpy as np
import pytest
from keras import ops

from tfcoord.layers import SNConv2D, SNDense
from tfcoord.layers.spectral_norm import spectral_norm_layers

tf_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="gradients taken with tf.GradientTape"
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def l2n(a):
    return a / (np.sqrt(np.sum(np.square(a))) + 1e-12)


def numpy_power_iteration(kernel, u):
    """One iteration of models.md §1.4, in float64: returns (sigma, v, u_next)."""
    w = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    v = l2n(np.asarray(u, np.float64) @ w.T)
    u_next = l2n(v @ w)
    return float(np.sum((v @ w) * u_next)), v, u_next


def sn_layer(kind, **kwargs):
    """A built SN layer and an input batch for it."""
    rng = np.random.default_rng(1)
    if kind == "conv":
        layer, x = SNConv2D(5, 3, **kwargs), rng.normal(size=(2, 6, 6, 4))
    else:
        layer, x = SNDense(5, **kwargs), rng.normal(size=(3, 7))
    x = x.astype(layer.compute_dtype)
    layer(x)
    return layer, x


def test_weights_have_the_official_names_and_layouts():
    conv, _ = sn_layer("conv")
    assert [(w.name, tuple(w.shape), w.trainable) for w in conv.weights] == [
        ("w", (3, 3, 4, 5), True),
        ("b", (5,), True),
        ("u", (1, 5), False),
    ]
    dense, _ = sn_layer("dense", use_bias=False)
    assert [(w.name, tuple(w.shape)) for w in dense.weights] == [("w", (7, 5)), ("u", (1, 5))]
    # Replicas average their writes of u, so they stay equal under MirroredStrategy (P13).
    assert conv.u.aggregation == "mean"


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_sigma_converges_to_the_largest_singular_value(kind):
    layer, x = sn_layer(kind)
    for _ in range(300):
        layer(x, training=True)
    kernel_matrix = np.asarray(layer.kernel).reshape(-1, 5)
    largest = np.linalg.svd(kernel_matrix, compute_uv=False)[0]
    sigma = float(layer.sigma())
    np.testing.assert_allclose(sigma, largest, rtol=1e-3)
    assert np.linalg.norm(kernel_matrix / sigma, 2) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_training_call_is_one_power_iteration_and_divides_by_sigma(kind):
    layer, x = sn_layer(kind)
    kernel, bias, u = (np.asarray(w) for w in layer.weights)
    sigma, _, u_next = numpy_power_iteration(kernel, u)

    y = layer(x, training=True)

    np.testing.assert_allclose(np.asarray(layer.u), u_next, rtol=1e-5, atol=1e-6)
    effective = (kernel / sigma).astype("float32")
    if kind == "conv":
        expected = ops.conv(x, effective, padding="same") + bias
    else:
        expected = x @ effective + bias
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_u_advances_only_in_training_with_update_u(kind):
    layer, x = sn_layer(kind)
    u0 = np.asarray(layer.u).copy()
    y_infer = layer(x)
    layer(x, training=False)
    np.testing.assert_array_equal(np.asarray(layer.u), u0)
    # update_u=False (e.g. the 2nd and 3rd D call of a WGAN-GP step): same output, same u.
    y_frozen = layer(x, training=True, update_u=False)
    np.testing.assert_array_equal(np.asarray(layer.u), u0)
    np.testing.assert_array_equal(np.asarray(y_frozen), np.asarray(y_infer))
    layer(x, training=True)
    assert np.max(np.abs(np.asarray(layer.u) - u0)) > 1e-3



@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_an_inference_kernel_replaces_the_power_iteration_in_eval_mode_only(kind):
    layer, x = sn_layer(kind)
    weights_before = [w.path for w in layer.weights]
    y_live = np.asarray(layer(x))
    normalized = keras.Variable(layer.normalized_kernel(), trainable=False)
    layer.use_inference_kernel(normalized)
    np.testing.assert_allclose(np.asarray(layer(x)), y_live, rtol=0, atol=1e-6)
    normalized.assign(ops.zeros_like(normalized))  # eval calls read it: only the bias is left
    np.testing.assert_allclose(np.asarray(layer(x)), np.broadcast_to(np.asarray(layer.bias), y_live.shape), atol=0)
    u0 = np.asarray(layer.u).copy()
    y_train = layer(x, training=True)  # still w and u: advances u, ignores the zero kernel
    assert np.max(np.abs(np.asarray(layer.u) - u0)) > 1e-6
    assert np.max(np.abs(np.asarray(y_train))) > 0.1
    assert [w.path for w in layer.weights] == weights_before  # not a weight: checkpoints unchanged
    layer.use_inference_kernel(None)
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(layer(x, training=True, update_u=False)), atol=0)
    with pytest.raises(ValueError, match="shape of w"):
        layer.use_inference_kernel(ops.zeros((1, 5)))


def test_spectral_norm_layers_are_found_at_any_depth():
    inner = SNConv2D(4, 3, name="inner")
    dense = SNDense(3, name="sn_dense")
    model = keras.Sequential([keras.Input((6, 6, 2)), inner, keras.layers.Flatten(), keras.layers.Dense(8), dense])
    assert spectral_norm_layers(model) == [inner, dense]
    assert spectral_norm_layers(dense) == [dense]

@tf_only
def test_dense_gradient_flows_through_sigma():
    import tensorflow as tf

    layer, x = sn_layer("dense")
    kernel, _, u = (np.asarray(w, np.float64) for w in layer.weights)
    upstream = np.random.default_rng(2).normal(size=(3, 5))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * upstream)
    grad = tape.gradient(loss, layer.kernel.value).numpy()

    # L = Σ upstream ⊙ (x W/σ + b), σ = v W u'ᵀ with v, u' constants: dσ/dW = vᵀu'.
    sigma, v, u_next = numpy_power_iteration(kernel, u)
    grad_effective = x.astype(np.float64).T @ upstream
    held_fixed = grad_effective / sigma
    expected = held_fixed - np.sum(grad_effective * kernel) / sigma**2 * (v.T @ u_next)

    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(grad - held_fixed)) > 1e-2


@tf_only
def test_conv_gradient_matches_the_explicit_formula():
    import tensorflow as tf

    layer, x = sn_layer("conv")
    _, v, u_next = numpy_power_iteration(np.asarray(layer.kernel), np.asarray(layer.u))
    upstream = np.random.default_rng(2).normal(size=(2, 6, 6, 5)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * upstream)
    grad = tape.gradient(loss, layer.kernel.value)

    def explicit_gradient(sigma_fn):
        kernel = tf.Variable(np.asarray(layer.kernel))
        with tf.GradientTape() as tape:
            sigma = sigma_fn(tf.reshape(kernel, (-1, 5)))
            y = tf.nn.conv2d(x, kernel / sigma, 1, "SAME") + np.asarray(layer.bias)
            loss = tf.reduce_sum(y * upstream)
        return tape.gradient(loss, kernel)

    def sigma_of(kernel_matrix):  # v and u' are constants (PyTorch semantics)
        return tf.reduce_sum((v.astype("float32") @ kernel_matrix) * u_next.astype("float32"))

    np.testing.assert_allclose(grad, explicit_gradient(sigma_of), rtol=1e-4, atol=1e-5)
    held_fixed = explicit_gradient(lambda w: tf.stop_gradient(sigma_of(w)))
    assert np.max(np.abs(grad - held_fixed)) > 1e-2


@tf_only
def test_grad_through_uv_is_the_derivative_of_the_whole_iteration():
    """Official TF1 semantics (Q10): central differences of L(W) with u fixed, in float64."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    x, upstream = rng.normal(size=(3, 4)), rng.normal(size=(3, 3))
    kernel = rng.normal(size=(4, 3))
    weights = [kernel, np.zeros(3), rng.normal(size=(1, 3))]

    def layer_and_gradient(grad_through_uv):
        layer = SNDense(3, grad_through_uv=grad_through_uv, dtype="float64")
        layer(x)
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * upstream)
        return layer, tape.gradient(loss, layer.kernel.value).numpy()

    layer, through_uv = layer_and_gradient(True)
    _, stopped = layer_and_gradient(False)

    def loss_at(shifted_kernel):
        layer.kernel.assign(shifted_kernel)
        return float(np.sum(np.asarray(layer(x)) * upstream))

    step, numerical = 1e-6, np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        shift = np.zeros_like(kernel)
        shift[index] = step
        numerical[index] = (loss_at(kernel + shift) - loss_at(kernel - shift)) / (2 * step)

    np.testing.assert_allclose(through_uv, numerical, rtol=1e-6, atol=1e-8)
    assert np.max(np.abs(stopped - numerical)) > 1e-3


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: SNConv2D(6, (3, 1), strides=2, padding="valid", kernel_initializer="zeros"),
        lambda: SNDense(6, use_bias=False, kernel_initializer="ones", grad_through_uv=True),
    ],
    ids=["conv", "dense"],
)
def test_get_config_is_exactly_the_constructor_arguments(make_layer):
    layer = make_layer()
    config = layer.get_config()
    arguments = set(inspect.signature(type(layer).__init__).parameters) - {"self", "kwargs"}
    base = {"name", "trainable", "dtype"}  # keras.layers.Layer.get_config
    assert set(config) == arguments | base
    assert type(layer).from_config(config).get_config() == config


def test_keras_file_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    inputs = keras.Input((8, 8, 3))
    h = SNConv2D(4, 3, strides=2, grad_through_uv=True)(inputs)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, SNDense(2, use_bias=False)(h))
    for _ in range(3):
        model(images, training=True)  # u away from its initial value

    path = tmp_path / "sn.keras"
    model.save(path)
    restored = keras.models.load_model(path)

    for original, loaded in zip(model.weights, restored.weights):
        assert original.path == loaded.path
        np.testing.assert_array_equal(np.asarray(original), np.asarray(loaded))
    np.testing.assert_array_equal(np.asarray(model(images)), np.asarray(restored(images)))
    assert [layer.get_config() for layer in model.layers[1:]] == [
        layer.get_config() for layer in restored.layers[1:]
    ]


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_mixed_precision_keeps_u_and_sigma_in_float32(kind):
    layer, x = sn_layer(kind, dtype="mixed_float16")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert layer.u.dtype == "float32"
    kernel_matrix = np.asarray(layer.kernel).reshape(-1, 5)
    expected_sigma = numpy_power_iteration(kernel_matrix, np.asarray(layer.u))[0]
    assert float(layer.sigma()) == pytest.approx(expected_sigma, rel=1e-5)
    layer.use_inference_kernel(keras.Variable(layer.normalized_kernel(), trainable=False))  # float32
    frozen = layer(x)
    assert keras.backend.standardize_dtype(frozen.dtype) == "float16"
    layer.use_inference_kernel(None)
    np.testing.assert_allclose(np.asarray(frozen, np.float32), np.asarray(layer(x), np.float32), atol=1e-2)
