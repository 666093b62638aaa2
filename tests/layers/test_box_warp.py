"""GAWWN's box warp (two batched matmuls): stnbhwd semantics, exact gradients, TFLite builtins only."""

import numpy as np
import pytest
import tensorflow as tf

from tfcoord.layers.box_warp import (BoxWarp, box_to_affine, crop_boxes, invert_affine, paste_into_boxes)


def reference_warp(features, theta, out_h, out_w):
    """stnbhwd written out pixel by pixel: corner-aligned grid, bilinear, zero outside."""
    batch, height, width, channels = features.shape
    out = np.zeros((batch, out_h, out_w, channels))
    for b in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                gy, gx = -1 + 2 * i / (out_h - 1), -1 + 2 * j / (out_w - 1)
                sy = theta[b, 0, 0] * gy + theta[b, 0, 1] * gx + theta[b, 0, 2]
                sx = theta[b, 1, 0] * gy + theta[b, 1, 1] * gx + theta[b, 1, 2]
                py, px = (sy + 1) * (height - 1) / 2, (sx + 1) * (width - 1) / 2
                y0, x0 = int(np.floor(py)), int(np.floor(px))
                for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                    for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                        if 0 <= yy < height and 0 <= xx < width:
                            out[b, i, j] += wy * wx * features[b, yy, xx]
    return out


# Every tap of these boxes on a 16-pixel grid lies >= 0.009 px from a pixel centre, where the
# sampler has a kink (one-sided gradient); the finite-difference steps below stay far smaller.
BOXES = np.array([[0.11, 0.23, 0.71, 0.87],   # inside
                  [0.31, -0.22, 0.83, 0.35],  # leaves the map on the left
                  [0.053, 0.041, 0.952, 0.937],
                  [0.413, 0.27, 0.61, 0.55]], np.float32)


@pytest.fixture
def features():
    return np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)


def test_box_affine_follows_models_md_and_inverts():
    theta = np.asarray(box_to_affine(BOXES))
    ymin, xmin, ymax, xmax = BOXES.T
    np.testing.assert_allclose(theta[:, 0, 0], ymax - ymin, atol=1e-7)
    np.testing.assert_allclose(theta[:, 1, 2], 2 * ((xmin + xmax) / 2 - 0.5), atol=1e-7)
    assert np.all(theta[:, 0, 1] == 0) and np.all(theta[:, 1, 0] == 0)
    inverse = np.asarray(invert_affine(theta))
    full = lambda t: np.concatenate([t, np.tile([[[0, 0, 1]]], (len(t), 1, 1))], axis=1)  # noqa: E731
    np.testing.assert_allclose(full(theta) @ full(inverse), np.tile(np.eye(3), (4, 1, 1)), atol=1e-5)


@pytest.mark.parametrize("mode", ["crop", "paste"])
def test_forward_equals_direct_reference(features, mode):
    theta = np.asarray(box_to_affine(BOXES), np.float64)
    if mode == "paste":
        theta = np.asarray(invert_affine(theta), np.float64)
    warp = crop_boxes if mode == "crop" else paste_into_boxes
    got = np.asarray(warp(features, BOXES, 12, 20))
    np.testing.assert_allclose(got, reference_warp(features.astype(np.float64), theta, 12, 20), atol=2e-5)


def test_pixel_centre_grid_variant_samples_edges_not_centres(features):
    # align_corners=False: the full-image crop is still the identity, a half-width crop halves the sampling step
    full = np.tile([[0.0, 0.0, 1.0, 1.0]], (4, 1)).astype(np.float32)
    np.testing.assert_allclose(crop_boxes(features, full, align_corners=False), features, atol=1e-5)
    ramp = np.tile(np.arange(16, dtype=np.float32)[None, None, :, None], (1, 16, 1, 1))
    left_half = crop_boxes(ramp, np.array([[0.0, 0.0, 1.0, 0.5]], np.float32), align_corners=False)
    np.testing.assert_allclose(np.asarray(left_half)[0, 0, 1:-1, 0], np.arange(1, 15) / 2 - 0.25, atol=1e-5)


