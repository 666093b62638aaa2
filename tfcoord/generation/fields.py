"""Canvas fields: standard-normal values indexed by canvas position, the same however a canvas is cut.

A canvas field holds ``channels`` values at every integer position (row, column) of a canvas.
Every value is a pure function of (seed, seed path, position, channel), so tiles that overlap
get the same values where they overlap, however the canvas is cut into tiles, and no
canvas-sized array is ever held (:class:`PositionalField` computes a tile at a time). The
value is computed with 64-bit integer operations and one float64 Box-Muller step, so that an
Android, iOS or web client draws the library's canvas tile by tile without NumPy (issue 19,
item 3). The recipe (:data:`RECIPE`, also in the serving description and the README), all
integer arithmetic modulo 2^64, ``>>`` a logical shift::

    G = 0x9E3779B97F4A7C15
    mix(z):   z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;  z = (z ^ z >> 27) * 0x94D049BB133111EB;  z ^ z >> 31
    hash(words): h = 0; for w in words: h = mix(h + (w + 1) * G); return h
    normal(h): u1 = ((h >> 32) + 1) * 2^-32 in (0, 1];  u2 = (h & 0xFFFFFFFF) * 2^-32 in [0, 1)
               float32(sqrt(-2 * ln u1) * cos(6.283185307179586 * u2))      (float64 math, one cast at the end)
    field value at row y, column x, channel c = normal(hash([seed, *seed_path, y, x, c]))

A model tells its fields apart by their seed paths (a latent, each layer's noise); a latent drawn
once per image is row y = image, column x = 0 of its field.

Why this design:

* ``mix`` is SplitMix64's output function (Steele, Lea, Flood 2014; Stafford's "Mix13"), and each
  ``hash`` step is one SplitMix64 step whose state advances by ``(w + 1) * G`` instead of ``G``:
  along the last word (the channel) the values are exactly a SplitMix64 stream seeded by the
  position, a generator that passes BigCrush; the words before it pick the stream. Multiplying
  the word by the odd constant G (rather than adding w) avoids the weak increment 1, and the
  ``+ 1`` keeps word 0 from being a no-op. Nothing else is needed: 64-bit wrapping multiply,
  xor and logical shift exist in every language (Kotlin ``ULong``, Swift ``&*``, Java ``Long``
  with ``>>>``, JavaScript ``BigInt.asUintN(64, ...)``).
* Every value has its own hash, so any window of any field at any canvas position is computed
  alone (no tiles, no generator state): a phone renders tile (i, j) of a 2^20 px canvas directly.
* Two 32-bit halves make the uniforms, which float64 holds exactly; 32 bits (rather than the 24
  of a float32 mantissa) let the normals reach 6.7 sigma instead of 5.8. Box-Muller's cosine
  branch only, so a value never depends on a neighbour.
* The float64 steps are exactly: one exact product for each uniform, ``ln``, a multiplication
  by -2 (exact), ``sqrt`` (correctly rounded everywhere), the product 6.283185307179586 * u2
  (rounded once), ``cos``, the product of the two, and one round-to-nearest cast to float32.
  ``ln`` and ``cos`` are not required to be correctly rounded: libraries differ in the last
  float64 bit now and then (NumPy's AVX-512 ``log`` differs from glibc's in about 0.4 % of
  arguments), which changes the float32 result only when the float64 value lies within an ulp
  of a float32 rounding boundary, about once in 10^8 values, and then by one float32 ulp.
  Java/Kotlin's ``StrictMath`` (fdlibm) is the same on every JVM. No fused multiply-add: a
  port must not contract ``r * cos`` into an FMA (C with ``-ffp-contract=fast`` could).

The seeding before this recipe (NumPy's ``default_rng([seed, *seed_path, tile_row, tile_col])``
per position tile, :func:`legacy_tile`) stays available as ``seeding="legacy"`` (``python -m
tfcoord.generate --seeding legacy``, ``python -m export.client --seeding legacy``), so images made
before the change can be made again.
"""

from __future__ import annotations

import collections

import numpy as np

from tfcoord.errors import UserError

