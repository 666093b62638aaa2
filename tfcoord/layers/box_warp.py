"""GAWWN's box warp: a spatial transformer as two batched matmuls (Reed et al., NeurIPS 2016, §3.1).

GAWWN moves 16 x 16 feature maps into and out of bounding boxes with the spatial
transformer of ``qassemoquab/stnbhwd`` (models.md §3.2):

* a box ``(ymin, xmin, ymax, xmax)`` in [0, 1] becomes the affine map
  ``theta = [[s_y, 0, t_y], [0, s_x, t_x]]`` with ``s = box size`` and
  ``t = 2 * box centre - 1`` (rows produce (y, x), BHWD convention);
* the output grid is corner aligned, ``g_i = -1 + 2 i / (n - 1)``; output pixel g reads
  the source at ``theta @ (g_y, g_x, 1)``, i.e. pixel ``(y + 1) (h - 1) / 2``;
* sampling is bilinear and each of the four taps reads **0 outside** the map.

The discriminator *crops* a box with ``theta`` (the box is stretched over the whole
output); the generator *pastes* a map into the box with ``theta^-1`` (``CropInvert.lua``),
leaving zeros outside it.

A box transform has no rotation or shear, so bilinear sampling separates into a row
and a column interpolation matrix, each with two non-zero weights per row, applied as
batched matmuls. ``ImageProjectiveTransformV3`` / ``keras.ops.image.affine_transform``
are not used: their image gradient is wrong for scaling warps, they have no gradient for
the transform and they do not convert to TFLite builtins (tensorflow.md P11, P12).
Gathering the four taps from the flattened map (§10.1) gives the same numbers, but
matmuls are faster in TensorFlow, above all in training (the backward pass of a gather is
a scatter), and in TFLite they run inside XNNPACK, which has no GATHER. The gradients with respect
to the features and to the box are exact (away from the kinks where a tap crosses a
pixel, where like stnbhwd it is one-sided). ``keras.ops`` only: runs on every Keras backend.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


# Rows: ymin, xmin, ymax, xmax; columns: theta's (0,0) (0,1) (0,2) (1,0) (1,1) (1,2).
BOX_TO_THETA = np.array([[-1, 0, 1, 0, 0, 0], [0, 0, 0, 0, -1, 1], [1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]], "float32")
THETA_OFFSET = np.array([0, 0, -1, 0, 0, -1], "float32")


def box_to_affine(boxes):
    """Crop transform ``theta`` (B, 2, 3) of boxes ``(ymin, xmin, ymax, xmax)`` (B, 4) in [0, 1].

    ``theta`` maps the corner-aligned output grid [-1, 1]^2 onto the box: output -1
    reads the box's top/left edge, +1 its bottom/right edge.
    """
    boxes = ops.convert_to_tensor(boxes)
    if not keras.backend.is_float_dtype(boxes.dtype):
        boxes = ops.cast(boxes, "float32")
    # theta = [[ymax - ymin, 0, ymin + ymax - 1], [0, xmax - xmin, xmin + xmax - 1]] (shift = 2 * centre - 1) as
    # one matmul with coefficients 0 and +-1, which is exact, rather than an unstack: TFLite's GPU delegate has
    # no UNPACK op.
    flat = ops.matmul(boxes, ops.convert_to_tensor(BOX_TO_THETA, boxes.dtype))
    return ops.reshape(flat + ops.convert_to_tensor(THETA_OFFSET, boxes.dtype), (-1, 2, 3))


def invert_affine(theta):
    """``theta^-1`` of a diagonal crop transform (``CropInvert.lua``): pastes instead of crops.

    ``[[s_y, 0, t_y], [0, s_x, t_x]]`` -> ``[[1/s_y, 0, -t_y/s_y], [0, 1/s_x, -t_x/s_x]]``.
    Degenerate boxes (size 0) are the caller's to refuse; here a size is floored at 1e-6.
    """
    scale_y = ops.maximum(theta[:, 0, 0], 1e-6)
    scale_x = ops.maximum(theta[:, 1, 1], 1e-6)
    zero = ops.zeros_like(scale_y)
    rows = [ops.stack([1.0 / scale_y, zero, -theta[:, 0, 2] / scale_y], axis=-1),
            ops.stack([zero, 1.0 / scale_x, -theta[:, 1, 2] / scale_x], axis=-1)]
    return ops.stack(rows, axis=-2)


def _grid(n: int, align_corners: bool):
    if align_corners:
        return ops.linspace(-1.0, 1.0, n) if n > 1 else ops.zeros((1,))
    return (2.0 * ops.arange(n, dtype="float32") + 1.0) / float(n) - 1.0


def interpolation_matrix(points, size: int, align_corners: bool = True):
    """Bilinear weights ``(B, n, size)`` of normalised points ``(B, n)`` on an axis of ``size`` pixels.

    Row i holds the two taps of ``points[:, i]``: ``1 - f`` at pixel ``floor(p)`` and ``f`` at
    ``floor(p) + 1`` (``p`` the pixel position, ``f`` its fraction); a tap outside the axis
    has no column and reads 0. Corner aligned, normalised -1 and +1 are the centres of the
    first and last pixel (``p = (y + 1) (size - 1) / 2``); otherwise the outer edges
    (``p = ((y + 1) size - 1) / 2``).
    """
    if align_corners:
        pixel = (points + 1.0) * (0.5 * (size - 1))
    else:
        pixel = ((points + 1.0) * float(size) - 1.0) * 0.5
    first = ops.floor(pixel)
    # Weights from the fractional part, not 1 - |p - tap|: abs'(0) = 0 would zero d/dbox at integer taps.
    fraction = ops.expand_dims(pixel - first, -1)
    first = ops.expand_dims(first, -1)
    # Counted in float32 (exact either way): TensorFlow has no float16 range kernel in graphs.
    index = ops.reshape(ops.cast(ops.arange(size, dtype="float32"), pixel.dtype), (1, 1, size))
    at_first = ops.cast(ops.equal(index, first), pixel.dtype)
    at_second = ops.cast(ops.equal(index, first + 1.0), pixel.dtype)
    return (1.0 - fraction) * at_first + fraction * at_second


def affine_warp(features, theta, height: int | None = None, width: int | None = None, align_corners: bool = True):
    """stnbhwd ``AffineGridGeneratorBHWD`` + ``BilinearSamplerBHWD`` for axis-aligned ``theta``.

    ``features`` (B, h, w, C) -> (B, H, W, C). ``theta`` (B, 2, 3) must have zero
    off-diagonal terms (``theta[:, 0, 1] = theta[:, 1, 0] = 0``, true of every box
    transform): output row i then reads source row ``s_y g_i + t_y`` whatever the column,
    so the bilinear sampler is ``R F C^T`` per channel, with ``R`` (H, h) and ``C`` (W, w)
    the :func:`interpolation_matrix` of the rows and columns. The output grid is stnbhwd's
    corner-aligned ``g_i = -1 + 2 i / (n - 1)`` (quirk W1), or with ``align_corners=False``
    the pixel-centre grid ``-1 + (2 i + 1) / n``.
    """
    source_h, source_w, channels = features.shape[1], features.shape[2], features.shape[3]
    height = source_h if height is None else height
    width = source_w if width is None else width
    grid_y = ops.reshape(ops.cast(_grid(height, align_corners), theta.dtype), (1, height))
    grid_x = ops.reshape(ops.cast(_grid(width, align_corners), theta.dtype), (1, width))
    rows = interpolation_matrix(theta[:, 0, 0:1] * grid_y + theta[:, 0, 2:3], source_h, align_corners)
    cols = interpolation_matrix(theta[:, 1, 1:2] * grid_x + theta[:, 1, 2:3], source_w, align_corners)
    rows = ops.cast(rows, features.dtype)
    cols = ops.cast(cols, features.dtype)
    # Rows: one matmul over (h, w C); columns: per output row, (W, w) @ (w, C).
    sampled_rows = ops.matmul(rows, ops.reshape(features, (-1, source_h, source_w * channels)))
    sampled_rows = ops.reshape(sampled_rows, (-1, source_w, channels))  # (B H, w, C)
    cols = ops.reshape(ops.tile(ops.expand_dims(cols, 1), (1, height, 1, 1)), (-1, width, source_w))
    return ops.reshape(ops.matmul(cols, sampled_rows), (-1, height, width, channels))


def crop_boxes(features, boxes, height: int | None = None, width: int | None = None, align_corners: bool = True):
    """The content of each box stretched over a (height, width) map (GAWWN D's local path)."""
    return affine_warp(features, box_to_affine(boxes), height, width, align_corners)


def paste_into_boxes(features, boxes, height: int | None = None, width: int | None = None,
                     align_corners: bool = True):
    """Each map squeezed into its box of a (height, width) canvas, zero outside (GAWWN G)."""
    return affine_warp(features, invert_affine(box_to_affine(boxes)), height, width, align_corners)


@keras.saving.register_keras_serializable(package="tfcoord")
class BoxWarp(keras.layers.Layer):
    """Crops boxes out of, or pastes maps into, feature maps: ``layer([features, boxes])``.

    Args:
        mode: ``"crop"`` (D: the box stretched over the output) or ``"paste"`` (G: the map
            squeezed into the box, zeros outside).
        size: (height, width) of the output; default the input's.
        align_corners: stnbhwd's corner-aligned grid (GAWWN quirk W1) or the pixel-centre grid.

    Example:
        >>> paste = BoxWarp("paste")
        >>> paste([ops.ones((2, 16, 16, 8)), ops.convert_to_tensor([[0.2, 0.1, 0.6, 0.5]] * 2)]).shape
        (2, 16, 16, 8)
    """

    def __init__(self, mode: str = "crop", size=None, align_corners: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = align_corners
        if mode not in ("crop", "paste"):
            raise ValueError(f"BoxWarp mode must be 'crop' or 'paste', got {mode!r}")
        self.mode = mode
        self.size = None if size is None else tuple(size)

    def call(self, inputs):
        features, boxes = inputs
        height, width = self.size if self.size is not None else (None, None)
        warp = crop_boxes if self.mode == "crop" else paste_into_boxes
        return warp(features, boxes, height, width, self.align_corners)

    def compute_output_shape(self, input_shapes):
        features_shape = input_shapes[0]
        height, width = self.size if self.size is not None else features_shape[1:3]
        return (features_shape[0], height, width, features_shape[3])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "size": self.size, "align_corners": self.align_corners}
