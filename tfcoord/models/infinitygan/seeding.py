"""InfinityGAN's portable seeding: the canvas fields and z_g as a counter-based generator.

Every random value of an InfinityGAN canvas (z_g, the local latent z_l and every layer's noise)
is a pure function of (seed, field, position, channel), computed with 64-bit integer operations
and one float64 Box-Muller step, so that an Android, iOS or web client draws the library's
canvas tile by tile without NumPy (issue 19, item 3). The recipe (:data:`RECIPE`, also in the
serving description and the README), all integer arithmetic modulo 2^64, ``>>`` a logical shift::

    G = 0x9E3779B97F4A7C15
    mix(z):   z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;  z = (z ^ z >> 27) * 0x94D049BB133111EB;  z ^ z >> 31
    hash(words): h = 0; for w in words: h = mix(h + (w + 1) * G); return h
    normal(h): u1 = ((h >> 32) + 1) * 2^-32 in (0, 1];  u2 = (h & 0xFFFFFFFF) * 2^-32 in [0, 1)
               float32(sqrt(-2 * ln u1) * cos(6.283185307179586 * u2))      (float64 math, one cast at the end)
    field value at row y, column x, channel c = normal(hash([seed, *seed_path, y, x, c]))

with ``seed_path`` [1] for z_l, [2, l] for the noise of layer l, [7] for z_g (image k of a seed
is row y = k, column x = 0: ``global_latents(seed, n)`` is rows 0 .. n-1).

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
per 16 / 128 position tile, and ``default_rng([seed, 7])`` for z_g) stays available as
``seeding="legacy"`` (``python -m tfcoord.generate --seeding legacy``, ``python -m export.client
--seeding legacy``), so images made before the change can be made again.
"""

from __future__ import annotations

import numpy as np

from tfcoord.errors import UserError

SEEDINGS = ("portable", "legacy")
# The serving description's name of each recipe ("generator" of a canvas field or latent).
GENERATORS = {"portable": "splitmix64-boxmuller/1", "legacy": "numpy-default-rng"}
SEEDING_OF_GENERATOR = {name: seeding for seeding, name in GENERATORS.items()}

FIELD_LOCAL, FIELD_NOISE, FIELD_GLOBAL = 1, 2, 3  # first words of the fields' seed paths
GLOBAL_SEED_PATH = (7,)  # z_g's seed path (kept from the legacy seeding, where default_rng([seed, 7]) drew it)

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


def global_latents(seed: int, num: int, dim: int, seeding: str = "portable") -> np.ndarray:
    """z_g (num, dim) for images 0 .. num-1 of ``seed``: rows of the z_g field (column 0)."""
    if check_seeding(seeding) == "legacy":
        return np.random.default_rng([seed, *GLOBAL_SEED_PATH]).standard_normal((num, dim)).astype("float32")
    return field_window(seed, GLOBAL_SEED_PATH, np.arange(num), np.zeros(1, np.int64), dim)[:, 0]


def legacy_tile(seed: int, seed_path, tile_row: int, tile_col: int, tile: int, channels: int) -> np.ndarray:
    """One ``tile`` x ``tile`` block of a field under the legacy seeding (NumPy's PCG64 and ziggurat normals)."""
    rng = np.random.default_rng([seed, *seed_path, tile_row, tile_col])
    return rng.standard_normal((tile, tile, channels), dtype=np.float32)
