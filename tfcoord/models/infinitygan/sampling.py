"""InfinityGAN's sampler: z_g, the seed paths of the canvas fields, and the EMA generator's patch functions.

Every random value of an InfinityGAN canvas (z_g, the local latent z_l and every layer's noise)
is a canvas field of :mod:`tfcoord.generation.fields` (the portable recipe), with ``seed_path``
[1] for z_l, [2, l] for the noise of layer l, [7] for z_g (image k of a seed is row y = k,
column x = 0: ``global_latents(seed, n)`` is rows 0 .. n-1). Under the legacy seeding z_l and
the noise were drawn per 16 / 128 position tile, and z_g by ``default_rng([seed, 7])``.
:mod:`.infinite` windows the fields patch by patch and renders with :class:`InfinityGanSampler`.
"""

from __future__ import annotations

import numpy as np

from tfcoord.generation.fields import check_seeding, field_window

FIELD_LOCAL, FIELD_NOISE = 1, 2  # first words of the fields' seed paths
GLOBAL_SEED_PATH = (7,)  # z_g's seed path (kept from the legacy seeding, where default_rng([seed, 7]) drew it)
# Positions per side of one computed tile of the z_l / noise fields. Under the portable seeding a
# tile is only the cache's unit (every value is a hash of its own position); under the legacy one
# it is part of the fields' definition, which the serving description passes on (``field_tile``).
LOCAL_FIELD_TILE, NOISE_FIELD_TILE = 16, 128


def global_latents(seed: int, num: int, dim: int, seeding: str = "portable") -> np.ndarray:
    """z_g (num, dim) for images 0 .. num-1 of ``seed``: rows of the z_g field (column 0)."""
    if check_seeding(seeding) == "legacy":
        return np.random.default_rng([seed, *GLOBAL_SEED_PATH]).standard_normal((num, dim)).astype("float32")
    return field_window(seed, GLOBAL_SEED_PATH, np.arange(num), np.zeros(1, np.int64), dim)[:, 0]


class InfinityGanSampler:
    """Draws with ``generator`` (the EMA :class:`~tfcoord.models.infinitygan.generator.InfinityGanGenerator`);
    ``InfinityGan.sampler`` is one."""

    def __init__(self, generator):
        self.generator = generator
        self._functions = {}

    def style_wplus(self, global_latent) -> np.ndarray:
        """w+ (n_latent, D) of a z_g (D,): the mapped style repeated for every slot."""
        w = np.asarray(self.functions()["map_latent"](global_latent[None]))[0]
        return np.repeat(w[None], self.generator.texture.n_latent, axis=0)

    def functions(self, xla: bool = False) -> dict:
        """The compiled patch functions ``render`` (one w+), ``render_fused`` (spatial style fusion) and
        ``map_latent``; ``xla``: the patch functions compiled with XLA (one compilation per batch size)."""
        if xla in self._functions:
            return self._functions[xla]
        import tensorflow as tf
        from keras import ops

        generator, texture = self.generator, self.generator.texture
        rgb_slots = texture.rgb_style_indices()
        jit_compile = True if xla else None

        @tf.function(reduce_retracing=True, jit_compile=jit_compile)
        def render(global_latent, wplus, local_latent, coords, noises):
            structure = generator.structure(global_latent, local_latent, coords)
            conv_styles, rgb_styles = texture.styles_from_wplus(wplus)
            return texture.synthesize(structure, conv_styles, rgb_styles, noises if noises else None)

        @tf.function(reduce_retracing=True, jit_compile=jit_compile)
        def render_fused(centre_latents, centre_wplus, ss_map, conv_maps, local_latent, coords, noises):
            # Spatial style fusion (models.md §4.9): per-position mixtures of the centres' styles.
            ss_style = ops.einsum("bhwk,bkd->bhwd", ss_map, centre_latents)
            structure = generator.structure(ss_style, local_latent, coords)
            conv_styles = [ops.einsum("bhwk,bkd->bhwd", conv_maps[i], centre_wplus[:, :, i])
                           for i in range(texture.num_convs)]
            rgb_styles = [ops.einsum("bhwk,bkd->bhwd", conv_maps[2 * b + 1], centre_wplus[:, :, slot])
                          for b, slot in enumerate(rgb_slots)]
            return texture.synthesize(structure, conv_styles, rgb_styles, noises if noises else None)

        @tf.function(reduce_retracing=True)
        def map_latent(global_latent):
            return texture.map(global_latent)

        self._functions[xla] = dict(render=render, render_fused=render_fused, map_latent=map_latent)
        return self._functions[xla]
