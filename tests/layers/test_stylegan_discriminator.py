"""StyleGAN2 residual discriminator (CIPS §2.5, InfinityGAN §4.6) against a NumPy port of the official NCHW code."""

import keras
import numpy as np
import pytest

from tfcoord.layers.stylegan_discriminator import (StyleGan2Discriminator, blur, final_side,
                                                   official_infinitygan_stddev_group)

SQRT2 = np.sqrt(2.0)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


# -- NumPy reference of the official PyTorch discriminator (NCHW, float64) ---------------------------
def np_conv(x, w, stride=1, pad=0):
    """F.conv2d: x (B, I, H, W), w (O, I, k, k), zero padding ``pad``."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    out_h = (x.shape[2] - k) // stride + 1
    out_w = (x.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], out_h, out_w))
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
            out += np.einsum("bihw,oi->bohw", patch, w[:, :, i, j])
    return out


def np_blur(x, pad):
    """upfirdn2d(x, outer([1,3,3,1])/64, pad=(p0, p1))."""
    kernel = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    x = np.pad(x, ((0, 0), (0, 0), pad, pad))
    channels = x.shape[1]
    weight = np.zeros((channels, channels, 4, 4))
    for c in range(channels):
        weight[c, c] = kernel
    return np_conv(x, weight)


def np_lrelu(x, bias):
    x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    return np.where(x >= 0, x, 0.2 * x) * SQRT2


def np_conv_layer(x, state, name, k, downsample=False, activate=True):
    if downsample:
        p = 2 + k - 1
        x = np_blur(x, ((p + 1) // 2, p // 2))
        w = state[f"{name}.1.weight"]
        y = np_conv(x, w / np.sqrt(w[0].size), stride=2)
        return np_lrelu(y, state[f"{name}.2.bias"]) if activate else y
    w = state[f"{name}.0.weight"]
    y = np_conv(x, w / np.sqrt(w[0].size), pad=k // 2)
    return np_lrelu(y, state[f"{name}.1.bias"]) if activate else y


def np_linear(x, w, b, activate):
    y = x @ (w / np.sqrt(w.shape[1])).T
    return np_lrelu(y, b) if activate else y + b


def np_official_discriminator(images_nchw, state, num_blocks, group_size):
    x = np_conv_layer(images_nchw, state, "convs.0", 1)
    for i in range(1, num_blocks + 1):
        out = np_conv_layer(x, state, f"convs.{i}.conv1", 3)
        out = np_conv_layer(out, state, f"convs.{i}.conv2", 3, downsample=True)
        skip = np_conv_layer(x, state, f"convs.{i}.skip", 1, downsample=True, activate=False)
        x = (out + skip) / SQRT2
    batch, channels, height, width = x.shape
    group = min(batch, group_size)
    std = x.reshape(group, -1, 1, channels, height, width)
    std = np.sqrt(std.var(0) + 1e-8).mean(axis=(2, 3, 4))  # (M, 1)
    std = np.tile(std, (group, 1))[:, :, None, None] * np.ones((1, 1, height, width))
    x = np.concatenate([x, std], 1)
    x = np_conv_layer(x, state, "final_conv", 3).reshape(batch, -1)
    x = np_linear(x, state["final_linear.0.weight"], state["final_linear.0.bias"], True)
    return np_linear(x, state["final_linear.1.weight"], state["final_linear.1.bias"], False)[:, 0]


def random_official_state(d, rng):
    """Random weights in the official PyTorch layouts for every entry of ``official_weight_map``."""
    state = {}
    for name, (variable, transform) in d.official_weight_map().items():
        target = tuple(variable.shape)
        if len(target) == 4:
            shape = (target[3], target[2], target[0], target[1])
        elif len(target) == 2:
            shape = (target[1], target[0])
        else:
            shape = target
        state[name] = rng.normal(size=shape)
        variable.assign(transform(state[name]).astype("float32"))
    return state


# -- tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, batch, group", [(13, 8, 4), (16, 4, 0), (16, 6, 2)])
def test_matches_a_numpy_port_of_the_official_discriminator(size, batch, group):
    d = StyleGan2Discriminator(size, width_multiplier=1 / 64, stddev_group=group)
    d.build()
    rng = np.random.default_rng(size + batch)
    state = random_official_state(d, rng)
    images = rng.normal(size=(batch, size, size, 3))
    logits, features = d(images.astype("float32"))
    expected = np_official_discriminator(images.transpose(0, 3, 1, 2), state, len(d.blocks), group or batch)
    assert logits.shape == (batch,) and features.shape == (batch, d.feature_dim)
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)


def test_contiguous_grouping_equals_the_official_grouping_of_a_reordered_batch():
    """Contiguous groups {0..3}, {4..7} are the official strided groups of the interleaved batch."""
    d = StyleGan2Discriminator(16, width_multiplier=1 / 64, stddev_group=4, stddev_grouping="contiguous")
    d.build()
    official = StyleGan2Discriminator.from_config({**d.get_config(), "stddev_grouping": "strided"})
    official.build()
    official.set_weights(d.get_weights())
    images = np.random.default_rng(3).normal(size=(8, 16, 16, 3)).astype("float32")
    order = np.array([0, 4, 1, 5, 2, 6, 3, 7])  # strided groups of this order: {0,1,2,3}, {4,5,6,7}
    contiguous = np.asarray(d(images)[0])
    strided = np.asarray(official(images[order])[0])
    np.testing.assert_allclose(contiguous[order], strided, rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(contiguous - np.asarray(official(images)[0]))) > 1e-4  # the grouping matters


def test_odd_input_101_halves_to_3_like_infinitygan():
    d = StyleGan2Discriminator(101, width_multiplier=1 / 32)
    d.build()
    sides, shape = [], (None, 101, 101, 3)
    shape = d.from_rgb.compute_output_shape(shape)
    for block in d.blocks:
        shape = block.compute_output_shape(shape)
        sides.append(shape[1])
    assert sides == [50, 25, 12, 6, 3] and final_side(101) == 3
    logits, features = d(np.zeros((2, 101, 101, 3), "float32"))
    assert tuple(logits.shape) == (2,) and tuple(features.shape) == (2, 16 * 3 * 3) == (2, d.feature_dim)


def test_paper_parameter_counts():
    """models.md §2.10: CIPS D (256, cm 2) = 28 864 129; §4.6: InfinityGAN D 28 915 460 incl. a 2 361 347 head."""
    for size, expected in ((256, 28_864_129), (101, 28_915_460 - 2_361_347)):
        d = StyleGan2Discriminator(size)
        d.build()
        assert sum(int(np.prod(v.shape)) for v in d.weights) == expected, size
    assert StyleGan2Discriminator(101).block_channels == [512] * 5
    assert StyleGan2Discriminator(256).from_rgb.filters == 128


def test_stddev_group_official_values():
    assert official_infinitygan_stddev_group(16) == 16
    assert official_infinitygan_stddev_group(32) == 4
    assert official_infinitygan_stddev_group(7) == 7


def test_blur_is_the_normalised_1331_filter():
    x = np.zeros((1, 7, 7, 1), "float32")
    x[0, 3, 3, 0] = 1.0
    out = np.asarray(blur(x, (1, 2)))[0, :, :, 0]
    kernel = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    assert out.shape == (7, 7)
    np.testing.assert_allclose(out[1:5, 1:5], kernel, atol=1e-7)
    assert abs(out.sum() - 1.0) < 1e-6


def test_features_feed_an_extra_head_and_config_round_trips():
    d = StyleGan2Discriminator(16, width_multiplier=1 / 64, stddev_group=2, name="disc")
    d.build()
    clone = StyleGan2Discriminator.from_config(d.get_config())
    clone.build()
    clone.set_weights(d.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    for a, b in zip(d(x), clone(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    head = keras.layers.Dense(3)
    assert tuple(head(d(x)[1]).shape) == (4, 3)
    assert len({v.path for v in d.weights}) == len(d.weights)  # unique checkpoint keys
