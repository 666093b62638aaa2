"""InfinityGAN's generator: structure synthesiser G_S + texture synthesiser G_T (Lin et al., ICLR 2022, §3).

* G_S (models.md §4.4), a neural implicit function: ``ss_layers`` conditional blocks, each
  ``concat(h, centre-crop(coords))`` -> modulated 7x7 conv without padding (feature unfolding
  radius 3 + per-position modulated FC) -> FusedLeakyReLU; modulated by the *raw* global
  latent z_g (no mapping network, quirk I2 = paper), no noise. z_l 35^2 -> 11^2 structure latent.
* G_T (models.md §4.5): StyleGAN2 synthesis with every zero padding removed, fed by the
  structure latent: per up block a padding-free up conv (n -> 2n - 3) and a valid conv
  (-> 2n - 5), each followed by noise injection and FusedLeakyReLU, then a skip ToRGB whose
  previous RGB is upsampled without padding and centre-cropped. Mapping network (8 x
  EqualLinear, lr_mul 0.01) z_g -> w; ``n_latent = 2 * blocks + 1`` style slots: conv i uses
  slot i, the ToRGB after conv 2b+1 uses slot ``min(2b + 3, n_latent - 1)``.

Noise is always an explicit argument ((B, H_l, W_l, 1) per conv, or ``None`` for none), so
that patches cut from one canvas see the same noise where they overlap.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcoord.layers.modulated_conv import ModulatedConv2D, PaddingFreeToRGB, center_crop
from tfcoord.layers.stylegan import MappingNetwork, NoiseInjection, fused_leaky_relu
from tfcoord.layers.dtypes import to_float32


@keras.saving.register_keras_serializable(package="tfcoord")
class StyledConv(keras.layers.Layer):
    """Modulated padding-free conv -> optional noise injection -> FusedLeakyReLU (StyleGAN2 ``StyledConv``)."""

    def __init__(self, filters, kernel_size=3, upsample=False, use_noise=True, unfold=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.use_noise = use_noise
        self.unfold = unfold
        self.conv = ModulatedConv2D(filters, kernel_size, upsample=upsample, unfold=unfold, name="conv")
        self.noise = NoiseInjection(name="noise") if use_noise else None

    def build(self, x_shape, style_shape, noise_shape=None):
        self.conv.build(x_shape, style_shape)
        out_shape = self.conv.compute_output_shape(x_shape, style_shape)
        if self.noise is not None:
            self.noise.build(out_shape)
        self.activation_bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="activation_bias")

    def compute_output_shape(self, x_shape, style_shape, noise_shape=None):
        return self.conv.compute_output_shape(x_shape, style_shape)

    def call(self, x, style, noise=None):
        y = self.conv(x, style)
        if self.noise is not None and noise is not None:
            y = self.noise(y, noise)
        return fused_leaky_relu(y, self.activation_bias)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "upsample": self.upsample, "use_noise": self.use_noise, "unfold": self.unfold}


@keras.saving.register_keras_serializable(package="tfcoord")
class StructureSynthesizer(keras.layers.Layer):
    """G_S: (z_g, z_l window, coordinates) -> structure latent z_S, all padding-free.

    ``call(global_latent, local_latent, coords)``: ``global_latent`` (B, D) or a per-position
    (B, H, W, D) map (spatial style fusion); ``local_latent`` (B, H, W, C); ``coords``
    (B, H, W, coord_dim) aligned with ``local_latent``. Output (B, H - 2 L r, W - 2 L r, C).
    """

    def __init__(self, local_dim, coord_dim=3, num_layers=4, unfold_radius=3, unfold=False, **kwargs):
        super().__init__(**kwargs)
        self.local_dim = local_dim
        self.coord_dim = coord_dim
        self.num_layers = num_layers
        self.unfold_radius = unfold_radius
        self.unfold = unfold
        self.blocks = [StyledConv(local_dim, 2 * unfold_radius + 1, use_noise=False, unfold=unfold, name=f"block_{i}")
                       for i in range(num_layers)]

    def build(self, global_shape, local_shape=None, coords_shape=None):
        for block in self.blocks:
            block.build((None, None, None, self.local_dim + self.coord_dim), tuple(global_shape))

    def call(self, global_latent, local_latent, coords):
        h = local_latent
        for block in self.blocks:
            shape = ops.shape(h)
            # Coordinates are re-concatenated at every layer, centre-cropped to the shrinking features.
            h = block(ops.concatenate([h, center_crop(coords, shape[1], shape[2])], axis=-1), global_latent)
        return h

    def get_config(self):
        return {**super().get_config(), "local_dim": self.local_dim, "coord_dim": self.coord_dim,
                "num_layers": self.num_layers, "unfold_radius": self.unfold_radius, "unfold": self.unfold}


@keras.saving.register_keras_serializable(package="tfcoord")
class TextureSynthesizer(keras.layers.Layer):
    """G_T: structure latent + styles + noise -> RGB, StyleGAN2 synthesis without padding.

    Args:
        style_dim: D of z_g and w.
        block_channels: width of each up block (two convs and a ToRGB per block).
        n_mlp, lr_mlp: mapping network depth and learning-rate multiplier.
    """

    def __init__(self, style_dim, block_channels, n_mlp=8, lr_mlp=0.01, **kwargs):
        super().__init__(**kwargs)
        self.style_dim = style_dim
        self.block_channels = tuple(block_channels)
        self.n_mlp = n_mlp
        self.lr_mlp = lr_mlp
        self.mapping = MappingNetwork(style_dim, n_mlp, lr_mlp, name="mapping")
        self.convs = []
        for b, channels in enumerate(self.block_channels):
            self.convs.append(StyledConv(channels, 3, upsample=True, name=f"conv_{2 * b}"))
            self.convs.append(StyledConv(channels, 3, name=f"conv_{2 * b + 1}"))
        self.to_rgbs = [PaddingFreeToRGB(3, name=f"to_rgb_{b}") for b in range(len(self.block_channels))]

    @property
    def num_convs(self) -> int:
        return len(self.convs)

    @property
    def n_latent(self) -> int:
        """Style slots: one per conv plus one for the last ToRGB."""
        return self.num_convs + 1

    def rgb_style_indices(self) -> list[int]:
        """Style slot of each ToRGB (3, 5, 7, 8 for four blocks; official ``to_rgbs_specs`` tgt)."""
        return [min(2 * b + 3, self.n_latent - 1) for b in range(len(self.to_rgbs))]

    def build(self, structure_shape):
        in_channels = int(structure_shape[-1])
        style_shape = (None, self.style_dim)
        self.mapping.build(style_shape)
        # The official G allocates a 4x4 constant input it never uses (``const_z``); it is kept
        # (frozen) so that parameter counts and official checkpoints map one to one.
        self.constant_input = self.add_weight(shape=(1, 4, 4, in_channels), name="constant_input",
                                              initializer=keras.initializers.RandomNormal(stddev=1.0),
                                              trainable=False)
        shape = (None, None, None, in_channels)
        for b, channels in enumerate(self.block_channels):
            self.convs[2 * b].build(shape, style_shape)
            shape = (None, None, None, channels)
            self.convs[2 * b + 1].build(shape, style_shape)
            self.to_rgbs[b].build(shape, style_shape)

    def map(self, global_latent):
        """z_g (B, D) -> w (B, D)."""
        return self.mapping(global_latent)

    def styles_from_wplus(self, wplus):
        """Per-layer styles from a (B, n_latent, D) w+ tensor: (conv styles, ToRGB styles)."""
        conv_styles = [wplus[:, i] for i in range(self.num_convs)]
        rgb_styles = [wplus[:, i] for i in self.rgb_style_indices()]
        return conv_styles, rgb_styles

    def synthesize(self, structure_latent, conv_styles, rgb_styles, noises=None):
        """RGB from the structure latent; ``conv_styles``/``rgb_styles`` hold (B, D) or per-pixel maps.

        ``noises``: None, or one (B, H_l, W_l, 1) tensor (or None) per conv.
        """
        noises = [None] * self.num_convs if noises is None else list(noises)
        if len(noises) != self.num_convs:
            raise ValueError(f"expected {self.num_convs} noise maps, got {len(noises)}")
        h, rgb = structure_latent, None
        for b, to_rgb in enumerate(self.to_rgbs):
            h = self.convs[2 * b](h, conv_styles[2 * b], noise=noises[2 * b])
            h = self.convs[2 * b + 1](h, conv_styles[2 * b + 1], noise=noises[2 * b + 1])
            rgb = to_rgb(h, rgb_styles[b], skip=rgb)
        # Images leave G in float32 whatever the precision it computes in (train.precision).
        return to_float32(rgb)

    def call(self, structure_latent, style, noises=None):
        """RGB with one style for every layer: ``style`` (B, D) w, or (B, n_latent, D) w+."""
        if len(style.shape) == 3:
            conv_styles, rgb_styles = self.styles_from_wplus(style)
        else:
            conv_styles, rgb_styles = [style] * self.num_convs, [style] * len(self.to_rgbs)
        return self.synthesize(structure_latent, conv_styles, rgb_styles, noises)

    def get_config(self):
        return {**super().get_config(), "style_dim": self.style_dim, "block_channels": list(self.block_channels),
                "n_mlp": self.n_mlp, "lr_mlp": self.lr_mlp}


@keras.saving.register_keras_serializable(package="tfcoord")
class InfinityGanGenerator(keras.layers.Layer):
    """The whole patch generator: ``call(global_latent, local_latent, coords, noises=None) -> rgb``.

    Eval-mode forward of one or more patches (or a whole canvas at once: every layer is
    padding-free, so a larger input gives a larger image): z_g drives G_S raw and G_T through
    the mapping network (no style mixing, no truncation). Shapes for the paper model:
    z_g (B, 512), z_l (B, 35, 35, 256), coords (B, 35, 35, 3), noises 8 x (B, s_l, s_l, 1)
    -> (B, 101, 101, 3), unbounded (nominally [-1, 1]).
    """

    def __init__(self, global_dim, local_dim, block_channels, coord_dim=3, ss_layers=4, unfold_radius=3,
                 n_mlp=8, lr_mlp=0.01, ss_unfold=False, **kwargs):
        super().__init__(**kwargs)
        self.global_dim = global_dim
        self.local_dim = local_dim
        self.block_channels = tuple(block_channels)
        self.coord_dim = coord_dim
        self.ss_layers = ss_layers
        self.unfold_radius = unfold_radius
        self.n_mlp = n_mlp
        self.lr_mlp = lr_mlp
        self.ss_unfold = ss_unfold
        self.structure = StructureSynthesizer(local_dim, coord_dim, ss_layers, unfold_radius, unfold=ss_unfold,
                                              name="structure")
        self.texture = TextureSynthesizer(global_dim, block_channels, n_mlp, lr_mlp, name="texture")

    def build(self, input_shape=None):
        self.structure.build((None, self.global_dim))
        self.texture.build((None, None, None, self.local_dim))

    def call(self, global_latent, local_latent, coords, noises=None):
        structure_latent = self.structure(global_latent, local_latent, coords)
        return self.texture(structure_latent, self.texture.map(global_latent), noises)

    def get_config(self):
        return {**super().get_config(), "global_dim": self.global_dim, "local_dim": self.local_dim,
                "block_channels": list(self.block_channels), "coord_dim": self.coord_dim,
                "ss_layers": self.ss_layers, "unfold_radius": self.unfold_radius, "n_mlp": self.n_mlp,
                "lr_mlp": self.lr_mlp, "ss_unfold": self.ss_unfold}


def build_generator(model_cfg, name="generator") -> InfinityGanGenerator:
    """The generator of a ``model`` config section, built (all weights created)."""
    generator = InfinityGanGenerator(
        model_cfg.global_latent_dim, model_cfg.local_latent_dim, model_cfg.ts_channels,
        coord_dim=4 if model_cfg.coord_system == "torus" else 3, ss_layers=model_cfg.ss_layers,
        unfold_radius=model_cfg.ss_unfold_radius, n_mlp=model_cfg.n_mlp, lr_mlp=model_cfg.lr_mlp,
        ss_unfold=model_cfg.ss_implementation == "unfold", name=name)
    generator.build()
    return generator
