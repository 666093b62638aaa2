"""The generic coordinate primitives: patches of an image, the normalised grid."""

import numpy as np

from tfcoord.coords import crop_patches, merge_patches, normalized_grid, split_patches


def test_merge_is_inverse_of_split():
    images = np.random.default_rng(0).normal(size=(3, 12, 20, 5)).astype("float32")
    patches = split_patches(images, 3, 5)
    assert tuple(patches.shape) == (45, 4, 4, 5)
    np.testing.assert_array_equal(np.asarray(merge_patches(patches, 3, 5)), images)


def test_crop_wraps_columns():
    images = np.arange(2 * 4 * 6 * 1, dtype="float32").reshape(2, 4, 6, 1)
    cropped = np.asarray(crop_patches(images, np.array([0, 1]), np.array([4, 2]), 3, wrap_columns=True))
    np.testing.assert_array_equal(cropped[0, :, :, 0], images[0, 0:3][:, [4, 5, 0], 0])
    np.testing.assert_array_equal(cropped[1, :, :, 0], images[1, 1:4, 2:5, 0])


def test_normalized_grid():
    grid = normalized_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    np.testing.assert_allclose(grid[0, :, 0], np.linspace(-1, 1, 5))
    np.testing.assert_allclose(grid[:, 0, 1], [-1, 0, 1])
