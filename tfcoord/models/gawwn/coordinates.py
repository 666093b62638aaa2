"""Where GAWWN draws (Reed et al., NeurIPS 2016; models.md §3.2): positions as fractions of the image.

Origin top left, x to the right, y down. Boxes are (ymin, xmin, ymax, xmax) inside the
networks and the serving signatures (the data pipeline's box order) and (x, y, w, h) on the
command line and in the JSONL annotations (:func:`tfcoord.data.gawwn.annotations.box_corners`
turns one into the other); keypoints are (x, y, visibility) rows. A box becomes the spatial
transformer's affine map in :func:`tfcoord.layers.box_warp.box_to_affine`; a keypoint becomes
one cell of a 16 x 16 map (:func:`map_cell`).
"""

from __future__ import annotations

from keras import ops


def map_cell(value, size: int = 16):
    """The 0-based cell of a fraction on a ``size``-cell axis: ``clamp(floor(size * v + 0.5), 1, size) - 1``.

    The official loader rounds 1-based pixels of the 16 x 16 map, so the cell borders sit half
    a cell off the pixel grid; values at 0 and 1 land in the first and last cell.
    """
    return ops.cast(ops.clip(ops.floor(size * value + 0.5), 1.0, float(size)) - 1.0, "int32")
