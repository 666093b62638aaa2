"""GAWWN's generators and discriminators (Reed et al., NeurIPS 2016; models.md §3.3-3.5).

Six Keras models, each built from a ``model`` config section by the function of its name:

* :class:`BoxGenerator` ``[z, text_embedding, box] -> rgb`` and :class:`BoxDiscriminator`
  ``[image, box, text_embedding] -> logit``: a global path and a local path whose 16 x 16
  features are pasted into (G, with theta^-1) or cropped out of (D, with theta) the box by
  the spatial transformer (:mod:`tfcoord.layers.box_warp`);
* :class:`KeypointGenerator` ``[z, text_embedding, keypoint_maps] -> rgb`` and
  :class:`KeypointDiscriminator` ``[image, keypoint_maps, text_embedding] -> logit``: the
  K x 16 x 16 part maps gate the region features multiplicatively;
* :class:`KeypointCompleter` ``[z, text_embedding, keypoints] -> keypoints`` (the conditional
  keypoint generator ``s * k + (1 - s) * f(z, t, k)``) and :class:`KeypointCritic`
  ``[keypoints, text_embedding] -> logit``.

Boxes are ``(ymin, xmin, ymax, xmax)`` fractions of the image; keypoints ``(x, y, visible)``
rows. Discriminators return logits: the sigmoid of the official networks is folded into
the loss (``binary_crossentropy(from_logits=True)``, the same values, numerically safer).
At 128 x 128 with the official widths the parameter counts are those of models.md §3.10.

Example:
    >>> g = box_generator(GawwnConfig(image_size=64, ngf=8), text_dim=16)
    >>> g([z, text_embedding, box]).shape  # (B, 64, 64, 3)
"""

from __future__ import annotations

import inspect

import keras
from keras import ops

from tfcoord.layers.box_warp import BoxWarp
from tfcoord.layers.dtypes import to_float32
from tfcoord.models.gawwn.blocks import (ACTIVATIONS, Bottleneck, ConvUnit, DenseUnit, apply_all, batch_norm,
                                         linear, nearest_up2, tile_vector, up2_conv)
from tfcoord.models.gawwn.config import MAP_SIZE, upsamplings

S = MAP_SIZE


class GawwnNetwork(keras.Model):
    """What the six networks share: a list of named inputs (:meth:`input_specs`, in call order) whose shapes
    follow from the arguments.

    ``build`` traces ``call`` on those shapes, so every layer is built in the network's scope.
    Inputs reach the layers as given (no autocast) and each layer casts its own, as in the
    functional graphs of earlier versions: under mixed precision the box, keypoints and part
    maps stay float32 outside the layers, and where they meet features ``keras.ops`` promotes
    (a TensorFlow operator would refuse bfloat16 times float32).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.autocast = False

    def input_specs(self) -> dict[str, tuple]:
        """{input name: shape without the batch axis}, in the order ``call`` takes them."""
        raise NotImplementedError

    def _symbolic_inputs(self):
        return [keras.KerasTensor((None, *shape), name=name) for name, shape in self.input_specs().items()]

    def build(self, input_shape=None):
        self.compute_output_spec(self._symbolic_inputs())

    def get_config(self):
        # Keras 3 writes get_config from the constructor's arguments for layers, not for subclassed models (whose
        # __new__ drops them); every network keeps each argument as the attribute of its name.
        arguments = inspect.signature(type(self).__init__).parameters
        names = [name for name in arguments if name not in ("self", "kwargs")]
        return {**super().get_config(), **{name: getattr(self, name) for name in names}}

    @property
    def output_shape(self) -> tuple:
        """The output's shape, batch None (as Keras gives it for functional models)."""
        return tuple(self.compute_output_spec(self._symbolic_inputs()).shape)


