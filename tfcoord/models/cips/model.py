"""CIPS wired from its parts (listed in :mod:`tfcoord.models.cips`)."""

from __future__ import annotations

import numpy as np

from tfcoord.layers.stylegan_discriminator import StyleGan2Discriminator
from tfcoord.models.base import CoordinateGan
from tfcoord.models.cips import serving
from tfcoord.models.cips.generator import build_generator
from tfcoord.models.cips.sampling import CipsSampler
from tfcoord.models.cips.training import CipsTraining


def build_discriminator(model_cfg) -> StyleGan2Discriminator:
    in_channels = 3 + (model_cfg.coord_dim if model_cfg.d_input == "rgb_coords" else 0)
    discriminator = StyleGan2Discriminator(
        model_cfg.training_size, channel_multiplier=model_cfg.channel_multiplier, in_channels=in_channels,
        width_multiplier=model_cfg.d_width_multiplier, stddev_group=model_cfg.stddev_group,
        stddev_grouping=model_cfg.stddev_grouping, name="D_discriminator")
    discriminator.build()
    return discriminator


class Cips(CipsTraining, CoordinateGan):
    """CIPS wired for the trainer, the generator CLI and the exporter.

    Networks: ``generator`` (trained), ``generator_ema`` (the EMA copy used for every
    generation) and ``discriminator``; ``sampler`` draws with ``generator_ema``.
    """

    name = "cips"

    def __init__(self, config):
        super().__init__(config)
        self.generator = self.generator_ema = self.discriminator = self.sampler = None

    def image_size(self):
        return (self.config.model.size, self.config.model.size)

    def build_networks(self):
        cfg = self.config.model
        with self.dtype_policy_scope():  # train.precision
            self.generator = build_generator(cfg, "G_generator")
            self.generator_ema = build_generator(cfg, "G_ema")
            self.generator_ema.set_weights(self.generator.get_weights())
            self.discriminator = build_discriminator(cfg)
        self.sampler = CipsSampler(self.generator_ema, cfg)

    def build(self):
        self.build_networks()
        self.build_optimizers()

    def checkpoint_items(self):
        return dict(self.network_items(), g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer)

    def network_items(self):
        return dict(generator=self.generator, generator_ema=self.generator_ema, discriminator=self.discriminator)

    def sample_images(self, seed, num):
        return np.clip(self.sampler.generate(self.sampler.latents(seed, num)), -1.0, 1.0)

    def canvas_renderer(self, width, height, seed, panorama=False, checkpoint="", xla=False):
        """This model on the canvas engine (see :mod:`tfcoord.models.cips.canvas`)."""
        from tfcoord.models.cips.canvas import CipsCanvas

        return CipsCanvas(self, width, height, seed, panorama=panorama, checkpoint=checkpoint, xla=xla)

    # The serving module's functions take the model first: they are its methods.
    serving_functions = serving.serving_functions
    serving_description = serving.serving_description
