"""Procedural birds: GAWWN's default data set, with boxes, parts and captions, no files needed.

Each sample is a pure function of ``(seed, index, height, width)``: a bird of one of
``NUM_SPECIES`` species (the class; a species is a colour scheme plus beak, tail and
size traits) drawn in a random pose (facing left or right, tilted, perched on a
branch with its legs showing, or flying with both wings spread), size and position,
over a random background (sky, foliage or both, with clouds and texture).

A sample carries what CUB-200-2011 carries (models.md §3.2):

* ``bbox``: the tight box of the bird's pixels, normalised ``(ymin, xmin, ymax, xmax)``;
* ``keypoints``: the 15 CUB parts (:data:`~tfcoord.data.gawwn.parts.CUB_PARTS`) as
  ``(x, y, visibility)`` in [0, 1]; parts hidden by the pose (the far eye, the far
  folded wing, tucked legs while flying) or outside the image are invisible (all zero).
  A bird facing left shows its left side;
* ``label``: the species;
* ``captions``: ten sentences from templates naming the part colours and traits, e.g.
  "a small bird with a red crown, blue wings and a white belly.".

The drawing is NumPy (soft-edged ellipses, convex polygons and strokes in pixel
units), wrapped in ``tf.numpy_function`` for the data pipeline; the same code gives the
benchmark its ground truth (:func:`render_bird` also returns a per-pixel part map).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfcoord.data.gawwn.captions import DOC_LENGTH, tokenize_all
from tfcoord.data.gawwn.parts import CUB_PARTS, flip_order
from tfcoord.errors import UserError

NUM_SPECIES = 200
NUM_CAPTIONS = 10
# Named colours: every colour a caption can name, and its RGB in [0, 1].
PALETTE = {
    "red": (0.85, 0.12, 0.10), "orange": (0.96, 0.52, 0.08), "yellow": (0.96, 0.86, 0.16),
    "green": (0.20, 0.62, 0.20), "blue": (0.14, 0.34, 0.86), "purple": (0.50, 0.20, 0.66),
    "brown": (0.50, 0.30, 0.14), "black": (0.07, 0.07, 0.08), "white": (0.96, 0.96, 0.94),
    "grey": (0.55, 0.56, 0.58),
}
COLOUR_NAMES = tuple(PALETTE)
BEAK_COLOURS = ("black", "yellow", "orange", "grey", "red")
LEG_COLOURS = ("black", "grey", "orange", "brown")
# Caption part name -> the ids in the part map that show it.
PART_IDS = {"back": (1,), "breast": (2,), "belly": (3,), "crown": (4,), "throat": (5,), "wings": (6, 7),
            "tail": (8,), "beak": (9,), "eye": (10,), "legs": (11,)}
# What each value of a part map (BirdSample.parts) shows: 0 is not the bird.
PART_CLASSES = ("background", "back", "breast", "belly", "crown", "throat", "near wing", "far wing", "tail", "beak",
                "eye", "legs")
# The part-map ids each CUB keypoint (tfcoord.data.gawwn.parts.CUB_PARTS) is drawn on or next to.
KEYPOINT_PART_IDS = {"back": (1,), "beak": (9,), "belly": (3,), "breast": (2,), "crown": (4,), "forehead": (4,),
                     "left_eye": (10,), "left_leg": (11,), "left_wing": (6, 7), "nape": (4,), "right_eye": (10,),
                     "right_leg": (11,), "right_wing": (6, 7), "tail": (8,), "throat": (5,)}
# The attribute that colours each caption part.
COLOURED_PARTS = ("crown", "breast", "belly", "back", "wings", "tail")


@dataclasses.dataclass(frozen=True)
class Species:
    """A species: the colour of each part plus shape traits (the class is its index)."""

    crown: str
    breast: str
    belly: str
    back: str
    wings: str
    tail: str
    beak: str
    legs: str
    size: str  # small | medium-sized | large
    beak_length: str  # short | long
    beak_shape: str  # pointed | cone-shaped
    tail_length: str  # short | long


def _species_table() -> tuple[Species, ...]:
    """``NUM_SPECIES`` distinct colour schemes, fixed forever (a seeded draw at import)."""
    rng = np.random.default_rng(20161205)
    body_weights = np.array([1, 1, 1.2, 1.2, 1.2, 0.8, 2.0, 1.6, 1.0, 1.6])
    body_weights = body_weights / body_weights.sum()
    table, seen = [], set()
    while len(table) < NUM_SPECIES:
        back = rng.choice(COLOUR_NAMES, p=body_weights)
        wings = back if rng.random() < 0.45 else rng.choice(COLOUR_NAMES)
        tail = wings if rng.random() < 0.55 else (back if rng.random() < 0.4 else rng.choice(COLOUR_NAMES))
        crown = back if rng.random() < 0.3 else rng.choice(COLOUR_NAMES)
        breast = rng.choice(COLOUR_NAMES)
        belly = breast if rng.random() < 0.45 else rng.choice(("white", "grey", "yellow", "brown", "orange"))
        colours = (str(crown), str(breast), str(belly), str(back), str(wings), str(tail))
        if colours in seen or len(set(colours)) < 2:
            continue
        seen.add(colours)
        table.append(Species(*colours, beak=str(rng.choice(BEAK_COLOURS)), legs=str(rng.choice(LEG_COLOURS)),
                             size=str(rng.choice(("small", "medium-sized", "large"))),
                             beak_length=str(rng.choice(("short", "long"))),
                             beak_shape=str(rng.choice(("pointed", "cone-shaped"))),
                             tail_length=str(rng.choice(("short", "long")))))
    return tuple(table)


SPECIES = _species_table()


# -- captions ------------------------------------------------------------------------------
_TEMPLATES = (
    "{a_size} bird with {a_crown} crown, {wings} wings and {a_belly} belly.",
    "this bird has {a_breast} breast, {wings} wings and {a_tail} tail.",
    "{a_size} bird with {a_beak_length} {beak} beak and {a_crown} head.",
    "this bird is mostly {back} with {wings} wings and {a_belly} belly.",
    "the bird has {a_crown} crown, {a_breast} breast and {a_tail_length} {tail} tail.",
    "this {size} bird has {wings} wings, {a_back} back and {legs} legs.",
    "a bird with {a_belly} belly, {a_crown} crown and {a_beak_shape} {beak} beak.",
    "{wings} wings, {a_breast} breast and {a_crown} crown mark this {size} bird.",
    "this bird has {a_tail_length} {tail} tail, {a_back} back and {a_belly} belly.",
    "{a_size} {crown} and {wings} bird with {a_beak} beak.",
)


def species_captions(species: Species, rng: np.random.Generator | None = None) -> list[str]:
    """The ten template captions of ``species`` (in a random order when ``rng`` is given)."""
    words = dataclasses.asdict(species)
    for key, value in list(words.items()):
        words[f"a_{key}"] = f"{'an' if value[0] in 'aeiou' else 'a'} {value}"
    captions = [template.format(**words) for template in _TEMPLATES]
    if rng is not None:
        captions = [captions[i] for i in rng.permutation(len(captions))]
    return captions


def caption_colours(caption: str) -> dict[str, str]:
    """``{part: colour}`` a caption of the templates names (wings, crown, ...), e.g. for the benchmark."""
    words = caption.replace(",", " ").replace(".", " ").split()
    named = {}
    for i, word in enumerate(words):
        part = {"head": "crown", "wing": "wings"}.get(word, word)
        if part in COLOURED_PARTS and i > 0:
            # "{colour} {part}" or "{colour} {length} {part}"
            for back in (1, 2):
                if i - back >= 0 and words[i - back] in PALETTE:
                    named[part] = words[i - back]
                    break
    return named


# -- drawing primitives (pixel units; grids of pixel centres) ---------------------------
class _Canvas:
    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.y, self.x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.parts = np.zeros((height, width), np.int8)
        self.bird = np.zeros((height, width), np.float32)

    def paint(self, coverage, colour, part=0):
        """Alpha-blend ``colour`` (RGB or (H, W, 3)) with per-pixel ``coverage`` in [0, 1]; a ``part`` id (or an
        (H, W) map of ids) marks the bird where the coverage is over one half."""
        alpha = coverage[..., None]
        self.rgb = self.rgb * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha
        if np.any(part):
            self.parts = np.where(coverage > 0.5, part, self.parts).astype(np.int8)
            self.bird = np.maximum(self.bird, coverage)


def _ellipse(canvas, centre, axis, semi_major, semi_minor):
    """Coverage of an ellipse whose major axis points along unit vector ``axis``."""
    dx, dy = canvas.x - centre[0], canvas.y - centre[1]
    u = dx * axis[0] + dy * axis[1]
    v = -dx * axis[1] + dy * axis[0]
    d = np.sqrt((u / semi_major) ** 2 + (v / semi_minor) ** 2) + 1e-6
    gradient = np.sqrt((u / semi_major**2) ** 2 + (v / semi_minor**2) ** 2) / d + 1e-6
    return np.clip((1.0 - d) / gradient + 0.5, 0.0, 1.0)


def _polygon(canvas, points):
    """Coverage of a convex polygon (vertices in either winding)."""
    points = np.asarray(points, np.float32)
    area = 0.5 * np.sum(points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1])
    sign = 1.0 if area > 0 else -1.0
    distance = np.full(canvas.x.shape, -np.inf, np.float32)
    for a, b in zip(points, np.roll(points, -1, axis=0)):
        edge = b - a
        length = float(np.hypot(*edge)) + 1e-6
        # outward normal of a counter-clockwise (in image coordinates, y down) polygon
        normal = sign * np.array([edge[1], -edge[0]]) / length
        distance = np.maximum(distance, (canvas.x - a[0]) * normal[0] + (canvas.y - a[1]) * normal[1])
    return np.clip(0.5 - distance, 0.0, 1.0)


def _stroke(canvas, start, end, width):
    """Coverage of a round-capped line segment."""
    start, end = np.asarray(start, np.float32), np.asarray(end, np.float32)
    direction = end - start
    t = ((canvas.x - start[0]) * direction[0] + (canvas.y - start[1]) * direction[1]) / (direction @ direction + 1e-6)
    t = np.clip(t, 0.0, 1.0)
    distance = np.hypot(canvas.x - (start[0] + t * direction[0]), canvas.y - (start[1] + t * direction[1]))
    return np.clip(width / 2.0 - distance + 0.5, 0.0, 1.0)


def _smooth_noise(rng, height, width, cells, octaves=2):
    """Low-frequency value noise in [0, 1] of shape (height, width)."""
    from PIL import Image

    total = np.zeros((height, width), np.float32)
    weight = 0.0
    for octave in range(octaves):
        n = cells * 2**octave
        grid = rng.random((n + 1, n + 1)).astype(np.float32)
        total += np.asarray(Image.fromarray(grid).resize((width, height), Image.BILINEAR)) * 0.5**octave
        weight += 0.5**octave
    return total / weight


# -- one bird -------------------------------------------------------------------------------
@dataclasses.dataclass
class BirdSample:
    """What :func:`render_bird` returns. ``parts`` maps each pixel to a :data:`PART_IDS` id (0 = background)."""

    image: np.ndarray  # uint8 (H, W, 3)
    bbox: np.ndarray  # float32 (4,) ymin, xmin, ymax, xmax in [0, 1]
    keypoints: np.ndarray  # float32 (15, 3) x, y, visibility
    label: int
    captions: list[str]
    parts: np.ndarray  # int8 (H, W)
    species: Species
    pose: dict


def _colour(name, rng, jitter=True):
    rgb = np.asarray(PALETTE[name], np.float32)
    if jitter:
        rgb = rgb * rng.uniform(0.88, 1.06) + rng.uniform(-0.03, 0.03, 3)
    return np.clip(rgb, 0.0, 1.0)


class _Frame:
    """The bird's body frame: local (u forward, v down) in body lengths -> image pixels."""

    def __init__(self, centre, length, facing, tilt):
        self.centre = np.asarray(centre, np.float32)
        self.length = length
        self.forward = np.array([facing * math.cos(tilt), -math.sin(tilt)], np.float32)
        self.down = np.array([facing * math.sin(tilt), math.cos(tilt)], np.float32)

    def __call__(self, u, v):
        return self.centre + self.length * (u * self.forward + v * self.down)

    def local(self, canvas):
        dx, dy = canvas.x - self.centre[0], canvas.y - self.centre[1]
        return ((dx * self.forward[0] + dy * self.forward[1]) / self.length,
                (dx * self.down[0] + dy * self.down[1]) / self.length)