class _ImageGenerator(GawwnNetwork):
    """G's end, shared by both generators: factor-2 upsamplings (BN, ReLU) of the 16 x 16 maps through
    ``channels``, then one to RGB and tanh."""

    def __init__(self, z_dim, text_dim, ngf, image_size, upsample, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.text_dim, self.ngf, self.image_size, self.upsample = z_dim, text_dim, ngf, image_size, upsample

    def _make_upsamplings(self, channels):
        self.upsamplings = [ConvUnit(width, upsample=self.upsample, name=f"up_{i}")
                            for i, width in enumerate(channels, 1)]
        # As a sub-pixel conv: mobile deconvolution kernels are slow for 3 output channels.
        self.to_rgb = up2_conv(self.upsample, 3, lowering="subpixel", name="to_rgb")

    def _draw(self, x):
        x = apply_all(self.upsamplings, x)
        rgb = ops.tanh(self.to_rgb(nearest_up2(x) if self.upsample == "resize" else x))
        # Images leave G in float32 under mixed precision (train.precision); no extra op in float32 graphs.
        return to_float32(rgb)


@keras.saving.register_keras_serializable(package="tfcoord")
class BoxGenerator(_ImageGenerator):
    """Bounding-box G (``main_cub_bbox.lua``, one box).

    Args:
        z_dim, text_dim: sizes of the noise and of the text embedding.
        ngf: G's width. image_size: 16 * 2^n.
        upsample: G's factor-2 upsamplings, "deconv" (the paper) or "resize" (``model.upsample``).
        warp_align_corners: the box warp's corner-aligned grid (quirk W1).
    """

    def __init__(self, z_dim=100, text_dim=1024, ngf=128, image_size=128, upsample="deconv",
                 warp_align_corners=True, **kwargs):
        super().__init__(z_dim, text_dim, ngf, image_size, upsample, **kwargs)
        self.warp_align_corners = warp_align_corners
        n = upsamplings(image_size)
        self.paste = BoxWarp("paste", align_corners=warp_align_corners, name="paste_into_box")
        self.text_projection = linear(4 * ngf, text_dim, name="text_projection")  # shared by both paths
        self.global_in = [ConvUnit(4 * ngf, 4, 2, name="global_in_1"), ConvUnit(4 * ngf, 4, 2, name="global_in_2"),
                          ConvUnit(4 * ngf, 4, 1, "valid", name="global_in_3")]
        self.global_noise = DenseUnit(4 * ngf, z_dim, norm=False, name="global_noise_projection")
        self.global_out = [ConvUnit(8 * ngf, 4, 1, "valid", transposed=True, lowering="matmul", name="global_out_1"),
                           ConvUnit(4 * ngf, 4, 2, transposed=True, name="global_out_2"),
                           ConvUnit(2 * ngf, 4, 2, transposed=True, name="global_out_3")]
        self.local_noise = linear(4 * ngf, z_dim, name="local_noise_projection")
        self.local = [ConvUnit(8 * ngf, 4, 1, "valid", transposed=True, lowering="matmul", activation=None,
                               name="local_1"), Bottleneck(2 * ngf, 8 * ngf, name="local_2"),
                      ConvUnit(4 * ngf, 4, 2, transposed=True, activation=None, name="local_3"),
                      Bottleneck(ngf, 4 * ngf, name="local_4"),
                      ConvUnit(2 * ngf, 4, 2, transposed=True, activation=None, name="local_5")]
        self.merge = ConvUnit(2 * ngf, 3, 1, transposed=True, name="merge")
        # 128 x 128: ngf at 32 x 32, then 32 (= ngf / 4 in the scripts) at 64 x 64.
        channels = [ngf] + [max(ngf // 2 ** (k + 1), 8) for k in range(1, n - 1)]
        self._make_upsamplings(channels[:n - 1])

    def input_specs(self):
        return {"z": (self.z_dim,), "text_embedding": (self.text_dim,), "box": (4,)}

    def call(self, inputs, training=None):
        z, text, box = inputs
        text_features = self.text_projection(text)
        # Global path: the text pasted into the box, summarised to one vector with z.
        g = apply_all(self.global_in, self.paste([tile_vector(text_features, S), box]))
        g = ops.relu(ops.concatenate([ops.reshape(self.global_noise(z), (-1, 1, 1, 4 * self.ngf)), g], axis=-1))
        g = apply_all(self.global_out, g)
        # Local path: features of (z, t) grown to 16 x 16, pasted into the box.
        local = ops.relu(ops.concatenate([self.local_noise(z), text_features], axis=-1))
        local = apply_all(self.local, ops.reshape(local, (-1, 1, 1, 8 * self.ngf)))
        local = ops.relu(self.paste([local, box]))
        return self._draw(self.merge(ops.concatenate([g, local], axis=-1)))


@keras.saving.register_keras_serializable(package="tfcoord")
class KeypointGenerator(_ImageGenerator):
    """Keypoint G (``main_cub_keypoints.lua``; ``variant="mhp"``: ``main_mhp.lua``, whose region path has no
    batch norm after its linear map and one residual block after its convolution).

    Args: as :class:`BoxGenerator`'s, and ``num_parts`` (K), ``variant`` ("cub" or "mhp").
    """

    def __init__(self, z_dim=100, text_dim=1024, num_parts=15, ngf=128, image_size=128, upsample="deconv",
                 variant="cub", **kwargs):
        super().__init__(z_dim, text_dim, ngf, image_size, upsample, **kwargs)
        self.num_parts, self.variant = num_parts, variant
        n = upsamplings(image_size)
        # One (noise, text) module feeds both paths (shared weights in the official graph).
        self.noise_projection = linear(4 * ngf, z_dim, name="noise_projection")
        self.text_projection = linear(4 * ngf, text_dim, name="text_projection")
        self.region_linear = linear(4 * ngf, 8 * ngf, name="region_linear")
        self.region_linear_bn = batch_norm("region_linear_bn") if variant == "cub" else None
        self.region = [ConvUnit(4 * ngf, 3, transposed=True, name="region_1")]
        if variant == "mhp":
            self.region.append(Bottleneck(ngf, 4 * ngf, name="region_2"))
        self.global_in = [ConvUnit(ngf, 4, 2, name="global_in_1"), ConvUnit(2 * ngf, 4, 2, name="global_in_2"),
                          ConvUnit(4 * ngf, 4, 1, "valid", name="global_in_3")]
        self.global_linear = DenseUnit(4 * ngf, 8 * ngf, name="global_linear")
        self.global_out = [ConvUnit(4 * ngf, 4, 1, "valid", transposed=True, lowering="matmul", name="global_out_1"),
                           ConvUnit(2 * ngf, 4, 2, transposed=True, name="global_out_2"),
                           ConvUnit(ngf, 4, 2, transposed=True, name="global_out_3")]
        self.merge = [ConvUnit(4 * ngf, 3, transposed=True, name="merge_1"),
                      ConvUnit(4 * ngf, 3, transposed=True, activation=None, name="merge_2"),
                      Bottleneck(ngf, 4 * ngf, name="merge_3")]
        # 128 x 128: 2 ngf at 32 x 32, ngf at 64 x 64.
        channels = [2 * ngf, ngf] + [max(ngf // 2 ** k, 8) for k in range(1, n - 2)]
        self._make_upsamplings(channels[:n - 1])

    def input_specs(self):
        return {"z": (self.z_dim,), "text_embedding": (self.text_dim,), "keypoint_maps": (S, S, self.num_parts)}

    def call(self, inputs, training=None):
        z, text, maps = inputs
        noise_text = ops.relu(ops.concatenate([self.noise_projection(z), self.text_projection(text)], axis=-1))
        mask = ops.clip(ops.sum(maps, axis=-1, keepdims=True), 0.0, 1.0)
        region = self.region_linear(noise_text)
        region = ops.relu(region if self.region_linear_bn is None else self.region_linear_bn(region))
        region = apply_all(self.region, ops.multiply(tile_vector(region, S), mask))
        g = apply_all(self.global_in, maps)
        g = ops.concatenate([ops.reshape(self.global_linear(noise_text), (-1, 1, 1, 4 * self.ngf)), g], axis=-1)
        g = apply_all(self.global_out, g)
        return self._draw(apply_all(self.merge, ops.concatenate([g, region, maps], axis=-1)))


class _Discriminator(GawwnNetwork):
    """What both discriminators share: the image trunk (strided 4 x 4 convolutions down to 16 x 16 x 2 ndf, then
    a 3 x 3), the text projection, both ends of the 16 x 16 local path, the global path on the trunk, and the head
    on [local, global]."""

    def __init__(self, text_dim, ndf, text_features, image_size, activation, dropout, **kwargs):
        super().__init__(**kwargs)
        self.text_dim, self.ndf, self.text_features, self.image_size = text_dim, ndf, text_features, image_size
        self.activation, self.dropout = activation, dropout
        act, n = dict(activation=activation), upsamplings(image_size)
        self.trunk = [*[ConvUnit(ndf, 4, 2, norm=False, name=f"trunk_{i}", **act) for i in range(1, n)],
                      ConvUnit(2 * ndf, 4, 2, name=f"trunk_{n}", **act), ConvUnit(2 * ndf, 3, name="trunk_out", **act)]
        self.text_projection = DenseUnit(text_features, text_dim, norm=False, name="text_projection", **act)  # shared
        self.local_in = ConvUnit(2 * ndf, 3, name="local_in", **act)
        self.local_out = [ConvUnit(2 * ndf, 1, name="local_out_1", **act),
                          ConvUnit(ndf, 1, norm=False, activation=None, name="local_out_2")]
        self.global_image = [ConvUnit(4 * ndf, 4, 2, name="global_image_1", **act),
                             ConvUnit(8 * ndf, 4, 2, name="global_image_2", **act)]
        # Made between the global path's layers: the order in which their initialisers draw seeds (see ConvUnit).
        self.global_condition = self._global_condition_layers()
        self.global_out = [ConvUnit(4 * ndf, 1, name="global_out_1", **act),
                           ConvUnit(ndf, 4, 1, "valid", name="global_out_2", **act)]
        self.global_dropout = keras.layers.Dropout(dropout, name="global_dropout") if dropout else None
        self.head = [DenseUnit(ndf, 2 * ndf, name="head", **act), linear(1, ndf, name="logit")]

    def _global_condition_layers(self) -> list:
        return []

    def _pool_local(self, local):
        return ACTIVATIONS[self.activation](ops.mean(apply_all(self.local_out, local), axis=(1, 2)))

    def _logit(self, local, global_):
        global_ = ops.reshape(apply_all(self.global_out, global_), (-1, self.ndf))
        if self.global_dropout is not None:
            global_ = self.global_dropout(global_)
        return apply_all(self.head, ops.concatenate([local, global_], axis=-1))[:, 0]


@keras.saving.register_keras_serializable(package="tfcoord")
class BoxDiscriminator(_Discriminator):
    """Bounding-box D: local path on the cropped box, global path on the whole image.

    Args:
        text_dim: size of the text embedding. ndf: D's width. text_features: nt, the text projection's size.
        image_size: 16 * 2^n. activation: "leaky_relu" or "elu" (MHP). dropout: before the head (MHP 0.2).
        warp_align_corners: the box warp's corner-aligned grid (quirk W1).
    """

    def __init__(self, text_dim=1024, ndf=64, text_features=128, image_size=128, activation="leaky_relu",
                 dropout=0.0, warp_align_corners=True, **kwargs):
        super().__init__(text_dim, ndf, text_features, image_size, activation, dropout, **kwargs)
        self.warp_align_corners = warp_align_corners
        self.crop = BoxWarp("crop", align_corners=warp_align_corners, name="crop_box")

    def input_specs(self):
        return {"image": (self.image_size, self.image_size, 3), "box": (4,), "text_embedding": (self.text_dim,)}

    def _global_condition_layers(self):
        # The text map cropped from the box, to the global path's 4 x 4.
        return [ConvUnit(4 * self.ndf, 4, 2, name="global_text_1"), ConvUnit(self.ndf, 4, 2, name="global_text_2")]

    def call(self, inputs, training=None):
        image, box, text = inputs
        trunk = apply_all(self.trunk, image)
        text_map = tile_vector(self.text_projection(text), S)
        local = self._pool_local(self.crop([self.local_in(ops.concatenate([trunk, text_map], axis=-1)), box]))
        g = apply_all(self.global_image, trunk)
        # The text map sampled with theta is constant (quirk W5), kept for parity with the official network.
        g = ops.concatenate([g, apply_all(self.global_condition, self.crop([text_map, box]))], axis=-1)
        return self._logit(local, g)


@keras.saving.register_keras_serializable(package="tfcoord")
class KeypointDiscriminator(_Discriminator):
    """Keypoint D: region features gated by the part maps, global path with the text tiled at 4 x 4.

    Args: as :class:`BoxDiscriminator`'s, with ``num_parts`` (K) in place of ``warp_align_corners``.
    """

    def __init__(self, text_dim=1024, num_parts=15, ndf=64, text_features=128, image_size=128,
                 activation="leaky_relu", dropout=0.0, **kwargs):
        super().__init__(text_dim, ndf, text_features, image_size, activation, dropout, **kwargs)
        self.num_parts = num_parts

    def input_specs(self):
        return {"image": (self.image_size, self.image_size, 3), "keypoint_maps": (S, S, self.num_parts),
                "text_embedding": (self.text_dim,)}

    def call(self, inputs, training=None):
        image, maps, text = inputs
        trunk = apply_all(self.trunk, image)
        text_features = self.text_projection(text)
        local = self.local_in(ops.concatenate([trunk, tile_vector(text_features, S)], axis=-1))
        local = ops.multiply(local, ops.clip(ops.sum(maps, axis=-1, keepdims=True), 0.0, 1.0))
        local = self._pool_local(ops.concatenate([local, maps], axis=-1))
        g = ops.concatenate([apply_all(self.global_image, trunk), tile_vector(text_features, 4)], axis=-1)
        return self._logit(local, g)


@keras.saving.register_keras_serializable(package="tfcoord")
class KeypointCompleter(GawwnNetwork):
    """Conditional keypoint G: ``s * k + (1 - s) * f(z, t, k)`` with s the given parts' visibility.

    Given parts (visibility 1) pass through unchanged; the others are f's sigmoid outputs
    in [0, 1] (``main_gen_keypoints.lua``; deeper than the paper's 3-layer MLP).

    Args: z_dim, text_dim, num_parts (K), width (``model.keypoint_generator_width``).
    """

    def __init__(self, z_dim=100, text_dim=1024, num_parts=15, width=128, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.text_dim, self.num_parts, self.width = z_dim, text_dim, num_parts, width
        w = width
        self.noise_path = DenseUnit(4 * w, z_dim, norm=False, name="noise")
        self.text_path = DenseUnit(4 * w, text_dim, norm=False, name="text")
        self.parts_path = [DenseUnit(4 * w, 3 * num_parts, name="parts_1"), DenseUnit(2 * w, 4 * w, name="parts_2")]
        self.mlp = [DenseUnit(8 * w, 10 * w, name="mlp_1"), DenseUnit(4 * w, 8 * w, name="mlp_2"),
                    DenseUnit(2 * w, 4 * w, name="mlp_3"), linear(3 * num_parts, 2 * w, name="mlp_out")]

    def input_specs(self):
        return {"z": (self.z_dim,), "text_embedding": (self.text_dim,), "keypoints": (self.num_parts, 3)}

    def call(self, inputs, training=None):
        z, text, given = inputs
        parts = ops.reshape(given, (-1, 3 * self.num_parts))
        x = ops.concatenate([self.noise_path(z), self.text_path(text), apply_all(self.parts_path, parts)], axis=-1)
        free = ops.sigmoid(ops.reshape(apply_all(self.mlp, x), (-1, self.num_parts, 3)))
        switch = given[..., 2:3]
        return ops.multiply(free, 1.0 - switch) + given * switch


@keras.saving.register_keras_serializable(package="tfcoord")
class KeypointCritic(GawwnNetwork):
    """D of the conditional keypoint generator: is this set of parts plausible for this text?

    Args: text_dim, num_parts (K), width (``model.keypoint_generator_width``).
    """

    def __init__(self, text_dim=1024, num_parts=15, width=128, **kwargs):
        super().__init__(**kwargs)
        self.text_dim, self.num_parts, self.width = text_dim, num_parts, width
        w, lrelu = width, dict(activation="leaky_relu")
        self.parts_path = [DenseUnit(4 * w, 3 * num_parts, name="parts_1", **lrelu),
                           DenseUnit(2 * w, 4 * w, name="parts_2", **lrelu)]
        self.text_path = [DenseUnit(4 * w, text_dim, name="text_1", **lrelu),
                          DenseUnit(2 * w, 4 * w, name="text_2", **lrelu)]
        self.joint = [DenseUnit(2 * w, 4 * w, name="joint", **lrelu), linear(1, 2 * w, name="logit")]

    def input_specs(self):
        return {"keypoints": (self.num_parts, 3), "text_embedding": (self.text_dim,)}

    def call(self, inputs, training=None):
        parts, text = inputs
        parts = apply_all(self.parts_path, ops.reshape(parts, (-1, 3 * self.num_parts)))
        return apply_all(self.joint, ops.concatenate([parts, apply_all(self.text_path, text)], axis=-1))[:, 0]


def _built(network):
    network.build()
    return network


def box_generator(cfg, text_dim: int, name="box_generator") -> BoxGenerator:
    return _built(BoxGenerator(cfg.z_dim, text_dim, cfg.ngf, cfg.image_size, cfg.upsample, cfg.warp_align_corners,
                               name=name))


def box_discriminator(cfg, text_dim: int, name="box_discriminator") -> BoxDiscriminator:
    return _built(BoxDiscriminator(text_dim, cfg.ndf, cfg.text_features, cfg.image_size, cfg.d_activation,
                                   cfg.d_dropout, cfg.warp_align_corners, name=name))


def keypoint_generator(cfg, text_dim: int, num_parts: int, name="keypoint_generator") -> KeypointGenerator:
    return _built(KeypointGenerator(cfg.z_dim, text_dim, num_parts, cfg.ngf, cfg.image_size, cfg.upsample,
                                    cfg.variant, name=name))


def keypoint_discriminator(cfg, text_dim: int, num_parts: int, name="keypoint_discriminator") -> KeypointDiscriminator:
    return _built(KeypointDiscriminator(text_dim, num_parts, cfg.ndf, cfg.text_features, cfg.image_size,
                                        cfg.d_activation, cfg.d_dropout, name=name))


def keypoint_completer(cfg, text_dim: int, num_parts: int, name="keypoint_completer") -> KeypointCompleter:
    return _built(KeypointCompleter(cfg.z_dim, text_dim, num_parts, cfg.keypoint_generator_width, name=name))


def keypoint_critic(cfg, text_dim: int, num_parts: int, name="keypoint_critic") -> KeypointCritic:
    return _built(KeypointCritic(text_dim, num_parts, cfg.keypoint_generator_width, name=name))
