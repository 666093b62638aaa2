"""Feature unfolding (InfinityGAN §3.1): slices + concat, the same numbers as extract_patches and a valid conv."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tfcoord.layers.unfold import Unfold, unfold


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def test_unfold_equals_extract_patches_channel_order():
    x = np.random.default_rng(0).standard_normal((2, 11, 9, 5)).astype("float32")
    ours = np.asarray(unfold(x, 3))
    reference = tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID").numpy()
    assert ours.shape == (2, 9, 7, 45)
    np.testing.assert_array_equal(ours, reference)  # same (row, col, channel) order, bit-identical


def test_unfold_then_matmul_is_a_valid_conv():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 12, 10, 4)).astype("float32")
    kernel = rng.standard_normal((7, 7, 4, 6)).astype("float32")
    via_unfold = np.asarray(ops.matmul(unfold(x, 7), kernel.reshape(7 * 7 * 4, 6)))
    via_conv = np.asarray(ops.conv(x, kernel, padding="valid"))
    assert via_unfold.shape == via_conv.shape == (1, 6, 4, 6)
    np.testing.assert_allclose(via_unfold, via_conv, atol=1e-4)


def test_unfold_of_a_crop_is_the_crop_of_the_unfold():
    x = np.random.default_rng(2).standard_normal((1, 20, 20, 3)).astype("float32")
    full = np.asarray(unfold(x, 7))
    crop = np.asarray(unfold(x[:, 4:17, 5:19], 7))
    np.testing.assert_array_equal(crop, full[:, 4:11, 5:13])  # padding-free: no border effects


def test_unfold_layer_shapes_and_dynamic_sizes():
    layer = Unfold(7)
    assert layer.compute_output_shape((None, 35, 35, 259)) == (None, 29, 29, 12691)
    assert layer.compute_output_shape((None, None, None, 4)) == (None, None, None, 196)
    fn = tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec([None, None, None, 2])])
    assert fn(tf.zeros([3, 9, 13, 2])).shape == (3, 3, 7, 98)
    assert Unfold.from_config(layer.get_config()).kernel_size == 7


def test_unfold_graph_has_no_extract_patches_op():
    fn = tf.function(lambda t: unfold(t, 3)).get_concrete_function(tf.TensorSpec([1, 8, 8, 2]))
    op_types = {op.type for op in fn.graph.get_operations()}
    assert "ExtractImagePatches" not in op_types and "Conv2D" not in op_types
