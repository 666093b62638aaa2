"""synthetic-landscapes: procedural scenes at any size, a pure function of (seed, index)."""

import numpy as np
import pytest

from tfcoord.data import make_dataset, render_landscape
from tfcoord.errors import UserError


def batches(count, **kwargs):
    arguments = dict(image_size=(32, 48), batch_size=4, seed=0) | kwargs
    dataset = make_dataset("synthetic-landscapes", **arguments)
    return [batch["image"].numpy() for batch in dataset.take(count)]


def test_batches_are_float_images_in_unit_range():
    (images,) = batches(1)
    assert images.shape == (4, 32, 48, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.std() > 0.05  # not a blank canvas


def test_stream_is_a_function_of_the_seed():
    first, again, other = batches(2), batches(2), batches(2, seed=1)
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))


def test_resumed_stream_equals_the_tail_of_the_full_stream():
    full = batches(5)
    resumed = batches(3, start_index=2 * 4)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(full[2:]))


def test_dataset_elements_are_the_rendered_scenes():
    (images,) = batches(1, seed=7)
    for index in range(4):
        expected = render_landscape(7, index, 32, 48).astype(np.float32) / 127.5 - 1.0
        np.testing.assert_allclose(images[index], expected, atol=1e-6)


@pytest.mark.parametrize("height, width", [(8, 8), (17, 33), (33, 17), (1, 5), (256, 768)])
def test_renders_at_any_size(height, width):
    image = render_landscape(3, 11, height, width)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8


def test_scenes_differ_between_indices_and_look_like_scenes():
    scenes = np.stack([render_landscape(0, index, 48, 64) for index in range(8)]).astype(np.float32)
    assert len({scene.tobytes() for scene in scenes}) == 8
    # A sky above and land or water below: the top and bottom thirds differ in every scene.
    top, bottom = scenes[:, :16].mean(axis=(1, 2, 3)), scenes[:, -16:].mean(axis=(1, 2, 3))
    assert np.all(np.abs(top - bottom) > 5)


def test_non_square_batches():
    (images,) = batches(1, image_size=(17, 33), batch_size=2, training=False)
    assert images.shape == (2, 17, 33, 3)


def test_suffix_is_rejected():
    with pytest.raises(UserError, match="synthetic-landscapes"):
        make_dataset("synthetic-landscapes:100", image_size=(8, 8), batch_size=1, seed=0)
