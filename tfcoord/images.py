"""Image helpers: [-1, 1] floats to uint8 and back, sample grids, PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfcoord.errors import UserError


def to_uint8(images) -> np.ndarray:
    """[-1, 1] floats -> uint8 (rounded, clipped)."""
    images = np.asarray(images, dtype="float32")
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def open_rgb(path, option: str = "") -> Image.Image:
    """An image file in RGB, or a UserError naming it (after the CLI ``option`` that gave it, if any)."""
    try:
        return Image.open(path).convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"{option + ' ' if option else ''}{path} is not a readable image ({err})") from None


def to_float(image) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1]."""
    return (np.asarray(image, "float32") / 127.5 - 1.0).astype("float32")


def image_grid(images, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile (N, H, W, 3) images into one (rows*H, columns*W, 3) uint8 grid with white gaps."""
    images = to_uint8(images) if np.asarray(images).dtype != np.uint8 else np.asarray(images)
    count, height, width, channels = images.shape
    columns = columns or max(1, int(math.ceil(math.sqrt(count))))
    rows = int(math.ceil(count / columns))
    grid = np.full((rows * (height + padding) - padding, columns * (width + padding) - padding, channels),
                   255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (height + padding):r * (height + padding) + height,
             c * (width + padding):c * (width + padding) + width] = image
    return grid


def save_png(image, path) -> Path:
    """Write one image ((H, W, 3) uint8 or [-1, 1] float) as PNG; the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(image)
    Image.fromarray(array if array.dtype == np.uint8 else to_uint8(array)).save(path)
    return path
