"""What every source shares: the global index stream, resize/crop/flip, batching.

Every element carries a global index ``i`` (0, 1, 2, ... over the whole run). All of
its randomness (which file, crop offset, flip) comes from stateless ops seeded by
``(seed, i)``, and the file order of epoch ``e`` is a stateless permutation seeded by
``(seed, e)``. The stream is therefore a pure function of ``(spec, image_size, seed,
preprocessing)``, and a resumed run starts at ``start_index`` without reading the
skipped elements. ``preprocessing`` is a :class:`tfcoord.config.DataConfig` (its
``resize``, ``resize_mode``, ``crop``, ``crop_size``, ``crop_offset`` and ``flip``).
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from tfcoord.config import DataConfig

AUTOTUNE = tf.data.AUTOTUNE
# Stands in for "forever": tf.data has no unbounded range.
FOREVER = 2**62

# Purposes folded into (seed, i) so that the draws of one element are independent.
SOURCE_RANDOMNESS, EPOCH_ORDER, AUGMENTATION = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Source:
    """A data source as ``make_dataset`` sees it.

    ``elements(seed, start_index, training, image_size)`` returns a dataset of
    ``(global index, element)`` pairs from ``start_index`` on (forever when training,
    one pass otherwise). An element is a dict with ``"image"``: uint8 ``(h, w, 3)`` of
    any size, plus any conditions the source provides (``"bbox"``: normalised
    ``ymin, xmin, ymax, xmax`` boxes ``(..., 4)``, ``"label"``, ...).
    ``presized`` sources already render at ``image_size``: no crop, resize or flip.
    ``reduced_decode`` sources decode files at a reduced scale that still covers the size
    they are given (JPEG draft); they are given the size the preprocessing needs
    (:func:`decode_size`), where ``(0, 0)`` asks for full resolution. Other sources
    (rendering ones) are always given ``image_size``.
    """

    elements: Callable[[int, int, bool, tuple[int, int]], tf.data.Dataset]
    presized: bool = False
    reduced_decode: bool = False


def element_seed(seed, index, purpose: int) -> tf.Tensor:
    """The stateless-RNG seed of element (or epoch) ``index`` for one ``purpose``."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.random.experimental.stateless_fold_in(key, purpose)


def index_stream(start_index: int) -> tf.data.Dataset:
    """Global indices ``start_index, start_index + 1, ...`` (int64)."""
    return tf.data.Dataset.range(start_index, FOREVER)


def epoch_order(num_items: int, seed: int, start_index: int, training: bool) -> tf.data.Dataset:
    """``(global index, item)`` pairs that visit items ``0..num_items-1`` once per epoch.

    Training: epochs repeat forever, each in the stateless permutation of (seed, epoch).
    Otherwise: one pass in natural order.
    """
    if not training:
        return tf.data.Dataset.range(start_index, num_items).map(lambda i: (i, i))

    def one_epoch(epoch):
        items = tf.range(num_items, dtype=tf.int64)
        order = tf.random.experimental.stateless_shuffle(items, element_seed(seed, epoch, EPOCH_ORDER))
        return tf.data.Dataset.from_tensor_slices(order)

    first_epoch = start_index // num_items
    # Skipping within one epoch of integers is cheap: nothing is decoded yet.
    items = tf.data.Dataset.range(first_epoch, FOREVER).flat_map(one_epoch)
    items = items.skip(start_index - first_epoch * num_items)
    return tf.data.Dataset.zip(index_stream(start_index), items)


def decode_size(image_size, preprocessing) -> tuple[int, int]:
    """The size a ``reduced_decode`` source must cover: ``(resize, resize)`` before a resize,
    ``(0, 0)`` (full resolution) for a crop measured in the file's own pixels, else ``image_size``."""
    if preprocessing.resize:
        return preprocessing.resize, preprocessing.resize
    if preprocessing.crop_size:
        return 0, 0
    return image_size