def _pose(rng):
    flying = rng.random() < 0.35
    return {"facing": float(rng.choice((-1.0, 1.0))), "flying": bool(flying),
            "tilt": float(rng.uniform(-0.45, 0.45) if flying else rng.uniform(-0.25, 0.45)),
            "head_lift": float(rng.uniform(-0.05, 0.06)), "tail_droop": float(rng.uniform(-0.15, 0.35)),
            "wing_angle": float(rng.uniform(-0.5, 0.5)), "beak_droop": float(rng.uniform(-0.03, 0.04))}


def _geometry(frame, species, pose):
    """Key points of the bird's shapes in pixels (for drawing, keypoints and the extent)."""
    head_u, head_v = 0.42, -0.27 - pose["head_lift"]
    head = frame(head_u, head_v)
    beak_len = 0.13 if species.beak_length == "short" else 0.27
    beak_half = 0.07 if species.beak_shape == "cone-shaped" else 0.045
    tail_len = 0.32 if species.tail_length == "short" else 0.55
    droop = pose["tail_droop"]
    g = {
        "head": head, "head_radius": 0.17 * frame.length,
        "beak": [frame(head_u + 0.13, head_v - beak_half),
                 frame(head_u + 0.16 + beak_len, head_v + 0.01 + pose["beak_droop"]),
                 frame(head_u + 0.13, head_v + beak_half)],
        "eye": frame(head_u + 0.07, head_v - 0.035),
        "tail": [frame(-0.36, -0.12), frame(-0.38 - tail_len, -0.14 + droop * tail_len - 0.04),
                 frame(-0.38 - tail_len, -0.14 + droop * tail_len + 0.16), frame(-0.40, 0.08)],
        "legs": [(frame(0.02, 0.22), frame(-0.02, 0.52)), (frame(0.12, 0.2), frame(0.10, 0.52))],
    }
    if pose["flying"]:
        # A swept wing: shoulder, wrist (the bend of the leading edge), tip, trailing root.
        # The far wing is raised further and foreshortened, so both show.
        shape = np.array([[0.16, -0.12], [0.1, -0.5], [-0.4, -0.84], [-0.22, -0.1]])
        wings = []
        for extra, scale in ((0.0, 1.0), (-0.45, 0.8)):
            angle = pose["wing_angle"] + extra
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            pivot = shape[0]
            wings.append([frame(*(pivot + scale * rotation @ (p - pivot))) for p in shape])
        g["wings"] = tuple(wings)
        g["wing_centres"] = (np.mean(wings[0], axis=0), np.mean(wings[1], axis=0))
    else:
        g["wings"] = None
        g["wing_centres"] = (frame(-0.1, -0.05), frame(-0.06, -0.08))
    g["tail_centre"] = np.mean(g["tail"], axis=0)
    return g


