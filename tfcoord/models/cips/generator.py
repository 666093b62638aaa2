"""CIPS generators: CIPSskip (paper default) and CIPSres (Anokhin et al., CVPR 2021, §3; models.md §2.3).

Every pixel is computed from its coordinate and the style alone: all layers are 1x1
("ModFC"), so a pixel's colour does not depend on any other pixel. The input of pixel p is
``concat(sin(p B + b), e(p))`` — Fourier features and the learned coordinate embedding
sampled at p — followed by StyledConv layers (ModulatedDense -> NoiseInjection ->
activation). CIPSskip sums a ToRGB after every pair of layers; CIPSres uses residual pairs
and one ToRGB at the end. The output has no tanh (trained against images in [-1, 1]).

Shapes: ``coords`` (B, H, W, C) grids or (B, N, C) point sets (C = 2: (x, y); C = 3:
cylindrical (y, cos, sin)); ``style`` (B, S) or per pixel (B, H, W, S) / (B, N, S);
``noise`` ``None`` or (B, H, W, L) / (B, N, L) with one channel per StyledConv layer
(L = :attr:`CipsGenerator.num_noise_layers`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tfcoord.coords import FourierFeatures
from tfcoord.models.cips.coordinates import CoordinateEmbedding
from tfcoord.layers.modulated import ModulatedDense, ToRGB, expand_like
from tfcoord.layers.stylegan import SQRT2, EqualLinear, MappingNetwork, NoiseInjection, fused_leaky_relu
from tfcoord.layers.dtypes import to_float32

ARCHITECTURES = ("skip", "res")
ACTIVATIONS = ("lrelu", "sin", "sinrelu")
STAGE_CHANNELS = {"skip": (512, 512, 512, 512, 256, 128, 64, 32, 16),  # x channel_multiplier from index 4
                  "res": (512, 512, 512, 512, 256, 128, 64, 64, 32)}


def stage_channels(architecture: str, size: int, channel_multiplier: int = 2, width_multiplier: float = 1.0):
    """Output channels of the ``log2(size) - 1`` stages (official ``self.channels``), scaled by ``width_multiplier``."""
    table = STAGE_CHANNELS[architecture]
    stages = int(math.log2(size)) - 1
    if stages > len(table):
        raise ValueError(f"size {size} is larger than the official channel table allows (1024)")
    return [max(1, int(round(c * (channel_multiplier if i >= 4 else 1) * width_multiplier)))
            for i, c in enumerate(table[:stages])]


@keras.saving.register_keras_serializable(package="tfcoord")
class StyledDense(keras.layers.Layer):
    """Official ``StyledConv`` with a 1x1 kernel: ModulatedDense -> NoiseInjection -> activation.

    ``activation``: "lrelu" FusedLeakyReLU (bias, slope 0.2, x sqrt 2); "sin" ``sin(x + b)``;
    "sinrelu" ``concat(lrelu(x_even + b), sin(x_odd + b)) * sqrt 2`` (channel order of the
    official ``ScaledLeakyReLUSin``).
    """

    def __init__(self, units, activation="lrelu", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.conv = ModulatedDense(units, name="conv")
        self.noise = NoiseInjection(name="noise")

    def build(self, x_shape, style_shape, noise_shape=None, input_scale_shape=None):
        self.conv.build(x_shape, style_shape)
        self.noise.build(tuple(x_shape[:-1]) + (self.units,))
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros")

    def build_for(self, in_channels: int, style_dim: int):
        self.build((None, in_channels), (None, style_dim))

    def call(self, x, style, noise=None, input_scale=None, return_scale=False):
        """The layer's activation; with ``return_scale`` the pair ``(u, scale)`` whose product it is.

        ``input_scale`` says that the true input is ``x * input_scale`` (per channel). For the
        FusedLeakyReLU the demodulation factor d > 0 moves out of the activation
        (``lrelu(y d + n + b) sqrt 2 = d sqrt 2 lrelu(y + (n + b) / d)``), so the returned ``u``
        skips two passes over the pixels and the next layer folds ``scale = d sqrt 2`` into
        its style scaling: the same result with fewer memory passes (the generator's hot loop).
        """
        if return_scale and self.activation == "lrelu":
            y, d = self.conv.modulate(x, style, input_scale)
            inverse_d = 1.0 / d
            shift = expand_like(self.bias * inverse_d, y)  # (b) / d
            if noise is not None:
                shift = shift + self.noise.strength * noise * expand_like(inverse_d, y)
            return ops.leaky_relu(y + shift, 0.2), d * SQRT2
        if input_scale is not None:
            x = x * expand_like(input_scale, x)
        y = self.noise(self.conv(x, style), noise)
        if self.activation == "lrelu":
            out = fused_leaky_relu(y, self.bias)
        else:
            y = y + self.bias
            if self.activation == "sin":
                out = ops.sin(y)
            else:
                out = ops.concatenate([ops.leaky_relu(y[..., 0::2], 0.2), ops.sin(y[..., 1::2])], axis=-1) * SQRT2
        return (out, None) if return_scale else out


@keras.saving.register_keras_serializable(package="tfcoord")
class StyledResBlock(keras.layers.Layer):
    """CIPSres block: two StyledDense layers, a bias-free 1x1 EqualConv skip when the width changes, / sqrt 2."""

    def __init__(self, in_channels, units, activation="lrelu", **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.units = units
        self.conv1 = StyledDense(units, activation, name="conv1")
        self.conv2 = StyledDense(units, activation, name="conv2")
        self.skip = EqualLinear(units, use_bias=False, name="skip") if in_channels != units else None

    def build(self, x_shape, style_shape, noise1_shape=None, noise2_shape=None):
        style_dim = int(style_shape[-1])
        self.conv1.build_for(self.in_channels, style_dim)
        self.conv2.build_for(self.units, style_dim)
        if self.skip is not None:
            self.skip.build((None, self.in_channels))

    def call(self, x, style, noise1=None, noise2=None):
        hidden, scale = self.conv1(x, style, noise1, return_scale=True)
        out = self.conv2(hidden, style, noise2, input_scale=scale)
        skip = x if self.skip is None else self.skip(x)
        return (out + skip) * (1.0 / SQRT2)


@keras.saving.register_keras_serializable(package="tfcoord")
class CipsGenerator(keras.layers.Layer):
    """CIPS generator G(z, coords) (models.md §2.3).

    Args:
        size: training resolution; the embedding table is ``size x size``.
        hidden_size: channels of the Fourier features and of the embedding (512).
        style_dim: z and w size (512).
        n_mlp: mapping layers (8); lr_mlp: their learning-rate multiplier (0.01).
        channel_multiplier: official ``channel_multiplier`` (2).
        width_multiplier: scales every stage width (1 = paper; small for tests and CPU presets).
        architecture: "skip" (CIPSskip) or "res" (CIPSres).
        activation: "lrelu", "sin" or "sinrelu".
        coord_dim: 2 for (x, y); 3 for cylindrical (y, cos(pi theta), sin(pi theta)).
        use_fourier, use_embedding: the paper's ablations (no Fourier features; CIPS-NE).
        embedding_sampling: "aligned" or "official" (quirk C1, see :func:`tfcoord.models.cips.coordinates.sample_embedding`).

    ``call(z, coords, noise=None, training=False)`` maps z and synthesises;
    :meth:`synthesize` starts from a style w (per image or per pixel).
    """

    def __init__(self, size=256, hidden_size=512, style_dim=512, n_mlp=8, lr_mlp=0.01, channel_multiplier=2,
                 width_multiplier=1.0, architecture="skip", activation="lrelu", coord_dim=2, use_fourier=True,
                 use_embedding=True, embedding_sampling="aligned", **kwargs):
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if coord_dim not in (2, 3):
            raise ValueError(f"coord_dim must be 2 or 3, got {coord_dim}")
        if not (use_fourier or use_embedding):
            raise ValueError("CIPS needs Fourier features or the coordinate embedding (or both)")
        # Keras 3 writes get_config from the constructor's arguments; these are the ones the methods read.
        self.size, self.style_dim, self.architecture = size, style_dim, architecture
        self.coord_dim, self.embedding_sampling = coord_dim, embedding_sampling
        self.mapping = MappingNetwork(style_dim, n_mlp, lr_mlp, name="mapping")
        # The coordinate layers compute in the variable dtype (float32) under mixed precision: in bfloat16 a
        # coordinate near 1 rounds past the table's last row (the embedding's gather index overflows: NaN
        # images on GPU) and sin(pB) of a rounded product loses the phase. conv1 casts their features.
        coord_dtype = self.dtype_policy.variable_dtype
        self.fourier = FourierFeatures(hidden_size, dtype=coord_dtype, name="fourier") if use_fourier else None
        self.embedding = (CoordinateEmbedding(size, hidden_size, embedding_sampling, wrap_x=coord_dim == 3,
                                              dtype=coord_dtype, name="embedding") if use_embedding else None)
        # Coordinates reach those layers as given: G's call does not cast its inputs to the compute dtype
        # (every sublayer casts its own inputs and reads its own weights in its compute dtype).
        self.autocast = False
        self.channels = stage_channels(architecture, size, channel_multiplier, width_multiplier)
        self.input_channels = hidden_size * (int(use_fourier) + int(use_embedding))
        self.conv1 = StyledDense(self.channels[0], activation, name="conv1")
        if architecture == "skip":
            self.linears, self.to_rgbs = [], []
            for i, out_channels in enumerate(self.channels):
                self.linears.append(StyledDense(out_channels, activation, name=f"linear_{2 * i}"))
                self.linears.append(StyledDense(out_channels, activation, name=f"linear_{2 * i + 1}"))
                self.to_rgbs.append(ToRGB(name=f"to_rgb_{i}"))
            self.num_noise_layers = 1 + len(self.linears)
        else:
            self.blocks = [StyledResBlock(in_channels, out_channels, activation, name=f"resblock_{i}")
                           for i, (in_channels, out_channels) in enumerate(self._stage_widths())]
            self.to_rgb_last = ToRGB(name="to_rgb_last")
            self.num_noise_layers = 1 + 2 * len(self.blocks)

    def build(self, z_shape=None, coords_shape=None, noise_shape=None):
        s = self.style_dim
        self.mapping.build((None, s))
        if self.fourier is not None:
            self.fourier.build((None, self.coord_dim))
        if self.embedding is not None:
            self.embedding.build()
        self.conv1.build_for(self.input_channels, s)
        if self.architecture == "skip":
            for i, (in_channels, out_channels) in enumerate(self._stage_widths()):
                self.linears[2 * i].build_for(in_channels, s)
                self.linears[2 * i + 1].build_for(out_channels, s)
                self.to_rgbs[i].build_for(out_channels, s)
        else:
            for block in self.blocks:
                block.build((None, block.in_channels), (None, s))
            self.to_rgb_last.build_for(self.channels[-1], s)

    def _stage_widths(self):
        """(input, output) channels of each stage."""
        return zip(self.channels[:1] + self.channels[:-1], self.channels)

    # -- pieces ---------------------------------------------------------------------------------------
    def map(self, z):
        """The mapping network: z (..., S) -> style w (..., S)."""
        return self.mapping(z)

    def embedding_coords(self, coords):
        """Where the embedding is read: (x, y) as given, or (theta, y) for cylindrical (y, cos, sin)."""
        if self.coord_dim == 2:
            return coords
        theta = ops.arctan2(coords[..., 2], coords[..., 1]) * (1.0 / math.pi)
        return ops.stack([theta, coords[..., 0]], axis=-1)

    def pixel_features(self, coords, training=False):
        """The first layer's input ``concat(Fourier(coords), embedding(coords))``, (..., input_channels)."""
        parts = []
        if self.fourier is not None:
            parts.append(self.fourier(coords))
        if self.embedding is not None:
            parts.append(self._embedding(coords, training))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _embedding(self, coords, training):
        # Quirk C1: the official training path uses the raw table whenever the grid has the
        # native size (whatever its values); only the "official" mode needs the distinction,
        # since the aligned sampler already reproduces the table on the native grid.
        if training and self.embedding_sampling == "official" and self._is_native_grid(coords):
            table = ops.expand_dims(self.embedding.table, 0)
            return table * ops.ones_like(coords[:, :1, :1, :1])
        return self.embedding(self.embedding_coords(coords))

    def _is_native_grid(self, coords) -> bool:
        """Whether ``coords`` is statically a (B, size, size, C) grid (the official shape test)."""
        try:
            shape = tuple(coords.shape)
        except ValueError:  # unknown rank
            return False
        return len(shape) == 4 and shape[1] == self.size and shape[2] == self.size

    @staticmethod
    def _noise(noise, index):
        return None if noise is None else ops.expand_dims(noise[..., index], -1)

    def synthesize(self, style, coords, noise=None, training=False):
        """RGB (..., 3) of every coordinate from a style (B, S) or a per-pixel style field (B, ..., S).

        Activations travel as ``(u, scale)`` pairs between layers (see :meth:`StyledDense.call`):
        mathematically the official forward, with fewer passes over the pixels.
        """
        x, scale = self.conv1(self.pixel_features(coords, training), style, self._noise(noise, 0), return_scale=True)
        if self.architecture == "skip":
            rgb = None
            for i, to_rgb in enumerate(self.to_rgbs):
                x, scale = self.linears[2 * i](x, style, self._noise(noise, 1 + 2 * i), scale, return_scale=True)
                x, scale = self.linears[2 * i + 1](x, style, self._noise(noise, 2 + 2 * i), scale, return_scale=True)
                rgb = to_rgb(x, style, rgb, input_scale=scale)
            return to_float32(rgb)  # images leave G in float32 under mixed precision
        if scale is not None:
            x = x * expand_like(scale, x)
        for i, block in enumerate(self.blocks):
            x = block(x, style, self._noise(noise, 1 + 2 * i), self._noise(noise, 2 + 2 * i))
        return to_float32(self.to_rgb_last(x, style))

    def call(self, z, coords, noise=None, training=False):
        return self.synthesize(self.map(z), coords, noise=noise, training=training)

    def compute_output_spec(self, z, coords, noise=None, training=False):
        return keras.KerasTensor(tuple(coords.shape[:-1]) + (3,), coords.dtype)


def build_generator(model_cfg, name: str = "generator") -> CipsGenerator:
    """The generator of a ``model`` config section, built (all weights created)."""
    generator = CipsGenerator(
        size=model_cfg.size, hidden_size=model_cfg.hidden_size, style_dim=model_cfg.style_dim,
        n_mlp=model_cfg.n_mlp, lr_mlp=model_cfg.lr_mlp, channel_multiplier=model_cfg.channel_multiplier,
        width_multiplier=model_cfg.width_multiplier, architecture=model_cfg.architecture,
        activation=model_cfg.activation, coord_dim=model_cfg.coord_dim, use_fourier=model_cfg.use_fourier,
        use_embedding=model_cfg.use_embedding, embedding_sampling=model_cfg.embedding_sampling, name=name)
    generator.build()
    return generator
