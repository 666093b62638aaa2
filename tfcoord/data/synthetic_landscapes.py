"""Procedural landscapes: a default data set that needs no files and no download.

Each scene is a pure function of ``(seed, index, height, width)``, drawn back to front
with TF ops: a day/dusk/night sky gradient (stars at night), a sun or moon disc with
glow, three hazy mountain ridges (fractal 1-D value noise, farther ridges lighter and
bluer through aerial perspective), a lake below the horizon with a darkened, rippled
reflection, and a textured foreground. Lengths are in units of the image height, so
wide images show more of the same kind of scene rather than stretched ones.

:func:`render_scene` also returns the ground truth the pixels were drawn from (the
quality evaluator's labels, :mod:`tfcoord.metrics.quality`): a per-pixel class map
(:data:`CLASSES`: the layer painted last where its soft mask passes one half) and the
horizon row (the shore line a lake ends at and the ridges stand on).
"""

import numpy as np
import tensorflow as tf

from tfcoord.data.pipeline import AUTOTUNE, SOURCE_RANDOMNESS, Source, element_seed, index_stream
from tfcoord.errors import UserError

# Sky top, sky at the horizon, sun/moon colour and scene brightness, from day through dusk to night.
# (NumPy, not tf.constant: importing this module must not start the TF runtime before
# logical devices are configured.)
_SKY_TOP = np.array([[0.22, 0.45, 0.82], [0.24, 0.18, 0.45], [0.02, 0.03, 0.09]], np.float32)
_SKY_HORIZON = np.array([[0.72, 0.84, 0.95], [0.98, 0.55, 0.32], [0.10, 0.13, 0.26]], np.float32)
_SUN = np.array([[1.00, 0.98, 0.90], [1.00, 0.80, 0.45], [0.90, 0.91, 0.86]], np.float32)
_LIGHT = np.array([[1.0], [0.65], [0.22]], np.float32)
# Rock colours of the far, middle and near ridge; snow; foreground grass/earth; deep water.
_RIDGE_ROCK = np.array([[0.42, 0.45, 0.55], [0.33, 0.36, 0.34], [0.22, 0.30, 0.18]], np.float32)
_SNOW = np.array([0.93, 0.94, 0.97], np.float32)
_GROUND = np.array([0.16, 0.26, 0.10], np.float32)
_DEEP_WATER = np.array([0.05, 0.12, 0.18], np.float32)
_NUM_RIDGES = 3
# Per-pixel classes of render_scene, back to front (the painting order).
CLASSES = ("sky", "far ridge", "middle ridge", "near ridge", "water", "ground")
SKY, WATER, GROUND = 0, 4, 5


class _Draws:
    """Independent stateless uniform draws for one scene, numbered by purpose."""

    def __init__(self, key):
        self.key = key

    def __call__(self, purpose, shape=(), low=0.0, high=1.0):
        seed = tf.random.experimental.stateless_fold_in(self.key, purpose)
        return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _lerp(a, b, t):
    return a + (b - a) * t


def _palette(table, time_of_day):
    """Row of ``table`` interpolated at ``time_of_day`` in [0, 2] (0 day, 1 dusk, 2 night)."""
    low = tf.minimum(tf.cast(tf.floor(time_of_day), tf.int32), 1)
    return _lerp(tf.gather(table, low), tf.gather(table, low + 1), time_of_day - tf.cast(low, tf.float32))


def _fractal_noise(x, draws, purpose, base_frequency, octaves=6, ridged=0.0):
    """1-D fractal value noise in [0, 1] at positions ``x`` (any shape); ``ridged`` sharpens peaks like eroded rock."""
    # All octaves at once along a last axis: a short graph traces and optimises in a fraction of the time.
    frequency = base_frequency * 2.0 ** tf.range(octaves, dtype=tf.float32)
    u = x[..., None] * frequency + draws(purpose * 2, [octaves], 0.0, 50.0)
    lattice_size = tf.cast(tf.reduce_max(u), tf.int32) + 2
    lattice = tf.reshape(draws(purpose * 2 + 1, tf.stack([octaves, lattice_size])), [-1])
    cell = tf.floor(u)
    t = u - cell
    t = t * t * (3.0 - 2.0 * t)  # smoothstep: no kinks at lattice points
    cell = tf.cast(cell, tf.int32) + tf.range(octaves) * lattice_size
    value = _lerp(tf.gather(lattice, cell), tf.gather(lattice, cell + 1), t)
    value = _lerp(value, 1.0 - tf.abs(2.0 * value - 1.0), ridged)
    amplitude = 0.5 ** tf.range(octaves, dtype=tf.float32)
    return tf.reduce_sum(value * amplitude, axis=-1) / tf.reduce_sum(amplitude)