def _extent(frame, species, pose):
    """Pixel bounds (x0, y0, x1, y1) of everything the bird draws."""
    g = _geometry(frame, species, pose)
    points = [frame(u, v) for u in (-0.5, 0.5) for v in (-0.28, 0.28)] + g["beak"] + g["tail"]
    radius = g["head_radius"]
    points += [g["head"] + np.array([dx, dy]) * radius for dx in (-1, 1) for dy in (-1, 1)]
    if pose["flying"]:
        points += g["wings"][0] + g["wings"][1]
    else:
        points += [end for _, end in g["legs"]]
    points = np.asarray(points)
    return points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()


def _background(canvas, rng):
    height, width = canvas.height, canvas.width
    kind = rng.choice(("sky", "foliage", "mixed"), p=(0.45, 0.35, 0.2))
    t = (canvas.y / height)[..., None]
    sky_top = np.array(rng.choice([(0.35, 0.55, 0.88), (0.62, 0.66, 0.72), (0.45, 0.50, 0.75), (0.80, 0.62, 0.55)]),
                       np.float32) + rng.uniform(-0.05, 0.05, 3)
    sky_low = np.clip(sky_top + rng.uniform(0.1, 0.3), 0, 1)
    sky = sky_top * (1 - t) + sky_low * t
    clouds = _smooth_noise(rng, height, width, int(rng.integers(2, 5)))
    sky = sky + np.clip(clouds - 0.55, 0, 1)[..., None] * 1.2 * (np.array([1.0, 1.0, 1.0]) - sky)
    leaf_dark = np.array(rng.choice([(0.12, 0.28, 0.10), (0.25, 0.30, 0.12), (0.30, 0.22, 0.12), (0.10, 0.22, 0.18)]),
                         np.float32)
    leaf_light = np.clip(leaf_dark + rng.uniform(0.15, 0.35), 0, 1)
    leaves = _smooth_noise(rng, height, width, int(rng.integers(3, 8)), octaves=3)[..., None]
    foliage = leaf_dark * (1 - leaves) + leaf_light * leaves
    if kind == "sky":
        canvas.rgb = sky
    elif kind == "foliage":
        canvas.rgb = foliage
    else:
        edge = rng.uniform(0.35, 0.75) * height + (_smooth_noise(rng, 1, width, 3)[0] - 0.5) * 0.3 * height
        mask = np.clip(canvas.y - edge[None, :], 0, 1)[..., None]
        canvas.rgb = sky * (1 - mask) + foliage * mask
    canvas.rgb = canvas.rgb * rng.uniform(0.85, 1.1)
    return str(kind)


