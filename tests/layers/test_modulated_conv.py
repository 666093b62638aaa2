"""Padding-free modulated convolutions: the fused form equals StyleGAN2's per-sample weights, sizes follow
InfinityGAN's geometry, crops commute with the layer (seamlessness), per-pixel styles reduce correctly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.layers.modulated_conv import (ModulatedConv2D, PaddingFreeToRGB, blur_121, center_crop,
                                           upsample_linear)

BLUR = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0 * 4.0


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def make(filters, kernel_size, in_channels=5, style_dim=6, **kwargs):
    layer = ModulatedConv2D(filters, kernel_size, **kwargs)
    layer.build((None, None, None, in_channels), (None, style_dim))
    # Non-trivial modulation bias so the style really changes the weights.
    layer.modulation.bias.assign(np.random.default_rng(3).uniform(0.5, 1.5, in_channels).astype("float32"))
    return layer


def reference(layer, x, style):
    """StyleGAN2's unfused form: per-sample weights w * s, demodulated, then a grouped conv (NumPy/TF)."""
    kernel = layer.kernel.numpy() * layer.scale
    s = np.asarray(layer.modulation(style))  # (B, I)
    outputs = []
    for b in range(x.shape[0]):
        w = kernel * s[b][None, None, :, None]
        if layer.demodulate:
            w = w / np.sqrt(np.sum(w ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
        if layer.upsample:
            y = tf.nn.conv2d_transpose(x[b:b + 1], np.transpose(w, (0, 1, 3, 2)),
                                       [1, 2 * x.shape[1] + 1, 2 * x.shape[2] + 1, w.shape[3]], 2, "VALID").numpy()
            y = y[:, 1:-1, 1:-1]
            depthwise = np.tile(BLUR[:, :, None, None], (1, 1, w.shape[3], 1)).astype("float32")
            y = tf.nn.depthwise_conv2d(y, depthwise, [1, 1, 1, 1], "VALID").numpy()
        else:
            y = tf.nn.conv2d(x[b:b + 1], w, 1, "VALID").numpy()
        outputs.append(y)
    return np.concatenate(outputs)


@pytest.mark.parametrize("kernel_size,upsample,unfold,demodulate", [
    (3, False, False, True), (7, False, True, True), (7, False, False, True), (3, True, False, True),
    (1, False, False, False)])
def test_fused_modulation_equals_per_sample_weights(kernel_size, upsample, unfold, demodulate):
    layer = make(4, kernel_size, upsample=upsample, unfold=unfold, demodulate=demodulate)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 13, 11, 5)).astype("float32")
    style = rng.standard_normal((2, 6)).astype("float32")
    ours = np.asarray(layer(x, style))
    expected = reference(layer, x, style)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=2e-5, rtol=1e-4)


def test_output_sizes_follow_the_padding_free_geometry():
    up, plain = make(4, 3, upsample=True), make(4, 3)
    style = np.zeros((1, 6), "float32")
    for n in (11, 17, 29, 53):
        x = np.zeros((1, n, n + 2, 5), "float32")
        assert up(x, style).shape == (1, 2 * n - 3, 2 * n + 1, 4)  # n -> 2n - 3
        assert plain(x, style).shape == (1, n - 2, n, 4)  # n -> n - 2
        assert up.output_size(n) == 2 * n - 3 and plain.output_size(n) == n - 2


@pytest.mark.parametrize("upsample", [False, True])
def test_crop_of_output_equals_output_of_crop(upsample):
    """No padding anywhere: a window of the input gives exactly the matching window of the output."""
    layer = make(4, 3, upsample=upsample)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 24, 24, 5)).astype("float32")
    style = rng.standard_normal((1, 6)).astype("float32")
    full = np.asarray(layer(x, style))
    part = np.asarray(layer(x[:, 6:17, 4:15], style))
    if upsample:  # input offset o -> output offset 2o
        window = full[:, 12:12 + part.shape[1], 8:8 + part.shape[2]]
    else:
        window = full[:, 6:6 + part.shape[1], 4:4 + part.shape[2]]
    np.testing.assert_allclose(part, window, atol=1e-5)