def _sky(y, x, draws, time_of_day, horizon, aspect, height):
    """Sky gradient with stars at night and a sun or moon disc with its glow."""
    top, low = _palette(_SKY_TOP, time_of_day), _palette(_SKY_HORIZON, time_of_day)
    tint = draws(1, [3], -0.06, 0.06)
    curve = draws(2, low=0.6, high=1.6)
    sky = _lerp(top + tint, low + tint, tf.clip_by_value(y / horizon, 0.0, 1.0) ** curve)
    sky = tf.broadcast_to(sky, [tf.shape(y)[0], tf.shape(x)[1], 3])

    night = tf.clip_by_value((time_of_day - 1.3) / 0.7, 0.0, 1.0)
    stars = tf.cast(draws(3, tf.shape(sky)[:2])[..., None] > 0.997, tf.float32)
    sky = sky + stars * night * 0.8

    sun_colour = _palette(_SUN, time_of_day)
    centre_x = draws(4, low=0.1, high=aspect - 0.1)
    centre_y = draws(5, low=0.1, high=1.0) * (horizon - 0.05)
    radius = draws(6, low=0.025, high=0.07)
    visible = tf.cast(draws(7) < 0.7, tf.float32)
    distance = tf.sqrt((x - centre_x) ** 2 + (y - centre_y) ** 2)
    glow = tf.exp(-((distance / (5.0 * radius)) ** 2)) * 0.45 * visible
    disc = tf.sigmoid((radius - distance) * height * 1.5) * visible  # about one pixel of antialiasing
    return _lerp(sky + glow * (sun_colour - sky), sun_colour, disc)


def _draw_layer(canvas, colour, top_edge, y, height, below=None):
    """Paints ``colour`` onto ``canvas`` below the curve ``top_edge`` (and above row ``below``); returns
    the canvas and the layer's soft mask."""
    mask = tf.sigmoid((y - top_edge) * height)
    if below is not None:
        mask = mask * tf.sigmoid((below - y) * height)
    return _lerp(canvas, colour, mask), mask


def _mountains(canvas, y, x, draws, time_of_day, horizon, has_water, grain, height):
    """Three ridges back to front; farther ones lighter and bluer, with mist in their valleys.

    Returns the canvas and the ridges' soft masks, far to near."""
    masks = []
    haze = _palette(_SKY_HORIZON, time_of_day)
    light = _palette(_LIGHT, time_of_day)
    for ridge in range(_NUM_RIDGES):
        depth = ridge / (_NUM_RIDGES - 1)  # 0 farthest, 1 nearest
        # With a lake every ridge stands on the shore line; on land nearer ridges stand lower.
        base = horizon + (1.0 - has_water) * depth * 0.1 + draws(10 + ridge, low=-0.02, high=0.03)
        peak_height = (0.34 - 0.16 * depth) * draws(20 + ridge, low=0.5, high=1.2)
        profile = _fractal_noise(x, draws, 1000 + ridge, draws(40 + ridge, low=1.5, high=3.0), ridged=1.0 - depth)
        # Stretched to [0, 1] so that the highest peak reaches peak_height in every scene.
        profile = (profile - tf.reduce_min(profile)) / (tf.reduce_max(profile) - tf.reduce_min(profile) + 1e-6)
        top_edge = base - peak_height * profile

        rock = (_RIDGE_ROCK[ridge] + draws(50 + ridge, [3], -0.05, 0.05)) * light
        # A ragged snow line with gullies: a straight one reads as a flat plateau edge.
        gullies = _fractal_noise(x, draws, 1010 + ridge, 12.0, octaves=4, ridged=1.0)
        snow_line = base - peak_height * (draws(65 + ridge, low=0.6, high=1.3) - 0.35 * (gullies - 0.5))
        snow = tf.sigmoid((snow_line - y) * height) * float(ridge < 2)
        colour = _lerp(rock, _SNOW * light, snow)
        colour = colour * (1.0 + (0.1 + 0.15 * depth) * (grain - 0.5))
        aerial = 0.55 * (1.0 - depth) ** 1.3 + 0.05
        mist = tf.clip_by_value((y - top_edge) / 0.2, 0.0, 1.0) * 0.3 * (1.0 - depth)
        colour = _lerp(colour, haze, tf.clip_by_value(aerial + mist, 0.0, 1.0))
        below = tf.where(has_water > 0.5, horizon, 2.0)
        canvas, mask = _draw_layer(canvas, colour, top_edge, y, height, below)
        masks.append(mask)
    return canvas, masks