def _draw_bird(canvas, frame, species, pose, rng):
    g = _geometry(frame, species, pose)
    colour = {name: _colour(getattr(species, name), rng) for name in
              ("crown", "breast", "belly", "back", "wings", "tail", "beak", "legs")}
    length = frame.length
    wing_dark = 0.78
    if pose["flying"]:
        canvas.paint(_polygon(canvas, g["wings"][1]), colour["wings"] * wing_dark, part=7)
    else:
        canvas.paint(_stroke(canvas, *g["legs"][1], 0.045 * length), colour["legs"] * 0.85, part=11)
    canvas.paint(_polygon(canvas, g["tail"]), colour["tail"], part=8)
    # Body: back above, breast in front, belly below; lighter on top (a hint of 3-D shading).
    u, v = frame.local(canvas)
    softness = 1.5 / length
    top = 1.0 / (1.0 + np.exp(np.clip((v + 0.02) / softness, -50, 50)))
    front = 1.0 / (1.0 + np.exp(np.clip(-(u - 0.12) / softness, -50, 50)))
    under = colour["breast"] * front[..., None] + colour["belly"] * (1 - front[..., None])
    body_rgb = colour["back"] * top[..., None] + under * (1 - top[..., None])
    body_rgb = body_rgb * (1.0 - 0.18 * np.clip(v[..., None] + 0.1, 0, 0.5))
    body = _ellipse(canvas, frame(0, 0), frame.forward, 0.5 * length, 0.28 * length)
    canvas.paint(body, body_rgb, part=np.where(top > 0.5, 1, np.where(front > 0.5, 2, 3)))
    if not pose["flying"]:
        canvas.paint(_stroke(canvas, *g["legs"][0], 0.05 * length), colour["legs"], part=11)
    # Head: crown colour on top, throat (breast colour) below the eye line.
    head = _ellipse(canvas, g["head"], frame.forward, g["head_radius"], g["head_radius"])
    hu = (canvas.x - g["head"][0]) * frame.forward[0] + (canvas.y - g["head"][1]) * frame.forward[1]
    hv = (canvas.x - g["head"][0]) * frame.down[0] + (canvas.y - g["head"][1]) * frame.down[1]
    throat = np.clip((hv - 0.05 * length + 0.4 * np.maximum(-hu, 0)) / 1.5 + 0.5, 0, 1)[..., None]
    canvas.paint(head, colour["crown"] * (1 - throat) + colour["breast"] * throat,
                 part=np.where(throat[..., 0] > 0.5, 5, 4))
    canvas.paint(_polygon(canvas, g["beak"]), colour["beak"], part=9)
    eye_radius = max(0.035 * length, 0.9)
    canvas.paint(_ellipse(canvas, g["eye"], frame.forward, eye_radius, eye_radius), (0.02, 0.02, 0.02), part=10)
    if pose["flying"]:
        canvas.paint(_polygon(canvas, g["wings"][0]), colour["wings"], part=6)
    else:
        wing_axis = math.cos(0.12) * frame.forward + math.sin(0.12) * frame.down  # 0.12 rad down from forward
        canvas.paint(_ellipse(canvas, frame(-0.1, -0.05), wing_axis, 0.36 * length, 0.15 * length),
                     colour["wings"], part=6)
        canvas.paint(_ellipse(canvas, frame(-0.33, 0.0), wing_axis, 0.14 * length, 0.08 * length),
                     colour["wings"] * wing_dark, part=6)
    return g


