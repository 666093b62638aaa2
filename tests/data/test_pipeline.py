"""The shared pipeline: per-epoch permutations, resumable index streams, crop/resize/flip with boxes."""

import numpy as np
import pytest
import tensorflow as tf

from tfcoord.data.pipeline import epoch_order, fit_to_size


def pairs(dataset, count):
    return [(int(index), int(item)) for index, item in dataset.take(count)]


def test_every_epoch_visits_every_item_once_in_its_own_order():
    stream = pairs(epoch_order(7, seed=0, start_index=0, training=True), 21)
    assert [index for index, _ in stream] == list(range(21))
    epochs = [[item for _, item in stream[start:start + 7]] for start in (0, 7, 14)]
    assert all(sorted(epoch) == list(range(7)) for epoch in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]


def test_order_resumes_mid_epoch():
    full = pairs(epoch_order(7, seed=5, start_index=0, training=True), 30)
    assert pairs(epoch_order(7, seed=5, start_index=10, training=True), 20) == full[10:]


def test_evaluation_order_is_one_natural_pass():
    assert pairs(epoch_order(4, seed=0, start_index=1, training=False), 10) == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("source_size", [(5, 7), (13, 200), (300, 11), (64, 64)])
@pytest.mark.parametrize("training", [True, False])
def test_any_image_fits_the_target_size(source_size, training):
    image = tf.random.uniform(source_size + (3,), 0, 256, tf.int32, seed=1)
    element = fit_to_size(tf.constant(3, tf.int64), {"image": tf.cast(image, tf.uint8)},
                          image_size=(16, 24), seed=0, training=training)
    assert element["image"].shape == (16, 24, 3) and element["image"].dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(element["image"])) and float(tf.reduce_max(element["image"])) <= 1.0


def test_centre_crop_keeps_the_middle_and_moves_the_box():
    # A 100 x 200 image whose middle square is white; the box marks it.
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255
    box = tf.constant([0.0, 0.25, 1.0, 0.75])
    element = fit_to_size(tf.constant(0, tf.int64), {"image": image, "bbox": box, "label": tf.constant(4)},
                          image_size=(10, 10), seed=0, training=False)
    np.testing.assert_allclose(element["image"], 1.0, atol=1e-5)
    np.testing.assert_allclose(element["bbox"], [0.0, 0.0, 1.0, 1.0], atol=1e-6)
    assert int(element["label"]) == 4


def test_boxes_follow_random_crops_and_flips():
    # The box covers exactly the lit pixels wherever the crop lands; its bright half shows the flips.
    image = np.zeros((60, 90, 3), np.uint8)
    image[12:30, 18:30], image[12:30, 30:45] = 255, 128
    box = tf.constant([12 / 60, 18 / 90, 30 / 60, 45 / 90])
    flips = []
    for index in range(12):
        element = fit_to_size(tf.constant(index, tf.int64), {"image": image, "bbox": box},
                              image_size=(60, 60), seed=0, training=True)
        ymin, xmin, ymax, xmax = (np.asarray(element["bbox"]) * 60).round().astype(int)
        pixels = np.asarray(element["image"])[..., 0]
        lit = pixels > -1.0
        assert lit[ymin:ymax, xmin:xmax].all() and lit.sum() == (ymax - ymin) * (xmax - xmin)
        flips.append(pixels[ymin, xmin] < pixels[ymin, xmax - 1])
    assert 0 < sum(flips) < len(flips)