SEEDINGS = ("portable", "legacy")
# The serving description's name of each recipe ("generator" of a canvas field or latent).
GENERATORS = {"portable": "splitmix64-boxmuller/1", "legacy": "numpy-default-rng"}
SEEDING_OF_GENERATOR = {name: seeding for seeding, name in GENERATORS.items()}

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
MIX_SHIFTS = (30, 27, 31)
TWO_PI = 6.283185307179586  # the float64 nearest to 2 pi (math.tau)
UNIFORM_SCALE = 2.0 ** -32
MASK64 = (1 << 64) - 1

RECIPE = (f"value(seed S, seed_path p, row y, column x, channel c) = normal(hash([S, *p, y, x, c])), where all "
          f"integer arithmetic is unsigned 64-bit (modulo 2^64) and >> is a logical shift: "
          f"mix(z) = {{z ^= z >> {MIX_SHIFTS[0]}; z *= 0x{MIX_MULTIPLIERS[0]:X}; z ^= z >> {MIX_SHIFTS[1]}; "
          f"z *= 0x{MIX_MULTIPLIERS[1]:X}; z ^= z >> {MIX_SHIFTS[2]}}}; "
          f"hash(words) = {{h = 0; for w in words: h = mix(h + (w + 1) * 0x{GOLDEN_GAMMA:X})}}; "
          f"normal(h) = float32(sqrt(-2 * ln(((h >> 32) + 1) * 2^-32)) * cos({TWO_PI!r} * ((h & 0xFFFFFFFF) "
          f"* 2^-32))) in float64 arithmetic (no fused multiply-add), rounded to the nearest float32 once at the end")