def _keypoints(frame, pose, g, height, width):
    """The 15 CUB parts (x, y, visibility) in [0, 1]; hidden or outside parts are zeros."""
    near_side = "left" if pose["facing"] < 0 else "right"  # a bird facing left shows its left side
    far_side = "right" if near_side == "left" else "left"
    head_u, head_v = 0.42, -0.27 - pose["head_lift"]
    points = {
        "back": (frame(-0.12, -0.24), True), "beak": (g["beak"][1], True), "belly": (frame(-0.02, 0.2), True),
        "breast": (frame(0.3, 0.1), True), "crown": (frame(head_u - 0.02, head_v - 0.15), True),
        "forehead": (frame(head_u + 0.11, head_v - 0.11), True), "nape": (frame(head_u - 0.14, head_v - 0.06), True),
        "throat": (frame(head_u + 0.06, head_v + 0.13), True), "tail": (g["tail_centre"], True),
        f"{near_side}_eye": (g["eye"], True), f"{far_side}_eye": (g["eye"], False),
        f"{near_side}_wing": (g["wing_centres"][0], True), f"{far_side}_wing": (g["wing_centres"][1], pose["flying"]),
        f"{near_side}_leg": ((g["legs"][0][0] + g["legs"][0][1]) / 2, not pose["flying"]),
        f"{far_side}_leg": ((g["legs"][1][0] + g["legs"][1][1]) / 2, not pose["flying"]),
    }
    out = np.zeros((len(CUB_PARTS), 3), np.float32)
    for i, name in enumerate(CUB_PARTS):
        (x, y), visible = points[name]
        x, y = x / width, y / height
        if visible and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0:
            out[i] = (x, y, 1.0)
    return out


