"""InfinityGAN's canvas fields: the seed paths of z_l, the noise and z_g (models.md §4.9).

Every random value of an InfinityGAN canvas (z_g, the local latent z_l and every layer's noise)
is a canvas field of :mod:`tfcoord.generation.fields` (the portable recipe), with ``seed_path``
[1] for z_l, [2, l] for the noise of layer l, [7] for z_g (image k of a seed is row y = k,
column x = 0: ``global_latents(seed, n)`` is rows 0 .. n-1). Under the legacy seeding z_l and
the noise were drawn per 16 / 128 position tile, and z_g by ``default_rng([seed, 7])``.
"""

from __future__ import annotations

import numpy as np

from tfcoord.generation.fields import check_seeding, field_window

FIELD_LOCAL, FIELD_NOISE, FIELD_GLOBAL = 1, 2, 3  # first words of the fields' seed paths
GLOBAL_SEED_PATH = (7,)  # z_g's seed path (kept from the legacy seeding, where default_rng([seed, 7]) drew it)


def global_latents(seed: int, num: int, dim: int, seeding: str = "portable") -> np.ndarray:
    """z_g (num, dim) for images 0 .. num-1 of ``seed``: rows of the z_g field (column 0)."""
    if check_seeding(seeding) == "legacy":
        return np.random.default_rng([seed, *GLOBAL_SEED_PATH]).standard_normal((num, dim)).astype("float32")
    return field_window(seed, GLOBAL_SEED_PATH, np.arange(num), np.zeros(1, np.int64), dim)[:, 0]