def _resized_shape(height, width, preprocessing):
    """The (height, width) after ``preprocessing.resize``."""
    side = preprocessing.resize
    if preprocessing.resize_mode == "square":
        return tf.constant(side), tf.constant(side)
    # torchvision's Resize(int): the shorter side becomes `side`, the longer one int(side * long / short).
    shorter = tf.cast(tf.minimum(height, width), tf.int64)
    new_h = tf.cast(tf.math.floordiv(side * tf.cast(height, tf.int64), shorter), tf.int32)
    new_w = tf.cast(tf.math.floordiv(side * tf.cast(width, tf.int64), shorter), tf.int32)
    return tf.where(height <= width, side, new_h), tf.where(width <= height, side, new_w)


def _fits(crop_size, top, left, height, width, preprocessing):
    """An assertion that the fixed-size window lies inside the image (message names the setting)."""
    message = (f"data.crop {preprocessing.crop} with crop_size {crop_size}"
               + (f" at offset {tuple(preprocessing.crop_offset)}" if preprocessing.crop == "fixed" else "")
               + " does not fit an image (height, width after data.resize) of the data; lower data.crop_size"
               + " or set data.resize")
    fits = (top >= 0) & (left >= 0) & (top + crop_size <= height) & (left + crop_size <= width)
    return tf.debugging.Assert(fits, [message, "image height, width:", height, width])


def _crop_window(height, width, image_size, seed, index, training, preprocessing):
    """The window ``(top, left, crop_h, crop_w)`` of ``preprocessing.crop`` and whether to flip.

    random_largest: the largest window of the target aspect ratio, at a random offset when training
    and centred otherwise; random: a ``crop_size`` square, likewise; centre, fixed and none: the same
    window every time. The flip is drawn when training with ``preprocessing.flip``.
    """
    crop, crop_size = preprocessing.crop, preprocessing.crop_size
    # The draws of element i are the same for every policy: (top, left, flip) uniforms.
    draws = tf.random.stateless_uniform([3], element_seed(seed, index, AUGMENTATION))
    flip = draws[2] < 0.5 if training and preprocessing.flip else tf.constant(False)
    if crop == "none":
        return 0, 0, height, width, flip
    if crop_size:
        crop_h = crop_w = tf.constant(crop_size)
    else:  # the largest window of the target aspect ratio
        target_h, target_w = image_size
        scale = tf.minimum(tf.cast(height, tf.float32) / target_h, tf.cast(width, tf.float32) / target_w)
        crop_h = tf.clip_by_value(tf.cast(tf.round(target_h * scale), tf.int32), 1, height)
        crop_w = tf.clip_by_value(tf.cast(tf.round(target_w * scale), tf.int32), 1, width)
    if crop == "fixed":
        top, left = (tf.constant(v) for v in preprocessing.crop_offset)
    elif crop == "centre" or not training:
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    else:  # random_largest, random
        top = tf.minimum(tf.cast(draws[0] * tf.cast(height - crop_h + 1, tf.float32), tf.int32), height - crop_h)
        left = tf.minimum(tf.cast(draws[1] * tf.cast(width - crop_w + 1, tf.float32), tf.int32), width - crop_w)
    if crop_size:
        with tf.control_dependencies([_fits(crop_size, top, left, height, width, preprocessing)]):
            top, left = tf.identity(top), tf.identity(left)
    return top, left, crop_h, crop_w, flip


def _move_boxes(boxes, height, width, top, left, crop_h, crop_w, flip):
    """Normalised ``ymin, xmin, ymax, xmax`` boxes of the full image, in the cropped (and flipped) frame."""
    height, width, top, left, crop_h, crop_w = (
        tf.cast(v, boxes.dtype) for v in (height, width, top, left, crop_h, crop_w))
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    ymin, ymax = ((y * height - top) / crop_h for y in (ymin, ymax))
    xmin, xmax = ((x * width - left) / crop_w for x in (xmin, xmax))
    xmin, xmax = tf.where(flip, 1 - xmax, xmin), tf.where(flip, 1 - xmin, xmax)
    return tf.clip_by_value(tf.stack([ymin, xmin, ymax, xmax], axis=-1), 0.0, 1.0)


