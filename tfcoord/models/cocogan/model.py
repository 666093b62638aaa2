"""COCO-GAN: generation by parts via conditional coordinating (Lin et al., ICCV 2019).

The wiring of its parts: the networks (:mod:`~tfcoord.models.cocogan.generator`, D with heads A and Q in
:mod:`~tfcoord.models.cocogan.discriminator`), the training step (:mod:`~tfcoord.models.cocogan.training`),
the sampler (:mod:`~tfcoord.models.cocogan.sampling`), the canvas (:mod:`~tfcoord.models.cocogan.canvas`) and
the serving signatures (:mod:`~tfcoord.models.cocogan.serving`).
"""

from __future__ import annotations

import numpy as np

from tfcoord.errors import UserError
from tfcoord.models.base import CoordinateGan
from tfcoord.models.cocogan import serving
from tfcoord.models.cocogan.canvas import CocoGanCanvas
from tfcoord.models.cocogan.discriminator import CocoGanDiscriminator, PredictionHead
from tfcoord.models.cocogan.generator import build_generator, geometry_of
from tfcoord.models.cocogan.sampling import CocoGanSampler
from tfcoord.models.cocogan.training import CocoGanTraining


def build_networks(model_cfg):
    """G, D, head A and (optionally) head Q for a ``model`` config section, built."""
    geometry = geometry_of(model_cfg)
    common = dict(snlinear_init=model_cfg.snlinear_init, sn_grad_through_uv=model_cfg.sn_grad_through_uv)
    norm = dict(bn_moving_stats=model_cfg.bn_moving_stats)
    generator = build_generator(model_cfg)
    discriminator = CocoGanDiscriminator(macro_size=model_cfg.macro_size, coord_dim=geometry.coord_dim,
                                         ndf=model_cfg.ndf, name="D_discriminator", **common)
    discriminator.build()
    spatial_head = PredictionHead(geometry.coord_dim, model_cfg.aux_dim, discriminator.feature_dim,
                                  name="GD_spatial_prediction_head", **common, **norm)
    spatial_head.build()
    content_head = None
    if model_cfg.content_head:
        content_head = PredictionHead(model_cfg.z_dim, model_cfg.aux_dim, discriminator.feature_dim,
                                      name="Q_content_prediction_head", **common, **norm)
        content_head.build()
    return generator, discriminator, spatial_head, content_head


class CocoGan(CocoGanTraining, CoordinateGan):
    """COCO-GAN for the trainer, the generator CLI and the exporter; ``sampler`` draws with
    :attr:`sampling_generator`."""

    name = "cocogan"
    serving_functions = serving.serving_functions
    serving_description = serving.serving_description

    def __init__(self, config):
        super().__init__(config)
        self.geometry = geometry_of(config.model)
        self.generator = self.discriminator = self.spatial_head = self.content_head = None
        self.generator_ema = self.sampler = None

    def image_size(self):
        return tuple(self.config.model.full_size)

    def build_networks(self):
        with self.dtype_policy_scope():  # train.precision
            self.generator, self.discriminator, self.spatial_head, self.content_head = build_networks(self.config.model)
            if self.config.optim.g_ema_decay:
                self.generator_ema = build_generator(self.config.model, name="G_generator_ema")
                self.generator_ema.set_weights(self.generator.get_weights())
        self.sampler = CocoGanSampler(self.sampling_generator, self.geometry)

    def build(self):
        self.build_networks()
        self.build_optimizers()

    def checkpoint_items(self):
        items = dict(self.network_items(), g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer)
        if self.q_optimizer is not None:
            items["q_optimizer"] = self.q_optimizer
        if self.extrapolation_optimizers is not None:
            items["extrapolation_g_optimizer"], items["extrapolation_d_optimizer"] = self.extrapolation_optimizers
        return items

    def network_items(self):
        items = dict(generator=self.generator, discriminator=self.discriminator, spatial_head=self.spatial_head,
                     content_head=self.content_head, generator_ema=self.generator_ema)
        return {name: network for name, network in items.items() if network is not None}

    @property
    def sampling_generator(self):
        """The generator that draws (generation, samples, export): the EMA copy when there is one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def latents(self, seed: int, num: int) -> np.ndarray:
        """z ~ U(-1, 1)^z_dim for ``num`` images, deterministic for ``seed`` (the config alone: no network)."""
        return np.random.default_rng(seed).uniform(-1.0, 1.0, (num, self.config.model.z_dim)).astype("float32")

    def sample_images(self, seed, num):
        return self.sampler.generate_full(self.latents(seed, num))

    def patch_guided_generate(self, macro_patch):
        """Patch-guided generation (paper §4.5): a real macro patch -> (full image, z_est, c'_est).

        Q maps D's features of the patch to a latent, A to the patch's coordinate;
        the full image is generated from the estimated latent.
        """
        if self.content_head is None:
            raise UserError("patch-guided generation needs a model trained with model.content_head=true "
                            "and loss.content_weight > 0 (preset celeba128_patch_guided)")
        _, features = self.discriminator(macro_patch, None, training=False)
        z_est = self.content_head(features, training=False)
        coords_est = self.spatial_head(features, training=False)
        return self.sampler.generate_full(np.asarray(z_est)), np.asarray(z_est), np.asarray(coords_est)

    def canvas_renderer(self, width, height, seed, panorama=False, checkpoint="", xla=False):
        """This model on the canvas engine (see :mod:`tfcoord.models.cocogan.canvas`)."""
        return CocoGanCanvas(self, width, height, seed, panorama=panorama, checkpoint=checkpoint, xla=xla)
