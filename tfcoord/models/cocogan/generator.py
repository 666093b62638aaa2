"""COCO-GAN generator: one micro patch from (z, micro coordinate) (models.md §1.4)."""

from __future__ import annotations

import keras
from keras import ops

from tfcoord.models.cocogan.coordinates import CocoGanCoordinates
from tfcoord.layers import ConditionalBatchNorm, SNConv2D, SNDense
from tfcoord.models.cocogan.normalization import BatchNorm
from tfcoord.layers.dtypes import to_float32


def conv_initializer():
    # Official convs: truncated normal with sigma = sqrt(2 / fan_in), biases 0.
    return keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal")


def linear_initializer(snlinear_init: str):
    # The official snlinear meant sqrt(1/fan_in) but falls back to glorot (quirk Q8).
    if snlinear_init == "glorot_uniform":
        return keras.initializers.GlorotUniform()
    return keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")


def generator_channel_multipliers(micro_size: int, extra_layers: int) -> list[tuple[int, bool]]:
    """(ngf multiplier, upsamples) per residual block.

    ``log2(micro) - 1`` upsampling blocks take the 2x2 seed to the micro size, then
    ``extra_layers`` blocks keep the size; multipliers run 8, 4, 2, 1, 1, ... over all
    blocks (micro 32 -> [8, 4, 2, 1]; micro 4 with 3 extra -> [8 up, 4, 2, 1]).
    """
    num_up = micro_size.bit_length() - 2
    total = num_up + extra_layers
    multipliers = ([8, 4, 2] + [1] * total)[:total]
    return [(m, i < num_up) for i, m in enumerate(multipliers)]


@keras.saving.register_keras_serializable(package="tfcoord")
class GeneratorResBlock(keras.layers.Layer):
    """Conditional residual block of COCO-GAN's G.

    ``h = CBN(x) -> ReLU -> up2 -> SNConv3x3 -> CBN -> ReLU -> SNConv3x3``, shortcut
    ``up2 -> SNConv1x1``, output ``h + shortcut``; CBN is conditioned on [z, micro
    coordinate] and ``up2`` (nearest) is omitted in non-resizing blocks.
    """

    def __init__(self, filters, upsample=True, cbn_variance="paper", sn_grad_through_uv=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.upsample = upsample
        self.cbn_variance = cbn_variance
        self.sn_grad_through_uv = sn_grad_through_uv
        sn = dict(kernel_initializer=conv_initializer(), grad_through_uv=sn_grad_through_uv)
        self.norm_1 = ConditionalBatchNorm(variance_mode=cbn_variance, name="cbn_1")
        self.conv_1 = SNConv2D(filters, 3, name="conv_1", **sn)
        self.norm_2 = ConditionalBatchNorm(variance_mode=cbn_variance, name="cbn_2")
        self.conv_2 = SNConv2D(filters, 3, name="conv_2", **sn)
        self.shortcut = SNConv2D(filters, 1, name="conv_sc", **sn)

    def build(self, x_shape, condition_shape):
        batch, height, width, channels = x_shape
        scale = 2 if self.upsample else 1
        out_shape = (batch, height * scale if height else None, width * scale if width else None, channels)
        self.norm_1.build(x_shape, condition_shape)
        self.conv_1.build(out_shape)
        hidden_shape = out_shape[:3] + (self.filters,)
        self.norm_2.build(hidden_shape, condition_shape)
        self.conv_2.build(hidden_shape)
        self.shortcut.build(out_shape)

    def _up(self, x):
        return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2) if self.upsample else x

    def call(self, x, condition, training=False, update_state=True):
        norm = dict(training=training, update_stats=update_state)
        sn = dict(training=training, update_u=update_state)
        h = ops.relu(self.norm_1(x, condition, **norm))
        h = self.conv_1(self._up(h), **sn)
        h = ops.relu(self.norm_2(h, condition, **norm))
        h = self.conv_2(h, **sn)
        return h + self.shortcut(self._up(x), **sn)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "upsample": self.upsample,
                "cbn_variance": self.cbn_variance, "sn_grad_through_uv": self.sn_grad_through_uv}


