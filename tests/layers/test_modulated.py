"""Fused modulated FC (CIPS "ModFC") against the explicit StyleGAN2 form (tensorflow.md §5.1)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.layers.modulated import ModulatedDense, ToRGB


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def perturbed(layer, rng):
    """Non-trivial weights (modulation bias away from 1)."""
    for v in layer.weights:
        v.assign(rng.normal(size=v.shape).astype("float32") * (0.5 if "bias" in v.path else 1.0)
                 + (1.0 if v.path.endswith("modulation_bias") else 0.0))


def explicit_reference(layer, x, style, demodulate):
    """StyleGAN2 Eq. 1-3 with per-sample weights: w' = s * W, w'' = w' / ||w'||, y = x @ w''."""
    s = tf.matmul(style, layer.modulation_kernel * layer.modulation_scale) + layer.modulation_bias  # (B, I)
    weight = layer.kernel * layer.scale  # (I, O)
    per_sample = s[:, :, None] * weight[None]  # (B, I, O)
    if demodulate:
        per_sample = per_sample * tf.math.rsqrt(tf.reduce_sum(tf.square(per_sample), axis=1, keepdims=True) + 1e-8)
    return tf.einsum("bhwi,bio->bhwo", x, per_sample)


@pytest.mark.parametrize("demodulate", [True, False])
def test_fused_equals_explicit_forward_and_gradient(demodulate):
    rng = np.random.default_rng(1)
    layer = ModulatedDense(7, demodulate=demodulate)
    x = tf.constant(rng.normal(size=(3, 4, 5, 6)).astype("float32"))
    style = tf.constant(rng.normal(size=(3, 8)).astype("float32"))
    layer(x, style)
    perturbed(layer, rng)
    upstream = tf.constant(rng.normal(size=(3, 4, 5, 7)).astype("float32"))

    def forward_and_grads(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, style])
            y = fn()
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, [x, style] + layer.trainable_variables)

    fused, fused_grads = forward_and_grads(lambda: layer(x, style))
    reference, reference_grads = forward_and_grads(lambda: explicit_reference(layer, x, style, demodulate))
    np.testing.assert_allclose(fused, reference, atol=1e-5, rtol=1e-5)
    assert float(tf.reduce_max(tf.abs(reference))) > 0.1  # a real signal
    for a, b in zip(fused_grads, reference_grads):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_no_per_sample_weight_tensor_in_the_graph():
    """The fused layer never builds a (B, I, O) tensor (tensorflow.md §5.1)."""
    layer = ModulatedDense(32)
    fn = tf.function(lambda x, s: layer(x, s))
    concrete = fn.get_concrete_function(tf.TensorSpec([8, 4, 4, 16]), tf.TensorSpec([8, 10]))
    shapes = [tuple(out.shape) for op in concrete.graph.get_operations() for out in op.outputs]
    assert (8, 16, 32) not in shapes and (16, 32) in shapes


def test_per_pixel_style_equals_per_image_style_when_constant_and_differs_when_not():
    rng = np.random.default_rng(2)
    layer = ModulatedDense(5)
    x = rng.normal(size=(2, 3, 4, 6)).astype("float32")
    style = rng.normal(size=(2, 8)).astype("float32")
    per_image = np.asarray(layer(x, style))
    field = np.broadcast_to(style[:, None, None, :], (2, 3, 4, 8)).copy()
    np.testing.assert_allclose(np.asarray(layer(x, field)), per_image, atol=1e-6)
    # A pixel whose style changes gets the output of that style alone (exact for 1x1 layers).
    other = rng.normal(size=(2, 8)).astype("float32")
    field[:, 1, 2] = other
    mixed = np.asarray(layer(x, field))
    alone = np.asarray(layer(x, other))
    np.testing.assert_allclose(mixed[:, 1, 2], alone[:, 1, 2], atol=1e-6)
    np.testing.assert_allclose(mixed[:, 0], per_image[:, 0], atol=1e-6)


def test_point_sets_and_to_rgb_without_demodulation():
    rng = np.random.default_rng(3)
    to_rgb = ToRGB()
    x = rng.normal(size=(2, 9, 6)).astype("float32")  # (B, N, C) point set
    style = rng.normal(size=(2, 8)).astype("float32")
    skip = rng.normal(size=(2, 9, 3)).astype("float32")
    out = np.asarray(to_rgb(x, style, skip))
    perturbed(to_rgb, rng)
    out = np.asarray(to_rgb(x, style, skip))
    conv = to_rgb.conv
    s = style @ (np.asarray(conv.modulation_kernel) * conv.modulation_scale) + np.asarray(conv.modulation_bias)
    expected = (x * s[:, None, :]) @ (np.asarray(conv.kernel) * conv.scale) + np.asarray(to_rgb.bias) + skip
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert sorted(w.name for w in to_rgb.weights) == ["bias", "kernel", "modulation_bias", "modulation_kernel"]


def test_initialisation_and_config_round_trip():
    layer = ModulatedDense(64, name="mod")
    layer.build_for(128, 32)
    assert tuple(layer.kernel.shape) == (128, 64) and tuple(layer.modulation_kernel.shape) == (32, 128)
    np.testing.assert_array_equal(np.asarray(layer.modulation_bias), 1.0)  # EqualLinear bias_init 1
    assert abs(float(np.std(np.asarray(layer.kernel))) - 1.0) < 0.05  # stored N(0, 1), scaled at run time
    clone = ModulatedDense.from_config(layer.get_config())
    clone.build_for(128, 32)
    clone.set_weights(layer.get_weights())
    x, s = np.ones((1, 2, 128), "float32"), np.ones((1, 32), "float32")
    np.testing.assert_array_equal(np.asarray(clone(x, s)), np.asarray(layer(x, s)))


def test_input_scale_is_folded_into_the_style_scaling():
    """``layer(x, style, input_scale=c) == layer(x * c, style)``; ``modulate`` returns the parts."""
    rng = np.random.default_rng(4)
    layer = ModulatedDense(5)
    x = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    style = rng.normal(size=(2, 8)).astype("float32")
    scale = rng.uniform(0.5, 2.0, size=(2, 6)).astype("float32")
    expected = np.asarray(layer(x * scale[:, None, None, :], style))
    np.testing.assert_allclose(np.asarray(layer(x, style, input_scale=scale)), expected, atol=1e-5)
    y, d = layer.modulate(x * scale[:, None, None, :], style)
    np.testing.assert_allclose(np.asarray(y) * np.asarray(d)[:, None, None, :], expected, atol=1e-5)