def test_crop_of_full_image_is_identity_and_paste_is_zero_outside(features):
    full = np.tile([[0.0, 0.0, 1.0, 1.0]], (4, 1)).astype(np.float32)
    np.testing.assert_allclose(crop_boxes(features, full), features, atol=1e-5)
    ones = np.ones((1, 16, 16, 1), np.float32)
    pasted = np.asarray(paste_into_boxes(ones, np.array([[0.25, 0.5, 0.75, 1.0]], np.float32)))[0, ..., 0]
    rows = np.where(pasted.max(axis=1) > 0)[0]
    cols = np.where(pasted.max(axis=0) > 0)[0]
    # corner-aligned pixel centres: y in [0.25, 0.75] -> rows 3.75..11.25 -> rows 4..11 are inside
    assert rows.min() >= 3 and rows.max() <= 12 and cols.min() >= 7
    assert pasted[:3].max() == 0 and pasted[13:].max() == 0 and pasted[:, :7].max() == 0
    np.testing.assert_allclose(pasted[5:11, 9:15], 1.0, atol=1e-5)


def test_gradient_wrt_features_equals_central_differences(features):
    boxes = tf.constant(BOXES)
    weights = tf.constant(np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype(np.float32))
    x = tf.Variable(features.astype(np.float64))

    def loss(value):
        pasted = tf.cast(paste_into_boxes(tf.cast(value, tf.float32), boxes), tf.float64)
        return tf.reduce_sum(pasted * tf.cast(weights, tf.float64))

    with tf.GradientTape() as tape:
        value = loss(x)
    grad = tape.gradient(value, x).numpy()
    rng = np.random.default_rng(2)
    for _ in range(12):
        index = tuple(rng.integers(0, s) for s in features.shape)
        step = np.zeros_like(features, np.float64)
        step[index] = 1e-2
        numeric = (loss(x + step) - loss(x - step)).numpy() / 2e-2
        assert grad[index] == pytest.approx(numeric, rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("mode", ["crop", "paste"])
def test_gradient_wrt_box_equals_central_differences(features, mode):
    warp = crop_boxes if mode == "crop" else paste_into_boxes
    # float64 end to end, so that a step small enough never to cross a kink is still accurate.
    weights = tf.constant(np.random.default_rng(3).normal(size=(4, 16, 16, 3)))
    feats = tf.constant(features.astype(np.float64))
    boxes64 = BOXES.astype(np.float64)

    def loss(boxes):
        return tf.reduce_sum(warp(feats, boxes) * weights)

    boxes = tf.Variable(boxes64)
    with tf.GradientTape() as tape:
        value = loss(boxes)
    grad = tape.gradient(value, boxes).numpy()
    assert np.abs(grad).max() > 1.0  # the box really receives a training signal
    eps = 1e-6
    for b in range(4):
        for k in range(4):
            step = np.zeros_like(boxes64)
            step[b, k] = eps
            numeric = (loss(boxes64 + step) - loss(boxes64 - step)).numpy() / (2 * eps)
            assert grad[b, k] == pytest.approx(numeric, rel=1e-5, abs=1e-5), (b, k)


def test_layer_config_round_trip(features):
    layer = BoxWarp("paste", size=(8, 8))
    clone = BoxWarp.from_config(layer.get_config())
    out = clone([features, BOXES])
    assert out.shape == (4, 8, 8, 3)
    np.testing.assert_allclose(out, paste_into_boxes(features, BOXES, 8, 8))


def test_converts_to_tflite_with_builtin_ops_only(tmp_path, features):
    from ai_edge_litert.interpreter import Interpreter

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="features"),
                                  tf.TensorSpec([None, 4], tf.float32, name="box")])
    def warp(features, box):
        return {"crop": crop_boxes(features, box), "paste": paste_into_boxes(features, box)}

    module.warp = warp
    tf.saved_model.save(module, str(tmp_path / "warp"), signatures={"warp": warp})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "warp"), signature_keys=["warp"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails instead of needing Flex
    interpreter = Interpreter(model_content=converter.convert())
    ops_used = {detail["op_name"] for detail in interpreter._get_ops_details()}
    assert "BATCH_MATMUL" in ops_used and "GATHER" not in ops_used  # XNNPACK runs BATCH_MATMUL, not GATHER
    refused = ("CUSTOM", "READ_VARIABLE", "VAR_HANDLE")
    assert not any(op.startswith("Flex") or op in refused for op in ops_used), ops_used
    out = interpreter.get_signature_runner("warp")(features=features, box=BOXES)
    np.testing.assert_allclose(out["crop"], crop_boxes(features, BOXES), atol=1e-5)
    np.testing.assert_allclose(out["paste"], paste_into_boxes(features, BOXES), atol=1e-5)