def _move_keypoints(keypoints, height, width, top, left, crop_h, crop_w, flip, flip_order=None):
    """Normalised ``(x, y, visibility)`` rows (K, 3) of the full image, in the cropped (and flipped) frame.

    Parts that leave the window become invisible (all zero, as invisible parts are stored).
    On a flip, ``flip_order`` (K,) relabels the parts whose side changes (left eye <-> right eye).
    """
    height, width, top, left, crop_h, crop_w = (
        tf.cast(v, keypoints.dtype) for v in (height, width, top, left, crop_h, crop_w))
    x, y, visibility = tf.unstack(keypoints, axis=-1)
    x, y = (x * width - left) / crop_w, (y * height - top) / crop_h
    x = tf.where(flip, 1 - x, x)
    keep = (visibility > 0) & (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
    moved = tf.where(keep[:, None], tf.stack([x, y, visibility], axis=-1), tf.zeros_like(keypoints))
    if flip_order is not None:
        moved = tf.where(flip, tf.gather(moved, flip_order), moved)
    return moved


def to_unit_range(image) -> tf.Tensor:
    """uint8 (or float 0..255) pixels as float32 in [-1, 1]."""
    return tf.clip_by_value(tf.cast(image, tf.float32) / 127.5 - 1.0, -1.0, 1.0)


def fit_to_size(index, element, *, image_size, seed, training, preprocessing=None):
    """Applies ``preprocessing`` (default :class:`~tfcoord.config.DataConfig`: the largest window of
    ``image_size``'s aspect, at a random offset and flipped at random when training, centred otherwise)
    to the element's image: resize, crop, resize to ``image_size``, flip; maps it to [-1, 1] and
    moves its boxes and keypoints along with it."""
    preprocessing = preprocessing or DataConfig()
    image = element["image"]
    if preprocessing.resize:
        height, width = _resized_shape(tf.shape(image)[0], tf.shape(image)[1], preprocessing)
        image = tf.image.resize(image, tf.stack([height, width]), antialias=True)
    else:
        height, width = tf.shape(image)[0], tf.shape(image)[1]
    top, left, crop_h, crop_w, flip = _crop_window(height, width, image_size, seed, index, training, preprocessing)
    window = image[top:top + crop_h, left:left + crop_w]
    # Antialiasing matters when large photos shrink to GAN sizes; upscaling (P18) is plain bilinear.
    resized = tf.image.resize(window, image_size, antialias=True)
    resized = tf.cond(flip, lambda: tf.reverse(resized, axis=[1]), lambda: resized)
    out = dict(element, image=to_unit_range(resized))
    # Boxes and keypoints are fractions of the image, so the first resize leaves them where they are.
    if "bbox" in element:
        out["bbox"] = _move_boxes(element["bbox"], height, width, top, left, crop_h, crop_w, flip)
    if "keypoints" in element:
        out["keypoints"] = _move_keypoints(element["keypoints"], height, width, top, left, crop_h, crop_w, flip,
                                           element.get("keypoint_flip_order"))
        out["flipped"] = flip  # lets a model undo the relabelling (GAWWN quirk W4)
    return out


def build(source: Source, *, image_size, batch_size, seed, start_index, training,
          preprocessing=None) -> tf.data.Dataset:
    """Batches (``drop_remainder``) of a source's elements at ``image_size`` in [-1, 1].

    ``preprocessing`` (a :class:`~tfcoord.config.DataConfig`; default: its defaults) does not
    apply to presized sources.
    """
    preprocessing = preprocessing or DataConfig()
    requested = decode_size(image_size, preprocessing) if source.reduced_decode else image_size
    pairs = source.elements(seed, start_index, training, requested)
    if source.presized:
        elements = pairs.map(lambda index, element: dict(element, image=to_unit_range(element["image"])))
    else:
        elements = pairs.map(
            lambda index, element: fit_to_size(index, element, image_size=image_size, seed=seed, training=training,
                                               preprocessing=preprocessing),
            num_parallel_calls=AUTOTUNE, deterministic=True)
    batches = elements.batch(batch_size, drop_remainder=True, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return batches.prefetch(AUTOTUNE).with_options(options)
