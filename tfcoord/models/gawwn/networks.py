"""GAWWN's generators and discriminators (Reed et al., NeurIPS 2016; models.md §3.3-3.5).

Every network is a Keras functional model built from a ``model`` config section:

* :func:`box_generator` ``[z, text_embedding, box] -> rgb`` and :func:`box_discriminator`
  ``[image, box, text_embedding] -> logit``: a global path and a local path whose 16 x 16
  features are pasted into (G, with theta^-1) or cropped out of (D, with theta) the box by
  the spatial transformer (:mod:`tfcoord.layers.box_warp`);
* :func:`keypoint_generator` ``[z, text_embedding, keypoint_maps] -> rgb`` and
  :func:`keypoint_discriminator` ``[image, keypoint_maps, text_embedding] -> logit``: the
  K x 16 x 16 part maps gate the region features multiplicatively;
* :func:`keypoint_completer` ``[z, text_embedding, keypoints] -> keypoints`` (the conditional
  keypoint generator ``s * k + (1 - s) * f(z, t, k)``) and :func:`keypoint_critic`
  ``[keypoints, text_embedding] -> logit``.

Boxes are ``(ymin, xmin, ymax, xmax)`` fractions of the image; keypoints ``(x, y, visible)``
rows. Discriminators return logits: the sigmoid of the official networks is folded into
the loss (``binary_crossentropy(from_logits=True)``, the same values, numerically safer).
At 128 x 128 with the official widths the parameter counts are those of models.md §3.10.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcoord.layers.box_warp import BoxWarp
from tfcoord.models.gawwn.blocks import batch_norm, conv, deconv, linear, tile_vector
from tfcoord.models.gawwn.config import MAP_SIZE
from tfcoord.layers.dtypes import to_float32

S = MAP_SIZE


class _Namer:
    """Unique, readable layer names within one network (checkpoint keys are variable paths)."""

    def __init__(self):
        self.counts = {}

    def __call__(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.counts[kind]}"


def _relu(x):
    return ops.relu(x)


def _d_activation(cfg):
    if cfg.d_activation == "elu":
        return ops.elu
    return lambda x: ops.leaky_relu(x, 0.2)


def _residual(x, inner, outer, name, act=_relu):
    """``x + BN(conv3(act(BN(conv3(act(BN(conv1(x))))))))``, then act (the official bottleneck block)."""
    y = act(batch_norm(name("bn"))(conv(inner, 1, name=name("conv"))(x)))
    y = act(batch_norm(name("bn"))(conv(inner, 3, name=name("conv"))(y)))
    y = batch_norm(name("bn"))(conv(outer, 3, name=name("conv"))(y))
    return act(y + x)


def _up2(cfg, width, name, lowering=None):
    """A factor-2 upsampling of G from the 16 x 16 maps to the image, to ``width`` channels: the paper's 4 x 4
    stride-2 transposed convolution, or (``model.upsample="resize"``) a nearest-neighbour resize and a 3 x 3
    convolution, which cannot draw the pixel checkerboard of transposed convolutions (Odena et al., Distill
    2016). The paths below 16 x 16 keep their transposed convolutions (the 3 x 3 merge smooths them)."""
    if cfg.upsample == "deconv":
        return deconv(width, 4, 2, name=name, lowering=lowering)
    layer = conv(width, 3, name=name)
    return lambda x: layer(_nearest_up2(x))


def _nearest_up2(x):
    """(B, H, W, C) -> (B, 2H, 2W, C), each pixel repeated 2 x 2 (a broadcast: its gradient is a cheap sum).

    Batch and rows share one axis so the broadcast stays 5-D: TFLite's int8 kernels (STRIDED_SLICE,
    MUL) take at most 5 dimensions, and full-integer export fails on a 6-D one.
    """
    _, height, width, channels = x.shape
    x = ops.reshape(x, (-1, 1, width, 1, channels)) * ops.ones((1, 2, 1, 2, 1), x.dtype)
    return ops.reshape(x, (-1, 2 * height, 2 * width, channels))


def _upsample_to_rgb(x, channels, name, cfg):
    """Factor-2 upsamplings through ``channels`` (BN, ReLU), then one to RGB and tanh."""
    for width in channels:
        x = _relu(batch_norm(name("bn"))(_up2(cfg, width, name("deconv"))(x)))
    # As a sub-pixel conv: mobile deconvolution kernels are slow for 3 output channels.
    rgb = ops.tanh(_up2(cfg, 3, name("to_rgb"), lowering="subpixel")(x))
    # Images leave G in float32 under mixed precision (train.precision); no extra op in float32 graphs.
    return to_float32(rgb)


def box_generator(cfg, text_dim: int, name="box_generator"):
    """Bounding-box G (``main_cub_bbox.lua``, one box)."""
    ngf, n = cfg.ngf, cfg.upsamplings
    name_of = _Namer()
    z = keras.Input((cfg.z_dim,), name="z")
    text = keras.Input((text_dim,), name="text_embedding")
    box = keras.Input((4,), name="box")
    paste = BoxWarp("paste", align_corners=cfg.warp_align_corners, name="paste_into_box")
    text_features = linear(4 * ngf, text_dim, name="text_projection")(text)  # shared by both paths

    # Global path: the text pasted into the box, summarised to one vector with z.
    g = paste([tile_vector(text_features, S), box])
    for _ in range(2):
        g = _relu(batch_norm(name_of("global_bn"))(conv(4 * ngf, 4, 2, name=name_of("global_conv"))(g)))
    g = _relu(batch_norm(name_of("global_bn"))(conv(4 * ngf, 4, 1, "valid", name=name_of("global_conv"))(g)))
    z_global = _relu(linear(4 * ngf, cfg.z_dim, name="global_noise_projection")(z))
    g = _relu(ops.concatenate([ops.reshape(z_global, (-1, 1, 1, 4 * ngf)), g], axis=-1))
    g = _relu(batch_norm(name_of("global_bn"))(deconv(8 * ngf, 4, 1, "valid", name=name_of("global_deconv"),
                                                           lowering="matmul")(g)))
    for width in (4 * ngf, 2 * ngf):
        g = _relu(batch_norm(name_of("global_bn"))(deconv(width, 4, 2, name=name_of("global_deconv"))(g)))

    # Local path: features of (z, t) grown to 16 x 16, pasted into the box.
    z_local = linear(4 * ngf, cfg.z_dim, name="local_noise_projection")(z)
    local = _relu(ops.concatenate([z_local, text_features], axis=-1))
    local = ops.reshape(local, (-1, 1, 1, 8 * ngf))
    local = batch_norm(name_of("local_bn"))(deconv(8 * ngf, 4, 1, "valid", name=name_of("local_deconv"),
                                                         lowering="matmul")(local))
    local = _residual(local, 2 * ngf, 8 * ngf, lambda k: name_of(f"local_res_{k}"))
    local = batch_norm(name_of("local_bn"))(deconv(4 * ngf, 4, 2, name=name_of("local_deconv"))(local))
    local = _residual(local, ngf, 4 * ngf, lambda k: name_of(f"local_res_{k}"))
    local = batch_norm(name_of("local_bn"))(deconv(2 * ngf, 4, 2, name=name_of("local_deconv"))(local))
    local = _relu(paste([local, box]))

    x = ops.concatenate([g, local], axis=-1)
    x = _relu(batch_norm(name_of("merge_bn"))(deconv(2 * ngf, 3, 1, name=name_of("merge_deconv"))(x)))
    # 128 x 128: ngf at 32 x 32, then 32 (= ngf / 4 in the scripts) at 64 x 64.
    channels = [ngf] + [max(ngf // 2 ** (k + 1), 8) for k in range(1, n - 1)]
    rgb = _upsample_to_rgb(x, channels[:n - 1], lambda k: name_of(f"merge_{k}"), cfg)
    return keras.Model([z, text, box], rgb, name=name)


def _image_trunk(image, cfg, act, name_of):
    """D's shared image trunk: strided 4 x 4 convolutions down to 16 x 16 x 2 ndf, then a 3 x 3."""
    ndf, n = cfg.ndf, cfg.upsamplings
    x = image
    for _ in range(n - 1):
        x = act(conv(ndf, 4, 2, name=name_of("trunk_conv"))(x))
    x = act(batch_norm(name_of("trunk_bn"))(conv(2 * ndf, 4, 2, name=name_of("trunk_conv"))(x)))
    return act(batch_norm(name_of("trunk_bn"))(conv(2 * ndf, 3, 1, name=name_of("trunk_conv"))(x)))