def _lake(scene, y, x, draws, time_of_day, horizon, height):
    """Scene mirrored about the horizon, rippled, darkened and tinted toward deep water; returns the
    scene and the water's soft mask."""
    rows, cols = tf.shape(scene)[0], tf.shape(scene)[1]
    pixel_y = y[..., 0] * height  # (H, 1)
    pixel_x = x[..., 0] * height  # (1, W)
    frequency = draws(70, low=0.15, high=0.4)
    ripple_x = draws(71, low=0.5, high=2.5) * tf.sin(pixel_y * frequency + draws(72, high=6.28))
    ripple_y = 0.6 * tf.sin(pixel_x * 0.07 + pixel_y * 0.9 + draws(73, high=6.28))
    source_y = 2.0 * horizon * height - pixel_y + ripple_y
    source_x = pixel_x + ripple_x
    index_y = tf.clip_by_value(tf.cast(tf.floor(source_y), tf.int32), 0, rows - 1)
    index_x = tf.clip_by_value(tf.cast(tf.floor(source_x), tf.int32), 0, cols - 1)
    indices = tf.stack([tf.broadcast_to(index_y, [rows, cols]), tf.broadcast_to(index_x, [rows, cols])], axis=-1)
    reflection = tf.gather_nd(scene, indices)
    # Fresnel: far water mirrors the sky, near water shows its own dark colour.
    nearness = tf.clip_by_value((y - horizon) / tf.maximum(1.0 - horizon, 1e-3), 0.0, 1.0)
    deep = _DEEP_WATER * _palette(_LIGHT, time_of_day)
    water = _lerp(reflection * 0.75, deep, 0.15 + 0.55 * nearness)
    mask = tf.sigmoid((y - horizon) * height)
    return _lerp(scene, water, mask), mask


def _foreground(canvas, y, x, draws, time_of_day, horizon, has_water, grain, height):
    """A dark textured bank of grass and earth; on a lake scene only a strip of shore, sometimes none.

    Returns the canvas and the bank's soft mask."""
    light = _palette(_LIGHT, time_of_day)
    base = tf.where(has_water > 0.5, draws(80, low=0.9, high=1.08), horizon + draws(81, low=0.1, high=0.22))
    bumps = _fractal_noise(x, draws, 1020, draws(82, low=2.0, high=5.0), octaves=5)
    top_edge = base - draws(83, low=0.03, high=0.1) * bumps
    # Grass: column streaks plus fine grain, darker toward the viewer.
    streaks = _fractal_noise(x * 40.0, draws, 1021, 1.0, octaves=2)
    texture = 0.75 + 0.3 * streaks + 0.25 * (grain - 0.5)
    shade = 1.0 - 0.5 * tf.clip_by_value((y - top_edge) / 0.4, 0.0, 1.0)
    colour = (_GROUND + draws(84, [3], -0.04, 0.04)) * light * texture * shade
    return _draw_layer(canvas, colour, top_edge, y, height)


