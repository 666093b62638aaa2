"""The offline quality evaluator (tfcoord.metrics.quality): ground truth, feature network, realism, structure.

The feature networks here are the quick recipe's (trained once per session, seconds); the
full recipe's figures are in bench.quality's output.
"""

import numpy as np
import pytest

from tfcoord.metrics.quality import structure
from tfcoord.metrics.quality.domains import get_domain
from tfcoord.metrics.quality.evaluator import QualityEvaluator
from tfcoord.metrics.quality.network import Recipe, train

NUM = 128


@pytest.fixture(scope="module")
def landscapes(quality_network):
    return QualityEvaluator("synthetic-landscapes", NUM, network=quality_network("synthetic-landscapes"))


def test_landscape_class_maps_are_the_drawing_and_have_one_horizon():
    from tfcoord.data.synthetic_landscapes import CLASSES, render_landscape, render_landscape_scene

    image, classes, horizon = render_landscape_scene(3, 5, 32, 96)
    assert np.array_equal(image, render_landscape(3, 5, 32, 96))  # the pixels are unchanged
    assert classes.shape == (32, 96) and set(np.unique(classes)) <= set(range(len(CLASSES)))
    assert 0.5 < horizon < 0.8
    truth = get_domain("synthetic-landscapes").render("check", 32)
    assert structure.sky_above_ground(truth.labels).all()
    assert not structure.sky_above_ground(truth.labels[:, ::-1]).any()  # upside down: ground above the sky


def test_feature_network_training_is_deterministic_for_its_recipe():
    domain = get_domain("synthetic-landscapes")
    recipe = Recipe(domain.name, images=8, steps=2, batch_size=4, widths=(8, 8, 8, 8, 8))
    first, second = train(domain, recipe), train(domain, recipe)
    for a, b in zip(first.classifier.get_weights(), second.classifier.get_weights()):
        np.testing.assert_array_equal(a, b)
    images = domain.render("check", 8).images
    np.testing.assert_array_equal(first.features(images), second.features(images))


def test_real_renders_score_at_the_real_vs_real_ceiling(landscapes):
    ceiling = landscapes.real_vs_real()
    assert ceiling["precision"] > 0.8 and ceiling["recall"] > 0.8
    other = landscapes.domain.render("check", NUM).images  # a third set of real renders
    scores = landscapes.realism(other)
    assert abs(scores["precision"] - ceiling["precision"]) < 0.1 and abs(scores["recall"] - ceiling["recall"]) < 0.1
    assert scores == landscapes.realism(other)  # deterministic


def test_noise_shuffled_pixels_and_constant_images_score_near_zero(landscapes):
    real = landscapes.domain.render("check", NUM).images
    rng = np.random.default_rng(0)
    shuffled = real.reshape(NUM, -1, 3).copy()
    for pixels in shuffled:
        rng.shuffle(pixels)
    fakes = {"noise": rng.integers(0, 256, real.shape, dtype=np.uint8),
             "shuffled": shuffled.reshape(real.shape),
             "constant": np.broadcast_to(real.mean(axis=(1, 2), keepdims=True).astype(np.uint8), real.shape)}
    ceiling_kid = landscapes.real_vs_real()["kid"]
    for name, images in fakes.items():
        scores = landscapes.realism(images)
        # Not exactly zero: a night scene is nearly one dark colour, so a few constant images pass as one.
        assert scores["precision"] < 0.15 and scores["recall"] < 0.1, name
        assert scores["kid"] > 10 * max(ceiling_kid, 0.1), name


def test_a_bird_drawn_outside_its_box_gets_a_low_box_fraction(quality_network):
    network = quality_network("synthetic-birds")
    truth = network.domain.render("check", 64)
    boxes = truth.extras["boxes"]
    narrow = (boxes[:, 3] - boxes[:, 1]) < 0.45  # rolled by half the width, the bird leaves its box entirely
    inside = structure.box_fractions(network.labels(truth.images), boxes)[narrow]
    outside = structure.box_fractions(network.labels(np.roll(truth.images, 32, axis=2)), boxes)[narrow]
    assert narrow.sum() >= 8
    assert inside.mean() > 0.6 and outside.mean() < 0.3


def test_keypoints_lie_on_their_parts_in_the_renderer():
    truth = get_domain("synthetic-birds").render("check", 32)
    own = [d for d in structure.keypoint_distances(truth.labels, truth.extras["keypoints"]) if d is not None]
    other = [d for d in structure.keypoint_distances(truth.labels, np.roll(truth.extras["keypoints"], 1, axis=0))
             if d is not None]
    assert np.mean(own) < 0.02 and np.mean(other) > 5 * np.mean(own)


def test_a_seam_grid_is_flagged_and_real_renders_are_not():
    images = get_domain("synthetic-landscapes").render("check", 16).images.astype(np.float64)
    assert 0.8 < structure.seam_ratio(images, 8) < 1.25
    seams = images.copy()
    seams[:, 7::8] *= 0.85  # the last row and column of every 8 x 8 patch darker: a visible grid
    seams[:, :, 7::8] *= 0.85
    assert structure.seam_ratio(seams, 8) > 2.0


def test_horizon_jumps_find_scenes_stitched_side_by_side():
    domain = get_domain("synthetic-landscapes")
    wide = domain.render("check", 8, (32, 128)).labels
    stitched = np.concatenate(list(domain.render("check", 32).labels.reshape(4, 8, 32, 32)), axis=2)
    strip = 8
    assert structure.horizon_rows(wide, strip).shape == (8, 16)
    assert (structure.horizon_jumps(stitched, strip).max(axis=1).mean()
            > 2 * structure.horizon_jumps(wide, strip).max(axis=1).mean())
