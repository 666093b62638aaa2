"""Transposed convs computed as a matmul / sub-pixel conv equal keras.layers.Conv2DTranspose."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from tfcoord.layers.transposed_conv import LoweredConv2DTranspose

CASES = {  # lowering: (layer arguments, input shape)
    "subpixel": (dict(filters=3, kernel_size=4, strides=2, padding="same"), (2, 8, 6, 5)),
    "matmul": (dict(filters=7, kernel_size=4, strides=1, padding="valid"), (3, 1, 1, 6)),
}


def pair(lowering, seed=0):
    arguments, shape = CASES[lowering]
    reference = keras.layers.Conv2DTranspose(**arguments, bias_initializer="random_normal")
    lowered = LoweredConv2DTranspose(**arguments, lowering=lowering)
    reference.build(shape)
    lowered.build(shape)
    lowered.set_weights(reference.get_weights())
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return reference, lowered, x


@pytest.mark.parametrize("lowering", sorted(CASES))
def test_forward_and_gradients_equal_conv2d_transpose(lowering):
    reference, lowered, x = pair(lowering)
    assert [w.shape for w in lowered.weights] == [w.shape for w in reference.weights]
    np.testing.assert_allclose(np.asarray(lowered(x)), np.asarray(reference(x)), atol=1e-5)
    x = tf.constant(x)
    upstream = tf.constant(np.random.default_rng(1).normal(size=reference(x).shape).astype(np.float32))
    grads = []
    for layer in (reference, lowered):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * upstream)
        grads.append(tape.gradient(loss, [x, *layer.trainable_variables]))
    for ours, theirs in zip(grads[1], grads[0]):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-4)


def test_every_subpixel_phase_reads_the_right_taps():
    # One nonzero tap at a time: each kernel tap must land on the output pixels the
    # transposed conv puts it, for every phase (a wrong tap table fails here).
    layer = LoweredConv2DTranspose(1, 4, strides=2, padding="same", lowering="subpixel", use_bias=False)
    reference = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", use_bias=False)
    x = np.random.default_rng(2).normal(size=(1, 5, 5, 1)).astype(np.float32)
    layer.build(x.shape)
    reference.build(x.shape)
    for tap in range(16):
        kernel = np.zeros((4, 4, 1, 1), np.float32)
        kernel[tap // 4, tap % 4] = 1.0
        layer.set_weights([kernel])
        reference.set_weights([kernel])
        np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(reference(x)), atol=1e-6, err_msg=f"tap {tap}")


@pytest.mark.parametrize("lowering", sorted(CASES))
def test_config_round_trip(lowering):
    _, lowered, x = pair(lowering)
    clone = LoweredConv2DTranspose.from_config(lowered.get_config())
    clone.build(x.shape)
    clone.set_weights(lowered.get_weights())
    assert clone.lowering == lowering
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(lowered(x)))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="lowering must be one of"):
        LoweredConv2DTranspose(3, 4, strides=2, padding="same", lowering="fft")
    with pytest.raises(ValueError, match="kernel_size=4, strides=2"):
        LoweredConv2DTranspose(3, 3, strides=2, padding="same", lowering="subpixel")
    with pytest.raises(ValueError, match="strides=1, padding='valid'"):
        LoweredConv2DTranspose(3, 4, strides=2, padding="same", lowering="matmul")
    with pytest.raises(ValueError, match="projects 1 x 1 inputs"):
        LoweredConv2DTranspose(3, 4, padding="valid", lowering="matmul").build((1, 2, 2, 4))


@pytest.mark.parametrize("lowering", sorted(CASES))
def test_converts_to_tflite_without_transpose_conv(lowering, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    _, lowered, x = pair(lowering)
    run = tf.function(lambda inputs: {"y": lowered(inputs)}).get_concrete_function(tf.TensorSpec(x.shape, tf.float32))
    module = tf.Module()
    module.raw_variables = list(run.variables)  # the raw tf.Variables, so the converter freezes them (P3)
    tf.saved_model.save(module, str(tmp_path), signatures={"run": run})
    blob = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path), signature_keys=["run"]).convert()
    interpreter = Interpreter(model_content=blob)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "TRANSPOSE_CONV" not in ops and ({"CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"} & ops), ops
    out = interpreter.get_signature_runner("run")(inputs=x)["y"]
    np.testing.assert_allclose(out, np.asarray(lowered(x)), atol=1e-5)