def _global_image(trunk, cfg, act, name_of):
    ndf = cfg.ndf
    g = act(batch_norm(name_of("global_bn"))(conv(4 * ndf, 4, 2, name=name_of("global_conv"))(trunk)))
    return act(batch_norm(name_of("global_bn"))(conv(8 * ndf, 4, 2, name=name_of("global_conv"))(g)))


def _head(local, global_, cfg, act, name_of):
    ndf = cfg.ndf
    if cfg.d_dropout:
        global_ = keras.layers.Dropout(cfg.d_dropout, name="global_dropout")(global_)
    x = ops.concatenate([local, global_], axis=-1)
    x = act(batch_norm(name_of("head_bn"))(linear(ndf, 2 * ndf, name=name_of("head_linear"))(x)))
    return linear(1, ndf, name=name_of("head_linear"))(x)[:, 0]


def box_discriminator(cfg, text_dim: int, name="box_discriminator"):
    """Bounding-box D: local path on the cropped box, global path on the whole image."""
    ndf, nt = cfg.ndf, cfg.text_features
    act, name_of = _d_activation(cfg), _Namer()
    image = keras.Input((cfg.image_size, cfg.image_size, 3), name="image")
    box = keras.Input((4,), name="box")
    text = keras.Input((text_dim,), name="text_embedding")
    crop = BoxWarp("crop", align_corners=cfg.warp_align_corners, name="crop_box")
    trunk = _image_trunk(image, cfg, act, name_of)
    text_features = act(linear(nt, text_dim, name="text_projection")(text))  # shared
    text_map = tile_vector(text_features, S)

    local = ops.concatenate([trunk, text_map], axis=-1)
    local = act(batch_norm(name_of("local_bn"))(conv(2 * ndf, 3, 1, name=name_of("local_conv"))(local)))
    local = crop([local, box])
    local = act(batch_norm(name_of("local_bn"))(conv(2 * ndf, 1, 1, name=name_of("local_conv"))(local)))
    local = conv(ndf, 1, 1, name=name_of("local_conv"))(local)
    local = act(ops.mean(local, axis=(1, 2)))

    g = _global_image(trunk, cfg, act, name_of)
    # The text map sampled with theta is constant (quirk W5), kept for parity with the official network.
    t = crop([text_map, box])
    t = _relu(batch_norm(name_of("global_text_bn"))(conv(4 * ndf, 4, 2, name=name_of("global_text_conv"))(t)))
    t = _relu(batch_norm(name_of("global_text_bn"))(conv(ndf, 4, 2, name=name_of("global_text_conv"))(t)))
    g = ops.concatenate([g, t], axis=-1)
    g = act(batch_norm(name_of("global_bn"))(conv(4 * ndf, 1, 1, name=name_of("global_conv"))(g)))
    g = act(batch_norm(name_of("global_bn"))(conv(ndf, 4, 1, "valid", name=name_of("global_conv"))(g)))
    logit = _head(local, ops.reshape(g, (-1, ndf)), cfg, act, name_of)
    return keras.Model([image, box, text], logit, name=name)


