"""The one tile planner: tiles cover every image pixel exactly once, and its limits and messages are the callers'."""

import numpy as np
import pytest

from export.client import parse_args
from tfcoord.errors import UserError
from tfcoord.generation.canvas import render_canvas
from tfcoord.generation.tiles import MAX_SIDE, TileGrid, panorama_period, plan_bands


def coverage(grid: TileGrid) -> np.ndarray:
    """How many tiles contribute each image pixel (and check each tile's output window holds its part)."""
    counts = np.zeros((grid.height, grid.width), int)
    for t in grid.iter_tiles():
        assert t.crop_top + t.height <= grid.tile[0] and t.crop_left + t.width <= grid.tile[1]
        # The tile's output starts at covered pixel (row * stride, col * stride): image pixel minus the crop offset.
        assert t.top + grid.offset[0] == t.row * grid.stride[0] + t.crop_top
        assert t.left + grid.offset[1] == t.col * grid.stride[1] + t.crop_left
        counts[t.top:t.top + t.height, t.left:t.left + t.width] += 1
    return counts


@pytest.mark.parametrize("height,width,tile,stride,crop,panorama", [
    (1, 1, (8, 8), None, "end", False), (37, 50, (16, 16), None, "end", False),
    (150, 200, (101, 101), (96, 96), "center", False), (101, 197, (101, 101), (96, 96), "center", False),
    (60, 96, (53, 53), (48, 48), "center", True), (24, 16, (8, 8), (4, 4), "end", False),
])
def test_tiles_cover_every_pixel_once(height, width, tile, stride, crop, panorama):
    grid = TileGrid(height, width, tile, stride, crop, panorama)
    np.testing.assert_array_equal(coverage(grid), 1)
    assert grid.covered_height >= height and grid.covered_width >= width
    assert grid.covered_height - grid.stride[0] < height  # one row fewer would not cover the image
    if panorama:
        assert grid.offset[1] == 0


def test_centre_crop_of_the_reachable_size():
    grid = TileGrid(150, 200, (101, 101), (96, 96), "center")
    assert (grid.rows, grid.cols, grid.covered_height, grid.covered_width) == (2, 3, 197, 293)
    assert grid.offset == ((197 - 150) // 2, (293 - 200) // 2)


def test_bands_are_the_rows_of_square_tiles():
    bands = plan_bands(50, 37, 16)
    assert [len(band) for band in bands] == [4] * 3
    assert [(t.height, t.width) for t in bands[-1]] == [(5, 16)] * 3 + [(5, 2)]


def test_one_size_limit_and_one_message_for_every_caller(tmp_path):
    too_big = MAX_SIDE + 1
    with pytest.raises(UserError, match=f"canvas width must be an integer between 1 and {MAX_SIDE} pixels"):
        TileGrid(8, too_big, (8, 8))
    with pytest.raises(UserError, match=f"canvas height must be an integer between 1 and {MAX_SIDE} pixels"):
        render_canvas(None, tmp_path / "x.png", 8, 0)
    with pytest.raises(UserError, match=f"--width must be an integer between 1 and {MAX_SIDE} pixels"):
        parse_args(["--width", str(too_big), "--height", "8", "--out", str(tmp_path / "x.png"),
                    "--saved-model", str(tmp_path)])
    TileGrid(MAX_SIDE, MAX_SIDE, (8, 8))  # the limit itself is allowed


def test_panorama_width_message():
    assert panorama_period(96, 16) == 6
    with pytest.raises(UserError, match=r"multiple of 16 px .*got 100, use 96 or 112"):
        panorama_period(100, 16)
    with pytest.raises(UserError, match=r"got 7, use 16$"):
        panorama_period(7, 16)