def render_bird(seed: int, index: int, height: int, width: int) -> BirdSample:
    """Bird ``index`` of the stream for ``seed`` at (height, width) pixels."""
    if height < 8 or width < 8:
        raise UserError(f"synthetic birds need images of at least 8 x 8 pixels, got {height} x {width}")
    rng = np.random.default_rng([int(seed), int(index), 0x6269])  # 'bi'rd: independent of other sources
    label = int(rng.integers(NUM_SPECIES))
    species = SPECIES[label]
    pose = _pose(rng)
    canvas = _Canvas(height, width)
    background = _background(canvas, rng)
    side = min(height, width)
    length = side * {"small": rng.uniform(0.22, 0.3), "medium-sized": rng.uniform(0.28, 0.38),
                     "large": rng.uniform(0.36, 0.48)}[species.size]
    # Shrink until the whole bird fits, then place it uniformly where it fits.
    for _ in range(20):
        frame = _Frame((0.0, 0.0), length, pose["facing"], pose["tilt"])
        x0, y0, x1, y1 = _extent(frame, species, pose)
        if x1 - x0 <= width - 2 and y1 - y0 <= height - 2:
            break
        length *= 0.9
    cx = rng.uniform(1 - x0, width - 1 - x1) if width - 2 > x1 - x0 else (width - x0 - x1) / 2
    cy = rng.uniform(1 - y0, height - 1 - y1) if height - 2 > y1 - y0 else (height - y0 - y1) / 2
    frame = _Frame((cx, cy), length, pose["facing"], pose["tilt"])
    if not pose["flying"]:  # a branch under the feet, across the image from one side
        feet_y = frame(0.04, 0.52)[1]
        slope = rng.uniform(-0.15, 0.15)
        start_x = -0.1 * width if rng.random() < 0.5 else cx - rng.uniform(0.3, 0.6) * width
        end_x = 1.1 * width if start_x < 0 and rng.random() < 0.6 else cx + rng.uniform(0.3, 0.6) * width
        branch = _stroke(canvas, (start_x, feet_y + slope * (start_x - cx) + 0.03 * length),
                         (end_x, feet_y + slope * (end_x - cx) + 0.03 * length), rng.uniform(0.06, 0.1) * length)
        canvas.paint(branch, np.array([0.33, 0.22, 0.12]) * rng.uniform(0.7, 1.2))
    g = _draw_bird(canvas, frame, species, pose, rng)
    keypoints = _keypoints(frame, pose, g, height, width)
    canvas.rgb += rng.normal(0.0, 0.012, canvas.rgb.shape).astype(np.float32)  # sensor grain
    image = np.clip(np.rint(canvas.rgb * 255.0), 0, 255).astype(np.uint8)
    rows, cols = np.nonzero(canvas.bird > 0.5)
    bbox = np.array([rows.min() / height, cols.min() / width, (rows.max() + 1) / height, (cols.max() + 1) / width],
                    np.float32)
    captions = species_captions(species, rng)
    return BirdSample(image=image, bbox=bbox, keypoints=keypoints, label=label, captions=captions,
                      parts=canvas.parts, species=species, pose={**pose, "background": background, "length": length})


