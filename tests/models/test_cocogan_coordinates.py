"""COCO-GAN's coordinate tables of models.md §1.3, exactly."""

import numpy as np
import pytest

from tfcoord.coords import linear_position
from tfcoord.models.cocogan.coordinates import CocoGanCoordinates

THIRD = 1.0 / 3.0


def n2m2(system="euclidean", height=128, width=128):
    return CocoGanCoordinates(height, width, macro_size=height // 2, micro_size=height // 4, system=system)


def test_n2m2_micro_and_macro_values():
    grid = n2m2()
    micro = np.asarray(grid.full_micro_grid())
    np.testing.assert_allclose(micro[:, 0, 0], [-1, -THIRD, THIRD, 1], atol=1e-6)
    np.testing.assert_allclose(micro[0, :, 1], [-1, -THIRD, THIRD, 1], atol=1e-6)
    assert micro.shape == (4, 4, 2)
    assert (grid.macro_rows(), grid.macro_cols()) == (3, 3)
    macro = np.asarray(grid.macro_coords(np.arange(3), np.arange(3)))
    np.testing.assert_allclose(macro, [[-1, -1], [0, 0], [1, 1]], atol=1e-6)


def test_one_extrapolation_step():
    grid = n2m2()
    micro = np.asarray(grid.full_micro_grid(extrapolation_steps=1))
    np.testing.assert_allclose(micro[:, 0, 0], [-5 / 3, -1, -THIRD, THIRD, 1, 5 / 3], atol=1e-6)
    assert grid.macro_rows(1) == 5
    macro = np.asarray(grid.macro_coords(np.arange(-1, 4), np.zeros(5, int)))[:, 0]
    np.testing.assert_allclose(macro, [-2, -1, 0, 1, 2], atol=1e-6)


@pytest.mark.parametrize("n, positions", [(4, 25), (8, 81), (16, 289)])
def test_macro_position_counts(n, positions):
    grid = CocoGanCoordinates(128, 128, 64, 64 // n)
    assert grid.macro_rows() * grid.macro_cols() == positions


def test_micro_coords_of_macro_are_its_micro_patches():
    grid = n2m2()
    full = np.asarray(grid.full_micro_grid())
    for row in range(3):
        for col in range(3):
            of_macro = np.asarray(grid.micro_coords_of_macro(np.array([row]), np.array([col])))[0]
            expected = full[row:row + 2, col:col + 2].reshape(4, 2)
            np.testing.assert_array_equal(of_macro, expected)


def test_macro_pixel_offset_matches_formula():
    grid = n2m2()  # F 128, macro 64: P = (c' + 1) / 2 * (F - S_macro)
    for index in range(3):
        c = float(np.asarray(linear_position(index, 3)))
        assert grid.macro_pixel_offset(index, index) == (round((c + 1) / 2 * 64),) * 2


def test_cylindrical_coordinates_wrap():
    grid = n2m2("cylindrical", 256, 768)  # micro 64 -> 4 x 12, as Matterport3D
    micro = np.asarray(grid.full_micro_grid())
    assert micro.shape == (4, 12, 3)
    np.testing.assert_allclose(micro[0, 0], [-1, -1, 0], atol=1e-6)  # theta = -1
    np.testing.assert_allclose(micro[0, 6], [-1, 1, 0], atol=1e-6)  # theta = 0
    one_past_last = np.asarray(grid.micro_coords(np.array(0), np.array(12)))
    np.testing.assert_allclose(one_past_last, micro[0, 0], atol=1e-6)
    assert grid.macro_cols() == 12
    # macro patch starting at the last column continues into the first
    cols = np.asarray(grid.micro_coords_of_macro(np.array([0]), np.array([11])))[0, :, 1:]
    np.testing.assert_allclose(cols[:2], micro[0, [11, 0], 1:], atol=1e-6)
    values = micro[..., 1:]
    assert np.all((np.abs(values) >= 1e-6) | (values == 0))  # snapped
