"""InfinityGAN's discriminator: the shared StyleGAN2 residual D plus the auxiliary coordinate head.

models.md §4.6: on 101 px patches the StyleGAN2 D (FromRGB to 256 channels, 5 ResBlocks to
512, minibatch stddev, 3x3 conv, 512*3*3 -> 512 -> 1) has an extra head on the same flattened
features, ``EqualLinear(4608 -> 512, lrelu) -> EqualLinear(512 -> 3)``, that regresses the
patch's coordinates (only the vertical one is trained, ``coord_ac_vert_only``). 28 915 460
parameters with the head (2 361 347).
"""

from __future__ import annotations

import keras
import numpy as np

from tfcoord.layers.stylegan import EqualLinear
from tfcoord.layers.stylegan_discriminator import StyleGan2Discriminator, official_infinitygan_stddev_group


@keras.saving.register_keras_serializable(package="tfcoord")
class CoordinateHead(keras.layers.Layer):
    """D's auxiliary coordinate regressor: features (B, F) -> predicted coordinates (B, outputs)."""

    def __init__(self, hidden, outputs=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.outputs = outputs
        self.hidden_linear = EqualLinear(hidden, activation="fused_lrelu", name="hidden_linear")
        self.output_linear = EqualLinear(outputs, name="output_linear")

    def build(self, features_shape):
        self.hidden_linear.build(tuple(features_shape))
        self.output_linear.build((None, self.hidden))

    def call(self, features):
        return self.output_linear(self.hidden_linear(features))

    def compute_output_shape(self, features_shape):
        return (features_shape[0], self.outputs)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "outputs": self.outputs}

    def official_weight_map(self, side: int, channels: int, prefix: str = "") -> dict:
        """Official ``coord_linear.{0,1}`` names -> (variable, transform); rows of the first linear go
        from PyTorch's (c, h, w) flatten to NHWC (h, w, c)."""

        def first_linear(w):
            out_dim = w.shape[0]
            w = np.asarray(w).reshape(out_dim, channels, side, side)
            return np.transpose(w, (2, 3, 1, 0)).reshape(-1, out_dim)

        return {f"{prefix}coord_linear.0.weight": (self.hidden_linear.kernel, first_linear),
                f"{prefix}coord_linear.0.bias": (self.hidden_linear.bias, np.asarray),
                f"{prefix}coord_linear.1.weight": (self.output_linear.kernel, np.transpose),
                f"{prefix}coord_linear.1.bias": (self.output_linear.bias, np.asarray)}


def build_discriminator(model_cfg, patch_size: int, global_batch_size: int):
    """(D, coordinate head or None), built, for a ``model`` config section."""
    group = model_cfg.stddev_group  # 0 = the whole batch
    group = official_infinitygan_stddev_group(global_batch_size) if group == "official" else int(group)
    discriminator = StyleGan2Discriminator(patch_size, channel_multiplier=model_cfg.d_channel_multiplier,
                                           width_multiplier=model_cfg.d_width_multiplier, stddev_group=group,
                                           name="discriminator")
    discriminator.build()
    head = None
    if model_cfg.coord_head:
        head = CoordinateHead(discriminator.linear_channels, 3, name="coord_head")
        head.build((None, discriminator.feature_dim))
    return discriminator, head