# -- the data source ------------------------------------------------------------------------
def element_arrays(seed: int, index: int, height: int, width: int):
    """A sample as the arrays of a data element: image, bbox, keypoints, label, caption tokens."""
    sample = render_bird(int(seed), int(index), int(height), int(width))
    return (sample.image, sample.bbox, sample.keypoints, np.int32(sample.label),
            tokenize_all(sample.captions, DOC_LENGTH))


def source(argument: str | None):
    """The ``synthetic-birds`` source: endless, rendered at the requested size, then flipped by the pipeline."""
    import tensorflow as tf

    from tfcoord.data.pipeline import AUTOTUNE, Source, index_stream

    if argument is not None:
        raise UserError(f"'synthetic-birds' takes no ':{argument}' suffix; pass --data synthetic-birds")
    order = np.asarray(flip_order(CUB_PARTS), np.int32)

    def elements(seed, start_index, training, image_size):
        height, width = image_size

        def draw(index):
            image, bbox, keypoints, label, captions = tf.numpy_function(
                element_arrays, [tf.constant(seed, tf.int64), index, height, width],
                [tf.uint8, tf.float32, tf.float32, tf.int32, tf.int32], stateful=False)
            return index, {
                "image": tf.ensure_shape(image, [height, width, 3]),
                "bbox": tf.ensure_shape(bbox, [4]),
                "keypoints": tf.ensure_shape(keypoints, [len(CUB_PARTS), 3]),
                "keypoint_flip_order": tf.constant(order),
                "label": tf.ensure_shape(label, []),
                "captions": tf.ensure_shape(captions, [NUM_CAPTIONS, DOC_LENGTH]),
                "num_captions": tf.constant(NUM_CAPTIONS, tf.int32),
            }

        return index_stream(start_index).map(draw, num_parallel_calls=AUTOTUNE, deterministic=True)

    # Not presized: the pipeline's (identity) resize and random flip apply, with the keypoints' sides swapped.
    return Source(elements)
