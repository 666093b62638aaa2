"""Structural checks on class maps (from the feature network or the renderer) and on pixels.

Every check is a pure NumPy function; a class map is int (N, H, W) in the domain's
classes (:mod:`.domains`).

Birds (GAWWN, "what and where"):

* :func:`box_fractions` -- the share of the bird's pixels (any part) inside the requested box;
* :func:`colour_matches` -- for each part a caption names a colour for, whether the dominant
  named colour (nearest palette colour) of the pixels labelled as that part is the caption's;
  a part with fewer than 4 labelled pixels is a miss;
* :func:`keypoint_distances` -- for each given keypoint, the distance to the nearest pixel
  labelled as its part, as a fraction of the image side (None where the part is missing).

Landscapes:

* :func:`sky_above_ground` -- whether every column has sky at the top, water or ground at the
  bottom and no sky below its first water or ground pixel: one horizon, sky above it (the
  renderer's own class maps pass in every column: a ridge thinner than a pixel can leave one
  row of sky between a ridge and a lake, so ridges may lie between sky pixels);
* :func:`horizon_rows` / :func:`horizon_jumps` -- the horizon row (the first water or ground
  pixel from the top, the line ridges and shore stand on) per column strip, and how far it
  jumps between neighbouring strips, for canvases wider than the training size;
* :func:`seam_ratio` -- the mean squared step between neighbouring pixels across the borders of a
  patch grid divided by the same inside the patches: 1.0 when the borders are
  indistinguishable, above 1 for visible seams (COCO-GAN's micro patches).
"""

from __future__ import annotations

import numpy as np

MIN_PART_PIXELS = 4  # fewer labelled pixels than this: the part is missing


# -- birds ----------------------------------------------------------------------------------------
def _inside_box(height, width, box) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    ymin, xmin, ymax, xmax = np.asarray(box, np.float64) * (height, width, height, width)
    return (rows >= ymin) & (rows <= ymax) & (cols >= xmin) & (cols <= xmax)


def box_fractions(labels, boxes) -> np.ndarray:
    """Per image, the share of bird pixels (label > 0) inside ``boxes`` (N, 4) = (ymin, xmin, ymax, xmax)."""
    labels = np.asarray(labels)
    fractions = []
    for label, box in zip(labels, boxes):
        bird = label > 0
        fractions.append((bird & _inside_box(*label.shape, box)).sum() / max(bird.sum(), 1))
    return np.asarray(fractions, np.float64)


def colour_matches(images, captions, labels) -> list[float]:
    """1.0 / 0.0 per (image, part whose colour its caption names): is the part's dominant colour the named one?"""
    from tfcoord.data.synthetic_birds import PALETTE, PART_IDS, caption_colours

    names = list(PALETTE)
    table = np.array([PALETTE[n] for n in names], np.float32)
    matches = []
    for image, caption, label in zip(images, captions, labels):
        nearest = np.argmin(((np.asarray(image)[..., None, :] / 255.0 - table) ** 2).sum(-1), axis=-1)
        for part, colour in caption_colours(caption).items():
            region = np.isin(label, PART_IDS[part])
            if region.sum() < MIN_PART_PIXELS:
                matches.append(0.0)
                continue
            dominant = names[int(np.bincount(nearest[region], minlength=len(names)).argmax())]
            matches.append(float(dominant == colour))
    return matches


def keypoint_distances(labels, keypoints) -> list[float | None]:
    """Per visible keypoint (N, K, 3) = (x, y, visibility) of the CUB parts, the distance to its nearest part pixel.

    Distances are in fractions of the image side (x by the width, y by the height); None
    where fewer than ``MIN_PART_PIXELS`` pixels carry the keypoint's part.
    """
    from tfcoord.data.gawwn.parts import CUB_PARTS
    from tfcoord.data.synthetic_birds import KEYPOINT_PART_IDS

    distances = []
    for label, points in zip(np.asarray(labels), np.asarray(keypoints)):
        height, width = label.shape
        for name, (x, y, visible) in zip(CUB_PARTS, points):
            if visible <= 0:
                continue
            rows, cols = np.nonzero(np.isin(label, KEYPOINT_PART_IDS[name]))
            if len(rows) < MIN_PART_PIXELS:
                distances.append(None)
                continue
            distances.append(float(np.sqrt(((cols + 0.5) / width - x) ** 2 + ((rows + 0.5) / height - y) ** 2).min()))
    return distances


# -- landscapes -----------------------------------------------------------------------------------
def _land_ids():
    from tfcoord.data.synthetic_landscapes import GROUND, SKY, WATER

    return SKY, (WATER, GROUND)


def sky_above_ground(labels) -> np.ndarray:
    """Per image (bool): in every column sky is at the top, water or ground at the bottom, and every sky pixel
    lies above every water or ground pixel (ridges may stand between them)."""
    sky_id, surface_ids = _land_ids()
    labels = np.asarray(labels)
    height = labels.shape[1]
    rows = np.arange(height)[None, :, None]
    sky, surface = labels == sky_id, np.isin(labels, surface_ids)
    lowest_sky = np.where(sky, rows, -1).max(axis=1)
    highest_surface = np.where(surface, rows, height).min(axis=1)
    columns = sky[:, 0, :] & surface[:, -1, :] & (lowest_sky < highest_surface)
    return np.all(columns, axis=1)


def horizon_rows(labels, strip: int) -> np.ndarray:
    """(N, strips) horizon row of each ``strip``-column strip (median over its columns) as a fraction of the height.

    A column's horizon row is its first water or ground pixel from the top (the height when none).
    """
    _, surface = _land_ids()
    labels = np.asarray(labels)
    height, width = labels.shape[1:]
    land = np.isin(labels, surface)
    first = np.where(land.any(axis=1), land.argmax(axis=1), height).astype(np.float64)  # (N, W)
    strips = width // strip
    per_strip = first[:, :strips * strip].reshape(len(labels), strips, strip)
    return np.median(per_strip, axis=2) / height


def horizon_jumps(labels, strip: int) -> np.ndarray:
    """(N, strips - 1) absolute change of the horizon row between neighbouring strips (fractions of the height)."""
    return np.abs(np.diff(horizon_rows(labels, strip), axis=1))


def seam_ratio(images, patch: int) -> float:
    """Squared neighbour differences across the borders of a ``patch`` grid over those inside the patches.

    Both directions are pooled; the image's own edges are not borders. 1.0: borders look like
    the interior.
    """
    images = np.asarray(images, np.float64)
    seam, interior = [], []
    for axis in (1, 2):
        steps = (np.diff(images, axis=axis) ** 2).sum(axis=-1)  # step j lies between pixels j and j + 1
        border = (np.arange(steps.shape[axis]) + 1) % patch == 0
        seam.append(np.compress(border, steps, axis=axis).ravel())
        interior.append(np.compress(~border, steps, axis=axis).ravel())
    return float(np.concatenate(seam).mean() / max(np.concatenate(interior).mean(), 1e-12))
