"""COCO-GAN discriminator, spatial head A and content head Q (models.md §1.5)."""

from __future__ import annotations

import keras
from keras import ops

from tfcoord.layers import SNConv2D, SNDense
from tfcoord.models.cocogan.generator import conv_initializer, linear_initializer
from tfcoord.models.cocogan.normalization import BatchNorm


def discriminator_channel_multipliers(macro_size: int) -> list[int]:
    """ndf multipliers of the D blocks: ``log2(S) - 1`` blocks, the last four [2, 4, 8, 8].

    S = 32 -> [1, 4, 8, 8]; S = 64 -> [1, 2, 4, 8, 8]; S = 128 -> [1, 1, 2, 4, 8, 8]
    (the first is always 1, as in the official code after commit e92e624).
    """
    n = macro_size.bit_length() - 2
    multipliers = [1] * (n - 4) + [2, 4, 8, 8] if n > 4 else [2, 4, 8, 8][-n:]
    return [1] + multipliers[1:]


@keras.saving.register_keras_serializable(package="tfcoord")
class DiscriminatorResBlock(keras.layers.Layer):
    """``(ReLU unless first) -> SNConv3x3 -> ReLU -> SNConv3x3 -> (AvgPool2)``, shortcut ``(AvgPool2) -> SNConv1x1``."""

    def __init__(self, filters, downsample=True, preactivate=True, sn_grad_through_uv=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.downsample = downsample
        self.preactivate = preactivate
        self.sn_grad_through_uv = sn_grad_through_uv
        sn = dict(kernel_initializer=conv_initializer(), grad_through_uv=sn_grad_through_uv)
        self.conv_1 = SNConv2D(filters, 3, name="conv_1", **sn)
        self.conv_2 = SNConv2D(filters, 3, name="conv_2", **sn)
        self.shortcut = SNConv2D(filters, 1, name="conv_sc", **sn)

    def build(self, x_shape):
        self.conv_1.build(x_shape)
        self.conv_2.build(tuple(x_shape[:3]) + (self.filters,))
        batch, height, width, channels = x_shape
        if self.downsample:
            height, width = (height // 2 if height else None), (width // 2 if width else None)
        self.shortcut.build((batch, height, width, channels))

    def _pool(self, x):
        return ops.average_pool(x, 2, 2) if self.downsample else x

    def call(self, x, training=False, update_u=True):
        sn = dict(training=training, update_u=update_u)
        h = ops.relu(x) if self.preactivate else x
        h = self.conv_2(ops.relu(self.conv_1(h, **sn)), **sn)
        return self._pool(h) + self.shortcut(self._pool(x), **sn)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "downsample": self.downsample,
                "preactivate": self.preactivate, "sn_grad_through_uv": self.sn_grad_through_uv}


@keras.saving.register_keras_serializable(package="tfcoord")
class CocoGanDiscriminator(keras.Model):
    """Projection discriminator on macro patches (COCO-GAN §3.2; Miyato & Koyama 2018).

    ``h = sum_pool(ReLU(blocks(x)))`` and ``D(x, c') = SN-Linear(h) + <SN-Linear(c'), h>``.
    Without coordinates (the gradient penalty's interpolates, quirk Q3) only the linear
    term is used. ``call`` returns ``(logits (B,), features h (B, 8 ndf))``.
    """

    def __init__(self, macro_size=32, coord_dim=2, ndf=64, snlinear_init="truncated_normal",
                 sn_grad_through_uv=False, **kwargs):
        super().__init__(**kwargs)
        self.macro_size = macro_size
        self.coord_dim = coord_dim
        self.ndf = ndf
        self.snlinear_init = snlinear_init
        self.sn_grad_through_uv = sn_grad_through_uv
        multipliers = discriminator_channel_multipliers(macro_size)
        self.blocks = [
            DiscriminatorResBlock(m * ndf, downsample=i < len(multipliers) - 1, preactivate=i > 0,
                                  sn_grad_through_uv=sn_grad_through_uv, name=f"d_resblock_{i}")
            for i, m in enumerate(multipliers)
        ]
        self.feature_dim = multipliers[-1] * ndf
        linear = dict(kernel_initializer=linear_initializer(snlinear_init), grad_through_uv=sn_grad_through_uv)
        self.logit = SNDense(1, name="main_steam_out", **linear)  # (sic) official scope name
        self.coord_embedding = SNDense(self.feature_dim, name="y_emb", **linear)

    def build(self, input_shape=None):
        shape = (None, self.macro_size, self.macro_size, 3)
        for block in self.blocks:
            block.build(shape)
            side = shape[1] // 2 if block.downsample else shape[1]
            shape = (None, side, side, block.filters)
        self.logit.build((None, self.feature_dim))
        self.coord_embedding.build((None, self.coord_dim))
        self.built = True

    def call(self, macro_patch, macro_coords=None, training=False, update_u=True):
        h = macro_patch
        for block in self.blocks:
            h = block(h, training=training, update_u=update_u)
        features = ops.sum(ops.relu(h), axis=(1, 2))
        logits = ops.squeeze(self.logit(features, training=training, update_u=update_u), -1)
        if macro_coords is not None:
            projection = self.coord_embedding(macro_coords, training=training, update_u=update_u)
            logits = logits + ops.sum(projection * features, axis=-1)
        return logits, features

    def get_config(self):
        return {**super().get_config(), "macro_size": self.macro_size, "coord_dim": self.coord_dim,
                "ndf": self.ndf, "snlinear_init": self.snlinear_init,
                "sn_grad_through_uv": self.sn_grad_through_uv}


@keras.saving.register_keras_serializable(package="tfcoord")
class PredictionHead(keras.Model):
    """``SN-Linear(hidden) -> BN -> LReLU(0.2) -> SN-Linear(out) -> tanh`` on D's features.

    Head A (spatial consistency) regresses the macro coordinate; head Q (content)
    regresses z for patch-guided generation. ``groups`` splits the batch into parts
    (real and fake features) that the BN normalises separately, as separate calls would.
    """

    def __init__(self, output_dim, hidden_dim=128, feature_dim=512, snlinear_init="truncated_normal",
                 sn_grad_through_uv=False, bn_moving_stats="per_call", **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.feature_dim = feature_dim
        self.snlinear_init = snlinear_init
        self.sn_grad_through_uv = sn_grad_through_uv
        self.bn_moving_stats = bn_moving_stats
        linear = dict(kernel_initializer=linear_initializer(snlinear_init), grad_through_uv=sn_grad_through_uv)
        self.fc_1 = SNDense(hidden_dim, name="fc1", **linear)
        self.norm = BatchNorm(momentum=0.9, epsilon=1e-5, moving_stats=bn_moving_stats, name="bn1")
        self.fc_2 = SNDense(output_dim, name="fc2", **linear)

    def build(self, input_shape=None):
        self.fc_1.build((None, self.feature_dim))
        self.norm.build((None, self.hidden_dim))
        self.fc_2.build((None, self.hidden_dim))
        self.built = True

    def call(self, features, training=False, update_u=True, groups=1):
        h = self.fc_1(features, training=training, update_u=update_u)
        h = ops.leaky_relu(self.norm(h, training=training, groups=groups), 0.2)
        return ops.tanh(self.fc_2(h, training=training, update_u=update_u))

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "hidden_dim": self.hidden_dim,
                "feature_dim": self.feature_dim, "snlinear_init": self.snlinear_init,
                "sn_grad_through_uv": self.sn_grad_through_uv, "bn_moving_stats": self.bn_moving_stats}