def keypoint_generator(cfg, text_dim: int, num_parts: int, name="keypoint_generator"):
    """Keypoint G (``main_cub_keypoints.lua``; ``variant="mhp"``: ``main_mhp.lua``)."""
    ngf, n = cfg.ngf, cfg.upsamplings
    name_of = _Namer()
    z = keras.Input((cfg.z_dim,), name="z")
    text = keras.Input((text_dim,), name="text_embedding")
    maps = keras.Input((S, S, num_parts), name="keypoint_maps")
    # One (noise, text) module feeds both paths (shared weights in the official graph).
    noise_text = _relu(ops.concatenate([linear(4 * ngf, cfg.z_dim, name="noise_projection")(z),
                                        linear(4 * ngf, text_dim, name="text_projection")(text)], axis=-1))
    mask = ops.clip(ops.sum(maps, axis=-1, keepdims=True), 0.0, 1.0)

    region = linear(4 * ngf, 8 * ngf, name="region_linear")(noise_text)
    if cfg.variant == "cub":
        region = batch_norm("region_linear_bn")(region)
    region = tile_vector(_relu(region), S) * mask
    region = _relu(batch_norm(name_of("region_bn"))(deconv(4 * ngf, 3, 1, name=name_of("region_deconv"))(region)))
    if cfg.variant == "mhp":
        region = _residual(region, ngf, 4 * ngf, lambda k: name_of(f"region_res_{k}"))

    g = maps
    for width in (ngf, 2 * ngf):
        g = _relu(batch_norm(name_of("global_bn"))(conv(width, 4, 2, name=name_of("global_conv"))(g)))
    g = _relu(batch_norm(name_of("global_bn"))(conv(4 * ngf, 4, 1, "valid", name=name_of("global_conv"))(g)))
    nt = _relu(batch_norm("global_linear_bn")(linear(4 * ngf, 8 * ngf, name="global_linear")(noise_text)))
    g = ops.concatenate([ops.reshape(nt, (-1, 1, 1, 4 * ngf)), g], axis=-1)
    g = _relu(batch_norm(name_of("global_bn"))(deconv(4 * ngf, 4, 1, "valid", name=name_of("global_deconv"),
                                                           lowering="matmul")(g)))
    for width in (2 * ngf, ngf):
        g = _relu(batch_norm(name_of("global_bn"))(deconv(width, 4, 2, name=name_of("global_deconv"))(g)))

    x = ops.concatenate([g, region, maps], axis=-1)
    x = _relu(batch_norm(name_of("merge_bn"))(deconv(4 * ngf, 3, 1, name=name_of("merge_deconv"))(x)))
    x = batch_norm(name_of("merge_bn"))(deconv(4 * ngf, 3, 1, name=name_of("merge_deconv"))(x))
    x = _residual(x, ngf, 4 * ngf, lambda k: name_of(f"merge_res_{k}"))
    # 128 x 128: 2 ngf at 32 x 32, ngf at 64 x 64.
    channels = [2 * ngf, ngf] + [max(ngf // 2 ** k, 8) for k in range(1, n - 2)]
    rgb = _upsample_to_rgb(x, channels[:n - 1], lambda k: name_of(f"up_{k}"), cfg)
    return keras.Model([z, text, maps], rgb, name=name)


def keypoint_discriminator(cfg, text_dim: int, num_parts: int, name="keypoint_discriminator"):
    """Keypoint D: region features gated by the part maps, global path with the text tiled at 4 x 4."""
    ndf, nt = cfg.ndf, cfg.text_features
    act, name_of = _d_activation(cfg), _Namer()
    image = keras.Input((cfg.image_size, cfg.image_size, 3), name="image")
    maps = keras.Input((S, S, num_parts), name="keypoint_maps")
    text = keras.Input((text_dim,), name="text_embedding")
    trunk = _image_trunk(image, cfg, act, name_of)
    text_features = act(linear(nt, text_dim, name="text_projection")(text))  # shared

    local = ops.concatenate([trunk, tile_vector(text_features, S)], axis=-1)
    local = act(batch_norm(name_of("local_bn"))(conv(2 * ndf, 3, 1, name=name_of("local_conv"))(local)))
    local = local * ops.clip(ops.sum(maps, axis=-1, keepdims=True), 0.0, 1.0)
    local = ops.concatenate([local, maps], axis=-1)
    local = act(batch_norm(name_of("local_bn"))(conv(2 * ndf, 1, 1, name=name_of("local_conv"))(local)))
    local = conv(ndf, 1, 1, name=name_of("local_conv"))(local)
    local = act(ops.mean(local, axis=(1, 2)))

    g = _global_image(trunk, cfg, act, name_of)
    g = ops.concatenate([g, tile_vector(text_features, 4)], axis=-1)
    g = act(batch_norm(name_of("global_bn"))(conv(4 * ndf, 1, 1, name=name_of("global_conv"))(g)))
    g = act(batch_norm(name_of("global_bn"))(conv(ndf, 4, 1, "valid", name=name_of("global_conv"))(g)))
    logit = _head(local, ops.reshape(g, (-1, ndf)), cfg, act, name_of)
    return keras.Model([image, maps, text], logit, name=name)


def keypoint_completer(cfg, text_dim: int, num_parts: int, name="keypoint_completer"):
    """Conditional keypoint G: ``s * k + (1 - s) * f(z, t, k)`` with s the given parts' visibility.

    Given parts (visibility 1) pass through unchanged; the others are f's sigmoid outputs
    in [0, 1] (``main_gen_keypoints.lua``; deeper than the paper's 3-layer MLP).
    """
    w, k3 = cfg.keypoint_generator_width, 3 * num_parts
    z = keras.Input((cfg.z_dim,), name="z")
    text = keras.Input((text_dim,), name="text_embedding")
    given = keras.Input((num_parts, 3), name="keypoints")
    a = _relu(linear(4 * w, cfg.z_dim, name="noise_linear")(z))
    b = _relu(linear(4 * w, text_dim, name="text_linear")(text))
    c = _relu(batch_norm("parts_bn_1")(linear(4 * w, k3, name="parts_linear_1")(ops.reshape(given, (-1, k3)))))
    c = _relu(batch_norm("parts_bn_2")(linear(2 * w, 4 * w, name="parts_linear_2")(c)))
    x = ops.concatenate([a, b, c], axis=-1)
    for i, (units, fan_in) in enumerate(((8 * w, 10 * w), (4 * w, 8 * w), (2 * w, 4 * w)), start=1):
        x = _relu(batch_norm(f"mlp_bn_{i}")(linear(units, fan_in, name=f"mlp_linear_{i}")(x)))
    free = ops.sigmoid(ops.reshape(linear(k3, 2 * w, name="mlp_out")(x), (-1, num_parts, 3)))
    switch = given[..., 2:3]
    return keras.Model([z, text, given], free * (1.0 - switch) + given * switch, name=name)


def keypoint_critic(cfg, text_dim: int, num_parts: int, name="keypoint_critic"):
    """D of the conditional keypoint generator: is this set of parts plausible for this text?"""
    w, k3 = cfg.keypoint_generator_width, 3 * num_parts

    def lrelu(x):
        return ops.leaky_relu(x, 0.2)

    parts = keras.Input((num_parts, 3), name="keypoints")
    text = keras.Input((text_dim,), name="text_embedding")
    p = lrelu(batch_norm("parts_bn_1")(linear(4 * w, k3, name="parts_linear_1")(ops.reshape(parts, (-1, k3)))))
    p = lrelu(batch_norm("parts_bn_2")(linear(2 * w, 4 * w, name="parts_linear_2")(p)))
    t = lrelu(batch_norm("text_bn_1")(linear(4 * w, text_dim, name="text_linear_1")(text)))
    t = lrelu(batch_norm("text_bn_2")(linear(2 * w, 4 * w, name="text_linear_2")(t)))
    x = lrelu(batch_norm("joint_bn")(linear(2 * w, 4 * w, name="joint_linear")(ops.concatenate([p, t], axis=-1))))
    return keras.Model([parts, text], linear(1, 2 * w, name="out_linear")(x)[:, 0], name=name)