@pytest.mark.parametrize("kernel_size,upsample", [(3, False), (3, True), (7, False), (1, False)])
def test_constant_per_pixel_style_equals_per_sample_style(kernel_size, upsample):
    layer = make(4, kernel_size, upsample=upsample, demodulate=kernel_size != 1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 15, 15, 5)).astype("float32")
    style = rng.standard_normal((2, 6)).astype("float32")
    style_map = np.tile(style[:, None, None, :], (1, 19, 19, 1))  # larger than x: centre-cropped
    np.testing.assert_allclose(np.asarray(layer(x, style_map)), np.asarray(layer(x, style)), atol=2e-5)


def test_per_pixel_style_1x1_is_exact_per_pixel_modulation():
    layer = make(3, 1, demodulate=True)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 5, 5)).astype("float32")
    style_map = rng.standard_normal((1, 4, 5, 6)).astype("float32")
    ours = np.asarray(layer(x, style_map))
    for i in range(4):
        for j in range(5):
            pixel = np.asarray(layer(x[:, i:i + 1, j:j + 1], style_map[:, i, j]))
            np.testing.assert_allclose(ours[:, i:i + 1, j:j + 1], pixel, atol=1e-5)


def test_upsample_linear_is_the_padding_free_transposed_blur():
    x = np.random.default_rng(5).standard_normal((2, 6, 7, 3)).astype("float32")
    kernel = np.zeros((3, 3, 3, 3), "float32")
    for c in range(3):
        kernel[:, :, c, c] = BLUR
    expected = tf.nn.conv2d_transpose(x, kernel, [2, 13, 15, 3], 2, "VALID").numpy()[:, 1:-1, 1:-1]
    ours = np.asarray(upsample_linear(x))
    assert ours.shape == (2, 11, 13, 3)
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_blur_121_is_the_valid_fir_filter():
    x = np.random.default_rng(6).standard_normal((1, 9, 8, 2)).astype("float32")
    depthwise = np.tile(BLUR[:, :, None, None], (1, 1, 2, 1)).astype("float32")
    expected = tf.nn.depthwise_conv2d(x, depthwise, [1, 1, 1, 1], "VALID").numpy()
    np.testing.assert_allclose(np.asarray(blur_121(x)), expected, atol=1e-6)


def test_to_rgb_adds_the_upsampled_centre_cropped_skip():
    layer = PaddingFreeToRGB(3)
    layer.build((None, None, None, 5), (None, 6))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 29, 29, 5)).astype("float32")
    style = rng.standard_normal((1, 6)).astype("float32")
    skip = rng.standard_normal((1, 17, 17, 3)).astype("float32")  # 17 -> 33 -> crop to 29
    alone = np.asarray(layer(x, style))
    with_skip = np.asarray(layer(x, style, skip=skip))
    np.testing.assert_allclose(with_skip - alone, np.asarray(center_crop(upsample_linear(skip), 29, 29)), atol=1e-5)


def test_get_config_round_trip():
    layer = ModulatedConv2D(8, 3, upsample=True, demodulate=False)
    clone = ModulatedConv2D.from_config(layer.get_config())
    assert (clone.filters, clone.kernel_size, clone.upsample, clone.demodulate) == (8, 3, True, False)


def test_dynamic_shapes_trace_once():
    layer = make(4, 3, upsample=True)
    fn = tf.function(lambda x, s: layer(x, s),
                     input_signature=[tf.TensorSpec([None, None, None, 5]), tf.TensorSpec([None, 6])])
    assert fn(tf.zeros([2, 9, 11, 5]), tf.zeros([2, 6])).shape == (2, 15, 19, 4)
    assert fn(tf.zeros([1, 5, 5, 5]), tf.zeros([1, 6])).shape == (1, 7, 7, 4)
