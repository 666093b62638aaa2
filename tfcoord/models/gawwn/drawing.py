"""Boxes and parts drawn onto images, and the sample grid the trainer writes for a GAWWN run."""

from __future__ import annotations

import math

import numpy as np

BOX_COLOUR = np.array([255, 0, 255], np.uint8)
PART_COLOURS = np.array([[255, 255, 255], [255, 64, 64], [64, 255, 64], [64, 160, 255], [255, 220, 0]], np.uint8)


def draw_condition(pixels, condition, conditioning):
    """Draw a box outline (magenta) or part dots into uint8 ``pixels`` (H, W, 3) in place."""
    height, width = pixels.shape[:2]
    if conditioning == "box":
        ymin, xmin, ymax, xmax = np.asarray(condition, np.float64)
        top, bottom = (int(np.clip(v, 0, height - 1)) for v in (round(ymin * height), round(ymax * height) - 1))
        left, right = (int(np.clip(v, 0, width - 1)) for v in (round(xmin * width), round(xmax * width) - 1))
        pixels[top, left:right + 1] = pixels[bottom, left:right + 1] = BOX_COLOUR
        pixels[top:bottom + 1, left] = pixels[top:bottom + 1, right] = BOX_COLOUR
        return
    for i, (x, y, visible) in enumerate(np.asarray(condition)):
        if visible > 0:
            row, col = int(np.clip(y * height, 0, height - 1)), int(np.clip(x * width, 0, width - 1))
            pixels[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = PART_COLOURS[i % len(PART_COLOURS)]


def annotate(image, condition, conditioning) -> np.ndarray:
    """The image as float [-1, 1] with its box outline or part dots drawn in."""
    from tfcoord.images import to_float, to_uint8

    pixels = to_uint8(image).copy()
    draw_condition(pixels, condition, conditioning)
    return to_float(pixels)


def moved_conditions(condition, conditioning, count):
    """``condition`` (a box, or keypoints (K, 3)), then ``count - 1`` copies moved across the image."""
    if conditioning == "box":
        box = np.asarray(condition, np.float32)
        boxes = [box]
        width = box[3] - box[1]
        for left in np.linspace(0.0, 1.0 - width, max(count - 1, 1)) if count > 1 else []:
            boxes.append(np.array([box[0], left, box[2], left + width], np.float32))
        return boxes[:count]
    keypoints = np.asarray(condition)
    out = [keypoints]
    visible = keypoints[:, 2] > 0
    if visible.any():
        low, high = keypoints[visible, 0].min(), keypoints[visible, 0].max()
        for left in np.linspace(0.02, 0.98 - (high - low), max(count - 1, 1)) if count > 1 else []:
            moved = keypoints.copy()
            moved[visible, 0] += left - low
            out.append(moved)
    while len(out) < count:
        out.append(keypoints)
    return out[:count]


def grid_shape(num: int) -> tuple[int, int]:
    """(rows, columns) of a sample grid of ``num`` images."""
    columns = max(2, int(math.ceil(math.sqrt(num))))  # a row is the real image, then what G drew: num=1 failed
    return int(math.ceil(num / columns)), columns


def sample_grid_images(sampler, elements, conditions, seed: int, num: int) -> np.ndarray:
    """Rows of one data element each: its image and condition, G at that condition, then at it moved.

    ``elements``: the first ``grid_shape(num)[0]`` data elements (images, captions); ``conditions``: their
    boxes or keypoints. Returns the first ``num`` images (num, S, S, 3) in [-1, 1], conditions drawn in.
    """
    conditioning = sampler.config.model.conditioning
    rows, columns = grid_shape(num)
    text = sampler.data_text(elements)
    z = sampler.latents(seed, rows)
    images = []
    for row in range(rows):
        moved = moved_conditions(conditions[row], conditioning, columns - 1)
        fakes = sampler.generate(np.repeat(z[row:row + 1], columns - 1, 0),
                                 np.repeat(text[row:row + 1], columns - 1, 0), np.stack(moved))
        images.append(annotate(elements["image"][row], conditions[row], conditioning))
        images.extend(annotate(fake, condition, conditioning) for fake, condition in zip(fakes, moved))
    return np.stack(images[:num])
