"""GAWWN's box warp: a spatial transformer built from gathers (Reed et al., NeurIPS 2016, §3.1).

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

The sampler gathers from the zero-padded, flattened map (tensorflow.md §10.1) instead
of using ``ImageProjectiveTransformV3`` / ``keras.ops.image.affine_transform``, whose
image gradient is wrong for scaling warps, which has no gradient for the transform and
which does not convert to TFLite builtins (P11, P12). Here the gradients with respect to
the features and to the box are exact (away from the kinks where a tap crosses a pixel,
where like stnbhwd it is one-sided) and the graph converts to GATHER, FLOOR, ... .
``keras.ops`` only: runs on every Keras backend.
"""

from __future__ import annotations

import keras
from keras import ops


def box_to_affine(boxes):
    """Crop transform ``theta`` (B, 2, 3) of boxes ``(ymin, xmin, ymax, xmax)`` (B, 4) in [0, 1].

    ``theta`` maps the corner-aligned output grid [-1, 1]^2 onto the box: output -1
    reads the box's top/left edge, +1 its bottom/right edge.
    """
    boxes = ops.convert_to_tensor(boxes)
    if not keras.backend.is_float_dtype(boxes.dtype):
        boxes = ops.cast(boxes, "float32")
    ymin, xmin, ymax, xmax = ops.unstack(boxes, 4, axis=-1)
    scale_y, scale_x = ymax - ymin, xmax - xmin
    shift_y, shift_x = ymin + ymax - 1.0, xmin + xmax - 1.0  # 2 * centre - 1
    zero = ops.zeros_like(scale_y)
    rows = [ops.stack([scale_y, zero, shift_y], axis=-1), ops.stack([zero, scale_x, shift_x], axis=-1)]
    return ops.stack(rows, axis=-2)


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


def affine_source_points(theta, height: int, width: int, align_corners: bool = True):
    """Where each pixel of a (height, width) output reads: normalised (y, x), each (B, H, W).

    The output grid is stnbhwd's corner-aligned ``-1 + 2 i / (n - 1)`` (quirk W1), or with
    ``align_corners=False`` the pixel-centre grid ``-1 + (2 i + 1) / n``.
    """
    grid_y, grid_x = _grid(height, align_corners), _grid(width, align_corners)
    grid_y = ops.reshape(ops.cast(grid_y, theta.dtype), (1, height, 1))
    grid_x = ops.reshape(ops.cast(grid_x, theta.dtype), (1, 1, width))

    def row(i):
        coefficient = [ops.reshape(theta[:, i, k], (-1, 1, 1)) for k in range(3)]
        return coefficient[0] * grid_y + coefficient[1] * grid_x + coefficient[2]

    return row(0), row(1)


def bilinear_sample(features, y, x, align_corners: bool = True):
    """Bilinear samples of ``features`` (B, h, w, C) at normalised points ``y, x`` (B, H, W).

    Corner aligned: normalised -1 is the centre of the first pixel and +1 the centre of the
    last (pixel ``(y + 1) (h - 1) / 2``); otherwise -1 and +1 are the outer edges of the map
    (pixel ``((y + 1) h - 1) / 2``). Every tap outside the map reads 0. Returns (B, H, W, C).
    """
    shape = ops.shape(features)
    batch = shape[0]
    height, width, channels = features.shape[1], features.shape[2], features.shape[3]
    out_h, out_w = y.shape[1], y.shape[2]
    # A one-pixel zero border: taps just outside read it, taps far outside are clipped onto it.
    padded = ops.pad(features, ((0, 0), (1, 1), (1, 1), (0, 0)))
    flat = ops.reshape(padded, (-1, channels))
    if align_corners:
        pixel_y, pixel_x = (y + 1.0) * (0.5 * (height - 1)), (x + 1.0) * (0.5 * (width - 1))
    else:
        pixel_y, pixel_x = ((y + 1.0) * float(height) - 1.0) * 0.5, ((x + 1.0) * float(width) - 1.0) * 0.5
    y0, x0 = ops.floor(pixel_y), ops.floor(pixel_x)
    # Weights from the fractional part, not 1 - |p - tap|: abs'(0) = 0 would zero d/dbox at integer taps.
    frac_y, frac_x = pixel_y - y0, pixel_x - x0
    y0 = ops.cast(ops.clip(y0, -2.0, float(height + 1)), "int32")
    x0 = ops.cast(ops.clip(x0, -2.0, float(width + 1)), "int32")
    batch_offset = ops.reshape(ops.arange(batch, dtype="int32") * ((height + 2) * (width + 2)), (-1, 1, 1))
    out = None
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        row = ops.clip(y0 + (dy + 1), 0, height + 1)
        col = ops.clip(x0 + (dx + 1), 0, width + 1)
        taps = ops.take(flat, ops.reshape(batch_offset + row * (width + 2) + col, (-1,)), axis=0)
        weight = (frac_y if dy else 1.0 - frac_y) * (frac_x if dx else 1.0 - frac_x)
        term = ops.reshape(taps, (-1, out_h, out_w, channels)) * ops.expand_dims(weight, -1)
        out = term if out is None else out + term
    return out


def affine_warp(features, theta, height: int | None = None, width: int | None = None, align_corners: bool = True):
    """stnbhwd ``AffineGridGeneratorBHWD`` + ``BilinearSamplerBHWD``: (B, h, w, C) -> (B, H, W, C)."""
    height = features.shape[1] if height is None else height
    width = features.shape[2] if width is None else width
    y, x = affine_source_points(theta, height, width, align_corners)
    return bilinear_sample(features, y, x, align_corners)


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