def render_scene(key, height, width):
    """The scene for stateless seed ``key`` and its ground truth: ``(image, classes, horizon)``.

    ``image`` is uint8 ``(height, width, 3)``, ``classes`` uint8 ``(height, width)`` indices into
    :data:`CLASSES`, ``horizon`` the horizon row as a fraction of the height (float32 scalar).
    """
    draws = _Draws(key)
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    # Pixel centres as (H, 1, 1) rows and (1, W, 1) columns: every mask broadcasts against RGB.
    y = tf.reshape((tf.range(height_f) + 0.5) / height_f, [-1, 1, 1])
    x = tf.reshape((tf.range(width_f) + 0.5) / height_f, [1, -1, 1])
    aspect = width_f / height_f
    # About 40 % day, 45 % dusk and 15 % night.
    time_of_day = tf.minimum(2.6 * draws(0) ** 1.7, 2.0)
    horizon = draws(90, low=0.55, high=0.78)
    has_water = tf.cast(draws(91) < 0.55, tf.float32)
    grain = draws(92, [height, width, 1])

    scene = _sky(y, x, draws, time_of_day, horizon, aspect, height_f)
    scene, ridges = _mountains(scene, y, x, draws, time_of_day, horizon, has_water, grain, height_f)
    no_water = tf.zeros_like(y)
    scene, water = tf.cond(has_water > 0.5, lambda: _lake(scene, y, x, draws, time_of_day, horizon, height_f),
                           lambda: (scene, no_water))
    scene, ground = _foreground(scene, y, x, draws, time_of_day, horizon, has_water, grain, height_f)
    image = tf.cast(tf.round(tf.clip_by_value(scene, 0.0, 1.0) * 255.0), tf.uint8)
    # Each layer covers what was painted before it where its mask passes one half.
    classes = tf.zeros([height, width], tf.uint8)
    for label, mask in enumerate([*ridges, water, ground], start=1):
        covered = tf.broadcast_to(mask[..., 0], [height, width]) > 0.5
        classes = tf.where(covered, tf.constant(label, tf.uint8), classes)
    return image, classes, horizon


@tf.function(input_signature=[tf.TensorSpec([], tf.int64)] * 2 + [tf.TensorSpec([], tf.int32)] * 2)
def _render_one(seed, index, height, width):
    return render_scene(element_seed(seed, index, SOURCE_RANDOMNESS), height, width)[0]


@tf.function(input_signature=[tf.TensorSpec([], tf.int64)] * 2 + [tf.TensorSpec([], tf.int32)] * 2)
def _render_scene_one(seed, index, height, width):
    return render_scene(element_seed(seed, index, SOURCE_RANDOMNESS), height, width)


def render_landscape(seed: int, index: int, height: int, width: int) -> np.ndarray:
    """Landscape ``index`` of the stream for ``seed`` as uint8 ``(height, width, 3)``."""
    return _render_one(seed, index, height, width).numpy()


def render_landscape_scene(seed: int, index: int, height: int, width: int):
    """Landscape ``index`` of the stream for ``seed`` and its ground truth (see :func:`render_scene`):
    ``(image uint8 (H, W, 3), classes uint8 (H, W), horizon row as a fraction of the height)``."""
    image, classes, horizon = _render_scene_one(seed, index, height, width)
    return image.numpy(), classes.numpy(), float(horizon)


def source(argument: str | None) -> Source:
    """The ``synthetic-landscapes`` source: endless, already at the requested size."""
    if argument is not None:
        raise UserError(f"'synthetic-landscapes' takes no ':{argument}' suffix; pass --data synthetic-landscapes")

    def elements(seed, start_index, training, image_size):
        height, width = image_size

        def draw(index):
            # Calling the traced function (not render) reuses its graph across datasets.
            image = _render_one(tf.constant(seed, tf.int64), index, tf.constant(height), tf.constant(width))
            return index, {"image": tf.ensure_shape(image, [height, width, 3])}

        return index_stream(start_index).map(draw, num_parallel_calls=AUTOTUNE, deterministic=True)

    return Source(elements, presized=True)
