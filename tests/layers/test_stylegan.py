"""Shared StyleGAN2 blocks (tfcoord/layers/stylegan.py): equalised learning rate, mapping network, noise."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.layers.stylegan import EqualLinear, MappingNetwork, NoiseInjection, PixelNorm, fused_leaky_relu


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def test_equal_linear_stores_raw_weights_and_scales_at_run_time():
    layer = EqualLinear(300, lr_mul=0.01, bias_init=0.5)
    layer.build((None, 400))
    kernel = np.asarray(layer.kernel)
    # Stored N(0, 1) / lr_mul, bias stored bias_init / lr_mul (official randn(...).div_(lr_mul)).
    assert abs(kernel.std() - 100.0) < 2.0
    np.testing.assert_allclose(np.asarray(layer.bias), 50.0)
    x = np.random.default_rng(0).normal(size=(5, 400)).astype("float32")
    expected = x @ (kernel * 0.01 / math.sqrt(400)) + 0.5
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4)
    # Equalised lr: the effective weights have unit-variance outputs for unit-variance inputs.
    assert abs(float(np.std(np.asarray(layer(x)) - 0.5)) - 1.0) < 0.1


def test_equal_linear_fused_lrelu_and_gradient_scale():
    layer = EqualLinear(4, lr_mul=0.1, activation="fused_lrelu")
    x = tf.constant(np.random.default_rng(1).normal(size=(3, 6)).astype("float32"))
    layer(x)
    layer.bias.assign(np.array([0.5, -0.5, 1.0, -2.0], "float32"))
    y = np.asarray(layer(x))
    pre = np.asarray(x) @ (np.asarray(layer.kernel) * 0.1 / math.sqrt(6)) + np.asarray(layer.bias) * 0.1
    np.testing.assert_allclose(y, np.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2), rtol=1e-5, atol=1e-6)
    linear = EqualLinear(4, lr_mul=0.1)
    linear(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(linear(x))
    kernel_grad, bias_grad = tape.gradient(loss, [linear.kernel, linear.bias])
    # d loss / d stored weight carries the run-time scale lr_mul / sqrt(fan_in) (equalised lr).
    expected = np.sum(np.asarray(x), axis=0)[:, None] * np.ones((1, 4)) * 0.1 / math.sqrt(6)
    np.testing.assert_allclose(np.asarray(kernel_grad), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bias_grad), 3 * 0.1, rtol=1e-6)
    with pytest.raises(ValueError):
        EqualLinear(4, activation="relu")


def test_pixel_norm_and_fused_leaky_relu():
    x = np.array([[3.0, 4.0]], "float32")
    np.testing.assert_allclose(np.asarray(PixelNorm()(x)), x / np.sqrt(12.5 + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fused_leaky_relu(np.array([-1.0, 2.0], "float32"), np.array([0.5, 0.0],
                                                                                                   "float32"))),
                               [-0.1 * math.sqrt(2), 2.0 * math.sqrt(2)], rtol=1e-6)


def test_mapping_network_matches_a_numpy_reference():
    mapping = MappingNetwork(style_dim=16, num_layers=3, lr_mul=0.01)
    mapping.build((None, 16))
    rng = np.random.default_rng(2)
    for layer in mapping.dense_layers:
        layer.bias.assign(rng.normal(size=16).astype("float32") * 10.0)
    z = rng.normal(size=(4, 16)).astype("float32")
    w = z / np.sqrt(np.mean(z ** 2, axis=-1, keepdims=True) + 1e-8)
    for layer in mapping.dense_layers:
        pre = w @ (np.asarray(layer.kernel) * 0.01 / 4.0) + np.asarray(layer.bias) * 0.01
        w = np.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2)
    np.testing.assert_allclose(np.asarray(mapping(z)), w, rtol=1e-4, atol=1e-5)
    assert [v.path.split("/", 1)[1] for v in mapping.weights][:2] == ["dense_0/kernel", "dense_0/bias"]


def test_noise_injection_adds_scaled_noise_only_when_given():
    layer = NoiseInjection()
    x = np.ones((2, 3, 3, 4), "float32")
    layer.build(x.shape)
    assert float(layer.strength) == 0.0  # official init: zeros(1)
    layer.strength.assign(0.5)
    noise = np.random.default_rng(3).normal(size=(2, 3, 3, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(x, noise)), x + 0.5 * noise, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_blocks_save_and_reload_as_keras_files(tmp_path):
    inputs = keras.Input((8,))
    w = MappingNetwork(style_dim=8, num_layers=2, name="mapping")(inputs)
    out = EqualLinear(3, lr_mul=0.5, bias_init=1.0, name="head")(w)
    model = keras.Model(inputs, out)
    path = tmp_path / "blocks.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    z = np.random.default_rng(4).normal(size=(2, 8)).astype("float32")
    np.testing.assert_array_equal(np.asarray(reloaded(z)), np.asarray(model(z)))
    assert reloaded.get_layer("head").get_config()["lr_mul"] == 0.5