@keras.saving.register_keras_serializable(package="tfcoord")
class CocoGanGenerator(keras.Model):
    """G(z, c'') -> micro patch in [-1, 1] (COCO-GAN, Lin et al. 2019, §3.2 and Appendix).

    ``cond = concat(z, micro_coords)`` -> SN-Linear to a 2x2x(16 ngf) seed -> residual
    up-blocks with conditional BN on ``cond`` -> BN -> ReLU -> SN-Conv3x3 -> tanh.

    A training call with ``update_state=False`` uses batch statistics but leaves the
    spectral-norm vectors ``u`` and the CBN recorders alone (the official code advances
    them only in G's own step); the last BN's averages move on every training call.

    Example:
        >>> g = CocoGanGenerator(micro_size=16)
        >>> patch = g([z, micro_coords])  # (B, 16, 16, 3)
    """

    def __init__(self, micro_size=16, z_dim=128, coord_dim=2, ngf=64, extra_layers=0,
                 cbn_variance="paper", snlinear_init="truncated_normal", sn_grad_through_uv=False,
                 bn_moving_stats="per_call", **kwargs):
        super().__init__(**kwargs)
        self.micro_size = micro_size
        self.z_dim = z_dim
        self.coord_dim = coord_dim
        self.ngf = ngf
        self.extra_layers = extra_layers
        self.cbn_variance = cbn_variance
        self.snlinear_init = snlinear_init
        self.sn_grad_through_uv = sn_grad_through_uv
        self.bn_moving_stats = bn_moving_stats
        self.seed_dense = SNDense(16 * ngf * 2 * 2, kernel_initializer=linear_initializer(snlinear_init),
                                  grad_through_uv=sn_grad_through_uv, name="g_z_fc")
        self.blocks = [
            GeneratorResBlock(m * ngf, upsample=up, cbn_variance=cbn_variance,
                              sn_grad_through_uv=sn_grad_through_uv, name=f"g_resblock_{i}")
            for i, (m, up) in enumerate(generator_channel_multipliers(micro_size, extra_layers))
        ]
        # decay 0.9, eps 1e-5 as in the official TF1 code; moments synchronized across replicas (P13).
        self.last_norm = BatchNorm(momentum=0.9, epsilon=1e-5, moving_stats=bn_moving_stats, name="g_last_bn")
        self.to_rgb = SNConv2D(3, 3, kernel_initializer=conv_initializer(),
                               grad_through_uv=sn_grad_through_uv, name="g_last_conv")

    def build(self, input_shape=None):
        cond_shape = (None, self.z_dim + self.coord_dim)
        self.seed_dense.build(cond_shape)
        shape, size = (None, 2, 2, 16 * self.ngf), 2
        for block in self.blocks:
            block.build(shape, cond_shape)
            size *= 2 if block.upsample else 1
            shape = (None, size, size, block.filters)
        self.last_norm.build(shape)
        self.to_rgb.build(shape)
        self.built = True

    def call(self, inputs, training=False, update_state=True):
        z, micro_coords = inputs
        condition = ops.concatenate([z, micro_coords], axis=-1)
        h = self.seed_dense(condition, training=training, update_u=update_state)
        h = ops.reshape(h, (-1, 2, 2, 16 * self.ngf))
        for block in self.blocks:
            h = block(h, condition, training=training, update_state=update_state)
        h = ops.relu(self.last_norm(h, training=training))
        rgb = ops.tanh(self.to_rgb(h, training=training, update_u=update_state))
        # Images leave G in float32 whatever the precision it computes in (train.precision).
        return to_float32(rgb)

    def get_config(self):
        return {**super().get_config(), "micro_size": self.micro_size, "z_dim": self.z_dim,
                "coord_dim": self.coord_dim, "ngf": self.ngf, "extra_layers": self.extra_layers,
                "cbn_variance": self.cbn_variance, "snlinear_init": self.snlinear_init,
                "sn_grad_through_uv": self.sn_grad_through_uv, "bn_moving_stats": self.bn_moving_stats}


def geometry_of(model_cfg) -> CocoGanCoordinates:
    """The full image, macro and micro patch grids of a ``model`` config section."""
    height, width = model_cfg.full_size
    return CocoGanCoordinates(height, width, model_cfg.macro_size, model_cfg.micro_size,
                              model_cfg.coordinate_system)


def build_generator(model_cfg, name="G_generator") -> CocoGanGenerator:
    """G for a ``model`` config section, built (also its moving average, ``optim.g_ema_decay``)."""
    generator = CocoGanGenerator(micro_size=model_cfg.micro_size, z_dim=model_cfg.z_dim,
                                 coord_dim=geometry_of(model_cfg).coord_dim,
                                 ngf=model_cfg.ngf, extra_layers=model_cfg.g_extra_layers,
                                 cbn_variance=model_cfg.cbn_variance, snlinear_init=model_cfg.snlinear_init,
                                 sn_grad_through_uv=model_cfg.sn_grad_through_uv,
                                 bn_moving_stats=model_cfg.bn_moving_stats, name=name)
    generator.build()
    return generator