def check_seeding(seeding: str) -> str:
    if seeding not in SEEDINGS:
        raise UserError(f"seeding must be one of {', '.join(SEEDINGS)}, got {seeding!r}")
    return seeding


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output mix on a uint64 array (wrapping arithmetic)."""
    (m1, m2), (s1, s2, s3) = MIX_MULTIPLIERS, MIX_SHIFTS
    z = (z ^ (z >> np.uint64(s1))) * np.uint64(m1)
    z = (z ^ (z >> np.uint64(s2))) * np.uint64(m2)
    return z ^ (z >> np.uint64(s3))


def _absorb(state: np.ndarray, words: np.ndarray) -> np.ndarray:
    """One hash step ``mix(state + (word + 1) * G)``, broadcast over ``state`` and ``words`` (uint64)."""
    return _mix(state + (words + np.uint64(1)) * np.uint64(GOLDEN_GAMMA))


def _words(values) -> np.ndarray:
    """Integers as uint64 words (two's complement: a negative value is 2^64 + value)."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        raise TypeError(f"field positions must be integers, got {values.dtype}")
    return values.astype(np.int64).astype(np.uint64) if values.dtype.kind == "i" else values.astype(np.uint64)


def prefix_hash(seed: int, seed_path) -> np.ndarray:
    """The hash state after the words ``seed, *seed_path`` (a uint64 array of shape (1,); computed on
    Python integers, which do not warn about the wrap-around that NumPy scalars report)."""
    (m1, m2), (s1, s2, s3) = MIX_MULTIPLIERS, MIX_SHIFTS
    state = 0
    for word in (seed, *seed_path):
        z = (state + ((int(word) + 1) & MASK64) * GOLDEN_GAMMA) & MASK64
        z = ((z ^ (z >> s1)) * m1) & MASK64
        z = ((z ^ (z >> s2)) * m2) & MASK64
        state = z ^ (z >> s3)
    return np.array([state], np.uint64)


def field_hashes(seed: int, seed_path, rows, cols, channels: int) -> np.ndarray:
    """``hash([seed, *seed_path, y, x, c])`` for y in ``rows``, x in ``cols``, c < ``channels``:
    uint64 (len(rows), len(cols), channels)."""
    state = prefix_hash(seed, seed_path)
    state = _absorb(state, _words(rows))[:, None]  # (rows,) -> (rows, 1)
    state = _absorb(state, _words(cols)[None, :])[..., None]
    return _absorb(state, np.arange(channels, dtype=np.uint64))


def normals(hashes: np.ndarray) -> np.ndarray:
    """Box-Muller (cosine branch) of each 64-bit hash: float32 N(0, 1) values of the same shape."""
    high = (hashes >> np.uint64(32)) + np.uint64(1)  # 1 .. 2^32: u1 in (0, 1], so ln u1 is finite
    low = hashes & np.uint64(0xFFFFFFFF)
    u1 = high.astype(np.float64) * UNIFORM_SCALE
    u2 = low.astype(np.float64) * UNIFORM_SCALE
    radius = np.sqrt(-2.0 * np.log(u1))
    return (radius * np.cos(TWO_PI * u2)).astype(np.float32)


def field_window(seed: int, seed_path, rows, cols, channels: int) -> np.ndarray:
    """The standard-normal field ``(seed, seed_path)`` at ``rows`` x ``cols``: float32 (rows, cols, channels)."""
    return normals(field_hashes(seed, seed_path, np.asarray(rows), np.asarray(cols), channels))


def legacy_tile(seed: int, seed_path, tile_row: int, tile_col: int, tile: int, channels: int) -> np.ndarray:
    """One ``tile`` x ``tile`` block of a field under the legacy seeding (NumPy's PCG64 and ziggurat normals)."""
    rng = np.random.default_rng([seed, *seed_path, tile_row, tile_col])
    return rng.standard_normal((tile, tile, channels), dtype=np.float32)


class PositionalField:
    """A standard-normal field of ``channels`` values per integer position (row, col), row >= 0.

    ``purpose`` is the field's seed path. ``seeding="portable"``: the value at (row, col), channel c is
    :func:`field_window`'s ``normal(hash([seed, *purpose, row, col, c]))``;
    ``"legacy"``: tiles of ``tile`` x ``tile`` positions, each drawn from
    ``np.random.default_rng([seed, purpose..., tile_row, tile_col])``. Either way the field is a
    pure function of the position, however it is read; values are computed a tile at a time and
    cached. ``period`` makes columns periodic (``col mod period``). :meth:`override` replaces a
    rectangle by given values (inverted latents).
    """

    def __init__(self, seed: int, purpose: tuple, channels: int, tile: int = 32, period: int | None = None,
                 cache_tiles: int = 512, seeding: str = "portable"):
        self.seed, self.purpose, self.channels, self.tile = int(seed), tuple(purpose), int(channels), int(tile)
        self.seeding = check_seeding(seeding)
        self.period = period
        self.cache_tiles = cache_tiles
        self._cache = collections.OrderedDict()
        self._overrides = []

    def _tile(self, tile_row: int, tile_col: int) -> np.ndarray:
        key = (tile_row, tile_col)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        t = self.tile
        if self.seeding == "legacy":
            values = legacy_tile(self.seed, self.purpose, tile_row, tile_col, t, self.channels)
        else:
            values = field_window(self.seed, self.purpose, np.arange(tile_row * t, (tile_row + 1) * t),
                                           np.arange(tile_col * t, (tile_col + 1) * t), self.channels)
        self._cache[key] = values
        while len(self._cache) > self.cache_tiles:
            self._cache.popitem(last=False)
        return values

    def override(self, top: int, left: int, values: np.ndarray) -> None:
        """Make positions ``top .. top + h``, ``left .. left + w`` hold ``values`` (h, w, channels)."""
        values = np.asarray(values, np.float32)
        if values.ndim != 3 or values.shape[2] != self.channels:
            raise ValueError(f"override values must be (h, w, {self.channels}), got {values.shape}")
        self._overrides.append((int(top), int(left), values))

    def window(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Values at rows ``top .. top + height`` and columns ``left .. left + width``: (height, width, channels)."""
        if top < 0 or left < 0:
            raise ValueError("field positions start at 0")
        rows = np.arange(top, top + height)
        cols = np.arange(left, left + width)
        if self.period is not None:
            cols = cols % self.period
        out = np.empty((height, width, self.channels), np.float32)
        t = self.tile
        for tile_row in np.unique(rows // t):
            row_mask = rows // t == tile_row
            for tile_col in np.unique(cols // t):
                col_mask = cols // t == tile_col
                block = self._tile(int(tile_row), int(tile_col))
                out[np.ix_(row_mask, col_mask)] = block[np.ix_(rows[row_mask] % t, cols[col_mask] % t)]
        for o_top, o_left, values in self._overrides:
            h, w = values.shape[:2]
            row_sel = (rows >= o_top) & (rows < o_top + h)
            col_sel = (cols >= o_left) & (cols < o_left + w)
            if row_sel.any() and col_sel.any():
                out[np.ix_(row_sel, col_sel)] = values[np.ix_(rows[row_sel] - o_top, cols[col_sel] - o_left)]
        return out
