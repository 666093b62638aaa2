"""InfinityGAN: towards infinite-pixel image synthesis (Lin et al., ICLR 2022), wired for tfcoord.

The wiring of its parts: the networks (:mod:`~tfcoord.models.infinitygan.generator`,
:mod:`~tfcoord.models.infinitygan.discriminator`), the training step
(:mod:`~tfcoord.models.infinitygan.training`), the sampler (:mod:`~tfcoord.models.infinitygan.sampling`:
z_g, w+, the compiled patch functions), the canvas (:mod:`~tfcoord.models.infinitygan.infinite`) and
the serving signatures (:mod:`~tfcoord.models.infinitygan.serving`).
"""

from __future__ import annotations

import numpy as np

from tfcoord.models.base import CoordinateGan
from tfcoord.models.infinitygan import serving
from tfcoord.models.infinitygan.discriminator import build_discriminator
from tfcoord.models.infinitygan.generator import build_generator
from tfcoord.models.infinitygan.infinite import CanvasRenderer, generate_canvas
from tfcoord.models.infinitygan.sampling import InfinityGanSampler, global_latents
from tfcoord.models.infinitygan.training import InfinityGanTraining


class InfinityGan(InfinityGanTraining, CoordinateGan):
    """InfinityGAN for the trainer, the generator CLI, the converter and the exporter; ``sampler`` draws with
    ``generator_ema``."""

    name = "infinitygan"
    serving_functions = serving.serving_functions
    serving_description = serving.serving_description

    def __init__(self, config):
        super().__init__(config)
        self.geometry = config.model.geometry()
        self.coordinates = config.model.coordinates()
        self.generator = self.generator_ema = self.discriminator = self.coord_head = self.sampler = None

    @property
    def patch_size(self) -> int:
        return self.geometry.patch_size

    def image_size(self):
        side = self.config.model.extra_pre_resize or self.config.model.full_size
        return (side, side)

    def build_networks(self):
        """The EMA generator only: all that generation and export use (saves the memory of G and D)."""
        with self.dtype_policy_scope():  # train.precision
            self.generator_ema = build_generator(self.config.model, name="generator_ema")
        self.sampler = InfinityGanSampler(self.generator_ema)

    def build_all_networks(self):
        """G, its EMA copy, D and D's coordinate head (training, conversion)."""
        cfg = self.config.model
        with self.dtype_policy_scope():  # train.precision
            self.generator = build_generator(cfg, name="generator")
            self.generator_ema = build_generator(cfg, name="generator_ema")
            self.generator_ema.set_weights(self.generator.get_weights())
            self.discriminator, self.coord_head = build_discriminator(cfg, self.patch_size,
                                                                      self.config.train.batch_size)
        self.sampler = InfinityGanSampler(self.generator_ema)

    def build(self):
        self.build_all_networks()
        self.build_optimizers()

    def network_items(self):
        """The networks that exist: everything after :meth:`build`, the EMA generator after :meth:`build_networks`
        (restoring it alone from a full checkpoint is fine)."""
        items = dict(generator=self.generator, generator_ema=self.generator_ema, discriminator=self.discriminator,
                     coord_head=self.coord_head)
        return {name: network for name, network in items.items() if network is not None}

    def checkpoint_items(self):
        return dict(self.network_items(), g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer,
                    mean_path_length=self.mean_path_length)

    def global_latents(self, seed: int, num: int, seeding: str = "portable") -> np.ndarray:
        """z_g ~ N(0, 1) for ``num`` images, deterministic for ``seed`` (:func:`.sampling.global_latents`;
        ``seeding="legacy"``: NumPy's ``default_rng([seed, 7])``, as before the portable recipe)."""
        return global_latents(seed, num, self.config.model.global_latent_dim, seeding)

    def sample_images(self, seed, num):
        side = self.geometry.canvas_pixels(2)
        return self.sample_images_at(seed, num, (side, side), direct=True)

    def sample_images_at(self, seed, num, size, direct=False):
        """``num`` canvases of ``size`` = (height, width) pixels, patch by patch (ScaleInv FID); image ``i`` is
        :func:`.infinite.generate_canvas` with seed ``seed * 1000 + i``, so memory is that of a few patches
        whatever the size (``direct``: the whole canvas in one call, the same image)."""
        height, width = (int(side) for side in size)
        images = [generate_canvas(self, height, width, seed=seed * 1000 + i, direct=direct) for i in range(num)]
        return np.clip(np.stack(images), -1.0, 1.0)

    def field_of_view(self) -> float:
        """Generator pixels per real-image pixel: real images are resized to ``extra_pre_resize``
        and then to ``full_size`` before patches are cut (197 / 128 in the paper, §4.1)."""
        model = self.config.model
        return model.full_size / model.extra_pre_resize if model.extra_pre_resize else 1.0

    def canvas_renderer(self, width, height, seed, panorama=False, checkpoint="", xla=False):
        """Renderer for the canvas engine (``python -m tfcoord.generate --run RUN --width W --height H``)."""
        return CanvasRenderer(self, width, height, seed, panorama=panorama, checkpoint=checkpoint, xla=xla)
