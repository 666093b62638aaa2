"""CIPS: image generators with conditionally-independent pixel synthesis (Anokhin et al., CVPR 2021).

Training (models.md §2.6): non-saturating logistic GAN loss, lazy R1 (gamma 10 every 16
steps, a separate D update as in the official code, selected through
:meth:`Cips.step_variant`), Adam (lr 0.002, betas (0, 0.99)) adjusted by the
lazy-regularisation ratio, horizontal flips, a G EMA updated after every step, and
optionally the official multi-scale patch training (``model.crop``): G evaluates exactly
the P x P coordinates of a (strided) crop and D judges the matching P x P crop of the real
image, so a 256 model trains with the memory of a P patch.

Generation: any coordinate set is a valid request (tiles, denser grids, foveated sets,
cylinders, per-pixel styles); see :mod:`tfcoord.models.cips.applications`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf
from keras import ops

from tfcoord.coords import cips_tile_coords, cylinder_angle, cylindrical, linear_position
from tfcoord.errors import UserError
from tfcoord.gan.distribute import average
from tfcoord.gan.ema import ema_step
from tfcoord.gan.losses import logistic_discriminator_loss, nonsaturating_generator_loss
from tfcoord.gan.optimizers import lazy_regularization_adam
from tfcoord.gan.regularizers import r1_penalty
from tfcoord.layers.stylegan_discriminator import StyleGan2Discriminator
from tfcoord.models.base import CoordinateGan, finite_input, step_seed
from tfcoord.models.cips.config import MAX_OUTPUT_PIXELS, MAX_OUTPUT_SIDE
from tfcoord.models.cips.generator import build_generator
from tfcoord.training.precision import input_gradient, loss_scaled, minimize, to_float32

R1_VARIANT = "r1"
# Pixels per generator call when rendering large images (bounds activation memory: a
# 512-channel float32 activation of 65 536 pixels is 134 MB).
DEFAULT_PIXELS_PER_CALL = 65536


def build_discriminator(model_cfg) -> StyleGan2Discriminator:
    in_channels = 3 + (model_cfg.coord_dim if model_cfg.d_input == "rgb_coords" else 0)
    discriminator = StyleGan2Discriminator(
        model_cfg.training_size, channel_multiplier=model_cfg.channel_multiplier, in_channels=in_channels,
        width_multiplier=model_cfg.d_width_multiplier, stddev_group=model_cfg.stddev_group,
        stddev_grouping=model_cfg.stddev_grouping, name="D_discriminator")
    discriminator.build()
    return discriminator


def strided_crop(images, top, left, size: int, stride):
    """Rows ``top + stride * i`` and columns ``left + stride * j`` (i, j < size) of each image.

    ``top``, ``left``, ``stride``: (B,) int32. The official multi-scale crop (models.md §2.6).
    """
    steps = ops.arange(size, dtype="int32")
    rows = ops.expand_dims(top, -1) + ops.expand_dims(stride, -1) * steps  # (B, size)
    cols = ops.expand_dims(left, -1) + ops.expand_dims(stride, -1) * steps
    out = ops.take_along_axis(images, ops.reshape(rows, (-1, size, 1, 1)), axis=1)
    return ops.take_along_axis(out, ops.reshape(cols, (-1, 1, size, 1)), axis=2), rows, cols


def crop_offsets(seed, batch: int, image_size: int, crop: int, num_scales: int):
    """Official ``MultiScaleDataset`` crop positions for one step (TensorFlow, stateless).

    One scale k per step (official ``key = randint(n_scales)``), stride ``n = 2^k``; per
    example and axis an offset ``b < size - n P + n`` (k >= 1), the strided sub-grid
    ``b, b + n, ...`` and a random P-long window of it. Returns (top, left, stride), each (B,) int32.
    """
    seeds = tf.random.experimental.stateless_split(seed, 5)
    scale = tf.random.stateless_uniform([], seeds[0], 0, num_scales, tf.int32)
    stride = tf.bitwise.left_shift(1, scale)

    def offsets(seed_bias, seed_window):
        bias = tf.where(scale > 0, image_size - stride * crop + stride, 1)
        b = tf.random.stateless_uniform([batch], seed_bias, 0, bias, tf.int32)
        b = tf.where(scale > 0, b, 0)
        length = (image_size - b + stride - 1) // stride  # len(range(b, size, stride))
        u = tf.random.stateless_uniform([batch], seed_window, 0.0, 1.0)
        window = tf.minimum(tf.cast(u * tf.cast(length - crop + 1, tf.float32), tf.int32), length - crop)
        return b + stride * window

    return offsets(seeds[1], seeds[2]), offsets(seeds[3], seeds[4]), tf.fill([batch], stride)


class Cips(CoordinateGan):
    """CIPS wired for the trainer, the generator CLI and the exporter.

    Networks: ``generator`` (trained), ``generator_ema`` (the EMA copy used for every
    generation) and ``discriminator``.
    """

    name = "cips"

    def __init__(self, config):
        super().__init__(config)
        self.generator = self.generator_ema = self.discriminator = None
        self._mean_styles = {}
        self._synthesis_functions = {}

    # -- construction ----------------------------------------------------------------
    def image_size(self):
        return (self.config.model.size, self.config.model.size)

    def build_networks(self):
        cfg = self.config.model
        with self.dtype_policy_scope():  # train.precision
            self.generator = build_generator(cfg, "G_generator")
            self.generator_ema = build_generator(cfg, "G_ema")
            self.generator_ema.set_weights(self.generator.get_weights())
            self.discriminator = build_discriminator(cfg)

    def build(self):
        self.build_networks()
        self.build_optimizers()

    def build_optimizers(self):
        """The G and D Adams (for networks already built, e.g. by the converter)."""
        optim, loss = self.config.optim, self.config.loss
        # Loss scaling under mixed_float16 (tfcoord.training.precision).
        def adam(interval):
            return loss_scaled(lazy_regularization_adam(optim.lr, optim.beta_1, optim.beta_2, optim.epsilon,
                                                        interval, optim.reg_ratio_adjustment), self.precision)

        self.g_optimizer, self.d_optimizer = adam(loss.g_reg_every), adam(loss.r1_every)
        # Building optimizers eagerly inside the strategy scope avoids P16.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def checkpoint_items(self):
        return dict(self.network_items(), g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer)

    def network_items(self):
        return dict(generator=self.generator, generator_ema=self.generator_ema, discriminator=self.discriminator)

    # -- training --------------------------------------------------------------------
    def step_variant(self, step):
        loss = self.config.loss
        # Official: d_regularize = i % d_reg_every == 0 with i counted from 0 (trainer steps count from 1).
        return R1_VARIANT if loss.r1_gamma > 0 and (step - 1) % loss.r1_every == 0 else None

    def step_inputs(self, step, global_batch_size):
        cfg = self.config
        model = cfg.model
        seeds = step_seed(cfg.train.seed, step, 6)
        batch, side = global_batch_size, model.training_size
        inputs = {
            "z_d": tf.random.stateless_normal([batch, model.style_dim], seeds[0]),
            "z_g": tf.random.stateless_normal([batch, model.style_dim], seeds[1]),
            "flip": tf.random.stateless_uniform([batch], seeds[2]) < (0.5 if cfg.data.flip else 0.0),
        }
        if model.train_noise == "random":
            layers = self._num_noise_layers()
            inputs["noise_d"] = tf.random.stateless_normal([batch, side, side, layers], seeds[3])
            inputs["noise_g"] = tf.random.stateless_normal([batch, side, side, layers], seeds[4])
        if model.crop:
            top, left, stride = crop_offsets(seeds[5], batch, model.size, model.crop, model.num_scales)
        else:
            top = left = tf.zeros([batch], tf.int32)
            stride = tf.ones([batch], tf.int32)
        inputs.update(crop_top=top, crop_left=left, crop_stride=stride)
        return inputs

    def _num_noise_layers(self):
        if self.generator is not None:
            return self.generator.num_noise_layers
        stages = int(math.log2(self.config.model.size)) - 1
        return 1 + 2 * stages

    def training_pixels(self, images, batch):
        """Flip, then the step's crop of the real images and the coordinates of its pixels.

        Returns (real (B, P, P, 3), coords (B, P, P, coord_dim)); the coordinates are those
        of the full ``size`` grid at the cropped rows and columns, so G gets exactly them.
        """
        model = self.config.model
        flipped = ops.flip(images, axis=2)
        images = ops.where(ops.reshape(batch["flip"], (-1, 1, 1, 1)), flipped, images)
        real, rows, cols = strided_crop(images, batch["crop_top"], batch["crop_left"], model.training_size,
                                        batch["crop_stride"])
        ys = ops.expand_dims(linear_position(rows, model.size), 2)  # (B, P, 1): the full grid's rows
        if model.coordinate_system == "cylindrical":
            theta = ops.expand_dims(cylinder_angle(cols, model.size), 1)
            coords = cylindrical(ys * ops.ones_like(theta), theta * ops.ones_like(ys))
        else:
            xs = ops.expand_dims(linear_position(cols, model.size), 1)
            coords = ops.stack([xs * ops.ones_like(ys), ys * ops.ones_like(xs)], axis=-1)
        return real, coords

    def _discriminate(self, images, coords):
        """D's logits (B,) in float32 (the losses' dtype whatever the precision)."""
        logits, _ = self.discriminator(self._d_input(images, coords), training=True)
        return to_float32(logits)

    def _d_input(self, images, coords):
        if self.config.model.d_input == "rgb_coords":
            return ops.concatenate([images, coords], axis=-1)
        return images

    def train_step(self, batch, global_batch_size, variant=None):
        loss_cfg = self.config.loss
        real, coords = self.training_pixels(batch["image"], batch)
        real_in = self._d_input(real, coords)
        noise_d, noise_g = batch.get("noise_d"), batch.get("noise_g")
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables

        with tf.GradientTape() as d_tape:
            fake = self.generator(batch["z_d"], coords, noise=noise_d, training=True)
            d_fake = self._discriminate(fake, coords)
            d_real = to_float32(self.discriminator(real_in, training=True)[0])
            d_loss = average(logistic_discriminator_loss(d_real, d_fake), global_batch_size)
        minimize(self.d_optimizer, d_tape, d_loss, d_variables)
        losses = {"d_loss": d_loss, "real_score": average(d_real, global_batch_size),
                  "fake_score": average(d_fake, global_batch_size)}

        if variant == R1_VARIANT:  # lazy R1: a separate D update (official train.py)
            with tf.GradientTape() as r1_tape:
                with tf.GradientTape() as input_tape:
                    input_tape.watch(real_in)
                    d_real = to_float32(self.discriminator(real_in, training=True)[0])
                    d_real_sum = ops.sum(d_real)  # official autograd.grad(real_pred.sum(), real_img)
                gradient = input_gradient(input_tape, d_real_sum, real_in, self.d_optimizer)
                penalty = r1_penalty(gradient)
                # "+ 0 * real_pred" as in the official code: every D weight gets a (zero) gradient, so
                # Adam steps all of them, as PyTorch's d_optim.step() does.
                r1_loss = average(0.5 * loss_cfg.r1_gamma * loss_cfg.r1_every * penalty + 0.0 * d_real,
                                  global_batch_size)
            minimize(self.d_optimizer, r1_tape, r1_loss, d_variables)
            losses["r1"] = average(penalty, global_batch_size)

        with tf.GradientTape() as g_tape:
            fake = self.generator(batch["z_g"], coords, noise=noise_g, training=True)
            d_fake = self._discriminate(fake, coords)
            g_loss = average(nonsaturating_generator_loss(d_fake), global_batch_size)
        minimize(self.g_optimizer, g_tape, g_loss, g_variables)
        losses["g_loss"] = g_loss
        return losses

    def after_step(self):
        """G EMA ``e <- decay e + (1 - decay) v`` in cross-replica context (tensorflow.md §8.2)."""
        ema_step(self.generator_ema, self.generator, self.config.loss.ema_decay)

    # -- generation ------------------------------------------------------------------
    def latents(self, seed: int, num: int) -> np.ndarray:
        """z ~ N(0, I) for ``num`` images, deterministic for ``seed``."""
        return np.random.default_rng(seed).standard_normal((num, self.config.model.style_dim)).astype("float32")

    def mean_style(self, num: int = 4096, seed: int = 2**20) -> np.ndarray:
        """w-bar, the mean of ``num`` mapped latents (the truncation centre; the official notebook uses 100)."""
        key = (num, seed)
        if key not in self._mean_styles:
            z = self.latents(seed, num)
            self._mean_styles[key] = np.mean(np.asarray(self._map(tf.constant(z))), axis=0, keepdims=True)
        return self._mean_styles[key]

    def styles(self, z, truncation: float = 1.0, mean_style=None) -> np.ndarray:
        """Styles w (B, style_dim) of latents z, with the truncation trick ``w-bar + psi (w - w-bar)``.

        ``model.truncate_space="z"`` reproduces quirk C2, the official forward without
        ``input_is_latent``: ``z' = w-bar + psi (z - w-bar)``, then mapped.
        """
        z = np.asarray(z, "float32")
        if z.ndim != 2 or z.shape[1] != self.config.model.style_dim:
            raise UserError(f"latents must have shape (batch, {self.config.model.style_dim}), got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise UserError("latents must be finite (found NaN or infinity)")
        if truncation >= 1.0:
            return np.asarray(self._map(tf.constant(z)))
        centre = self.mean_style() if mean_style is None else np.asarray(mean_style, "float32")
        if self.config.model.truncate_space == "z":
            return np.asarray(self._map(tf.constant(centre + truncation * (z - centre))))
        w = np.asarray(self._map(tf.constant(z)))
        return (centre + truncation * (w - centre)).astype("float32")

    @functools.cached_property
    def _map(self):
        return tf.function(lambda z: to_float32(self.generator_ema.map(z)), reduce_retracing=True)

    def _synthesis_function(self, rank: int, per_pixel: bool, with_noise: bool, xla: bool = False):
        """A tf.function per input structure: shapes vary freely, ranks never (no unknown-rank traces).

        ``xla``: compiled with XLA (one compilation per input shape; the canvas engine's tiles
        have few distinct shapes)."""
        key = (rank, per_pixel, with_noise, xla)
        if key not in self._synthesis_functions:
            generator = self.generator_ema

            def synthesize(style, coords, noise=None):
                return generator.synthesize(style, coords, noise=noise, training=False)

            self._synthesis_functions[key] = tf.function(synthesize, reduce_retracing=True,
                                                         jit_compile=True if xla else None)
        return self._synthesis_functions[key]

    def check_coords(self, coords, what="coords"):
        """Validate a coordinate array for generation; returns it as float32 (B, ..., C)."""
        coords = np.asarray(coords)
        dim = self.config.model.coord_dim
        if coords.ndim not in (3, 4):
            raise UserError(f"{what} must have shape (batch, height, width, {dim}) or (batch, points, {dim}), "
                            f"got rank {coords.ndim} {coords.shape}")
        if coords.shape[-1] != dim:
            system = "(y, cos, sin) for a cylindrical model" if dim == 3 else "(x, y)"
            raise UserError(f"{what} must have {dim} channels {system} in the last axis, got {coords.shape[-1]}")
        if not np.issubdtype(coords.dtype, np.number):
            raise UserError(f"{what} must be numeric, got dtype {coords.dtype}")
        pixels = int(np.prod(coords.shape[1:-1]))
        if pixels > MAX_OUTPUT_PIXELS or max(coords.shape[1:-1]) > MAX_OUTPUT_SIDE:
            raise UserError(f"{what} asks for {coords.shape[1:-1]} = {pixels} pixels per image; the limit is "
                            f"{MAX_OUTPUT_PIXELS} pixels (4096x4096) and {MAX_OUTPUT_SIDE} per side; "
                            "render larger images tile by tile (python -m tfcoord.generate --width W --height H)")
        if not np.all(np.isfinite(coords)):
            raise UserError(f"{what} must be finite (found NaN or infinity)")
        return coords.astype("float32")

    def check_style(self, style, coords):
        """Validate a per-image (B, S) style or a per-pixel style field (B, ..., S) matching ``coords``."""
        style = np.asarray(style)
        s = self.config.model.style_dim
        if style.ndim == 2:
            if style.shape[1] != s:
                raise UserError(f"style must have {s} channels, got shape {style.shape}")
        elif style.shape[:-1] != coords.shape[:-1] or style.shape[-1] != s:
            raise UserError(f"a style field must have shape {coords.shape[:-1] + (s,)} (the coordinates' batch and "
                            f"grid plus {s} style channels), got {style.shape}")
        if style.shape[0] != coords.shape[0]:
            raise UserError(f"style batch {style.shape[0]} does not match the coordinates' batch {coords.shape[0]}")
        if not np.all(np.isfinite(style)):
            raise UserError("style must be finite (found NaN or infinity)")
        return style.astype("float32")

    def render(self, style, coords, noise=None, pixels_per_call: int = DEFAULT_PIXELS_PER_CALL,
               xla: bool = False) -> np.ndarray:
        """RGB of G_ema at arbitrary coordinates (eval mode), at most ``pixels_per_call`` pixels per call.

        Args:
            style: (B, S) per image, or a per-pixel style field with the coordinates' leading shape.
            coords: (B, H, W, C) grid or (B, N, C) point set (C = model.coord_dim).
            noise: ``None`` (no per-pixel noise: deterministic, tileable) or an explicit array
                (B, ..., L) with L = ``generator_ema.num_noise_layers``.
            pixels_per_call: the most pixels per network call (bounds memory).
            xla: run the synthesis network compiled with XLA.

        Calls take whole images (several when they are small) or row bands / point ranges of
        one image: since each pixel depends only on its coordinate and style, the result does
        not depend on the chunking, and memory stays bounded for any batch and size.
        """
        coords = self.check_coords(coords)
        style = self.check_style(style, coords)
        if noise is not None:
            noise = np.asarray(noise, "float32")
            layers = self.generator_ema.num_noise_layers
            if noise.shape != coords.shape[:-1] + (layers,):
                raise UserError(f"noise must have shape {coords.shape[:-1] + (layers,)}, got {noise.shape}")
        per_pixel = style.ndim > 2
        batch, axis_len = coords.shape[0], coords.shape[1]
        row_pixels = coords.shape[2] if coords.ndim == 4 else 1
        image_pixels = axis_len * row_pixels
        if image_pixels <= pixels_per_call:  # whole images, several per call
            batch_step, row_step = max(1, pixels_per_call // image_pixels), axis_len
        else:  # bands of rows (or runs of points) of one image per call
            batch_step, row_step = 1, max(1, pixels_per_call // row_pixels)
        synthesize = self._synthesis_function(coords.ndim, per_pixel, noise is not None, xla)
        out = np.empty(coords.shape[:-1] + (3,), "float32")
        for b in range(0, batch, batch_step):
            images = slice(b, b + batch_step)
            for start in range(0, axis_len, row_step):
                part = (images, slice(start, start + row_step))
                s = style[part] if per_pixel else style[images]
                args = [tf.constant(s), tf.constant(coords[part])]
                if noise is not None:
                    args.append(tf.constant(noise[part]))
                out[part] = np.asarray(synthesize(*args))
        return out

    def random_noise(self, seed: int, leading_shape) -> np.ndarray:
        """Per-pixel N(0, 1) noise for every StyledConv (the official "random" mode, reproducible by seed)."""
        shape = tuple(leading_shape) + (self.generator_ema.num_noise_layers,)
        return np.random.default_rng(seed).standard_normal(shape).astype("float32")

    def grid(self, height: int, width: int, top: int = 0, left: int = 0, full_height: int | None = None,
             full_width: int | None = None) -> np.ndarray:
        """Coordinates (H, W, C) of the tile at (top, left) of a ``full_height x full_width`` image.

        Euclidean: (x, y) on ``linspace(-1, 1, n)``; a denser full grid than ``model.size`` is
        super-resolution. Cylindrical: (y, cos, sin) of a horizontally cyclic panorama.
        """
        from tfcoord.coords import cips_cylinder_coords

        full_height = full_height or height
        full_width = full_width or width
        for name, value in (("height", height), ("width", width)):
            if not 1 <= value <= MAX_OUTPUT_SIDE:
                raise UserError(f"{name} must be between 1 and {MAX_OUTPUT_SIDE} pixels, got {value}")
        if min(full_height, full_width) < 1:
            raise UserError(f"the full image must be at least 1x1 pixels, got {full_height}x{full_width}")
        if self.config.model.coordinate_system == "cylindrical":
            return cips_cylinder_coords(top, left, height, width, full_height, full_width)
        return cips_tile_coords(top, left, height, width, full_height, full_width)

    def generate(self, z, height: int | None = None, width: int | None = None, truncation: float = 1.0,
                 noise: str = "none", noise_seed: int = 0) -> np.ndarray:
        """Whole images (B, H, W, 3) from latents at any size (default: the training size)."""
        size = self.config.model.size
        height, width = height or size, width or size
        coords = np.broadcast_to(self.grid(height, width), (len(z), height, width, self.config.model.coord_dim))
        noise_maps = self.random_noise(noise_seed, coords.shape[:-1]) if noise == "random" else None
        return self.render(self.styles(z, truncation), coords, noise=noise_maps)

    def sample_images(self, seed, num):
        return np.clip(self.generate(self.latents(seed, num)), -1.0, 1.0)

    # -- canvas and export ------------------------------------------------------------
    def canvas_renderer(self, width, height, seed, panorama=False, checkpoint="", xla=False):
        """This model on the canvas engine (see :mod:`tfcoord.models.cips.canvas`)."""
        from tfcoord.models.cips.canvas import CipsCanvas

        return CipsCanvas(self, width, height, seed, panorama=panorama, checkpoint=checkpoint, xla=xla)

    def serving_functions(self, patch_size=None):
        """``generate_patch(z, coords)``, ``map_latent(z)`` and ``synthesize(style, coords)`` (tensorflow.md §12).

        ``coords`` is (batch, h, w, C) with dynamic h, w (or P x P with ``patch_size``);
        C = 2 (x, y) or 3 (y, cos, sin) for cylindrical models. No noise (tiles stay
        seamless), no truncation (apply it to ``style`` before ``synthesize``). Non-finite
        inputs are refused with InvalidArgumentError.
        """
        g = self.generator_ema
        s, c = self.config.model.style_dim, self.config.model.coord_dim
        if patch_size is not None and not 1 <= int(patch_size) <= MAX_OUTPUT_SIDE:
            raise UserError(f"patch size must be between 1 and {MAX_OUTPUT_SIDE}, got {patch_size}")
        side = None if patch_size is None else int(patch_size)
        z_spec = tf.TensorSpec([None, s], tf.float32, name="z")
        style_spec = tf.TensorSpec([None, s], tf.float32, name="style")
        coords_spec = tf.TensorSpec([None, side, side, c], tf.float32, name="coords")

        def same_batch(a, b):
            return tf.debugging.assert_equal(tf.shape(a)[0], tf.shape(b)[0],
                                             message="the latent/style and coords must have the same batch size")

        @tf.function(input_signature=[z_spec, coords_spec])
        def generate_patch(z, coords):
            z, coords = finite_input(z, "z"), finite_input(coords, "coords")
            with tf.control_dependencies([same_batch(z, coords)]):
                return {"rgb": g.synthesize(g.map(z), coords, training=False)}

        @tf.function(input_signature=[z_spec])
        def map_latent(z):
            return {"style": to_float32(g.map(finite_input(z, "z")))}  # float32 under any --precision

        @tf.function(input_signature=[style_spec, coords_spec])
        def synthesize(style, coords):
            style, coords = finite_input(style, "style"), finite_input(coords, "coords")
            with tf.control_dependencies([same_batch(style, coords)]):
                return {"rgb": g.synthesize(style, coords, training=False)}

        return {"generate_patch": generate_patch, "map_latent": map_latent, "synthesize": synthesize}

    def serving_tile(self) -> int:
        """The tile side the serving description proposes (64, or the training size if smaller)."""
        return min(64, self.config.model.size)

    def serving_description(self):
        cfg = self.config.model
        cylindrical = cfg.coordinate_system == "cylindrical"
        tile = self.serving_tile()
        native = -(-cfg.size // tile)
        if cylindrical:
            formula = (f"coords[r, c] = [y, cos(pi*t), sin(pi*t)] with y = -1 + 2*(i*{tile} + r)/({cfg.size} - 1) "
                       f"and t = -1 + 2*(j*{tile} + c)/{cfg.size} (columns wrap: t is periodic)")
        else:
            formula = (f"coords[r, c] = [x, y] with x = -1 + 2*(j*{tile} + c)/({cfg.size} - 1) and "
                       f"y = -1 + 2*(i*{tile} + r)/({cfg.size} - 1)")
        recipe = (f"Tile (i, j) is the {tile}x{tile} block at pixel rows i*{tile}.. and columns j*{tile}.. of the "
                  f"{cfg.size}x{cfg.size} training grid; {formula} for its row r and column c (tfcoord.coords."
                  "cips_tile_coords). Indices outside the trained grid extrapolate with the same spacing; a denser "
                  "grid (super-resolution) replaces the size in the formula by the output size. Every tile of one "
                  f"image uses the same z ~ N(0, I)^{cfg.style_dim} (or map_latent(z) once and synthesize per tile). "
                  "Pixels are conditionally independent: any tile size gives the same image.")
        return {
            "model_type": "cips",
            "paper": "Image Generators with Conditionally-Independent Pixel Synthesis (Anokhin et al., CVPR 2021)",
            "architecture": f"CIPS{cfg.architecture}",
            "training_size": cfg.size,
            "style_dim": cfg.style_dim,
            "coordinate_system": cfg.coordinate_system,
            "signatures": {
                "generate_patch": {"doc": "G(z, coords) in eval mode without noise: rgb (batch, h, w, 3)"},
                "map_latent": {"doc": "the mapping network: z -> style w (batch, style_dim)"},
                "synthesize": {"doc": "rgb from a style w (e.g. truncated) and coords"},
            },
            "output": {"name": "rgb", "range": [-1.0, 1.0]},
            "tiling": {
                "signature": "generate_patch",
                "tile_size": [tile, tile],
                "native_tiles": [native, native],
                "anchor": ["center", "start" if cylindrical else "center"],
                "inputs": {
                    "z": {"source": "latent", "shape": [cfg.style_dim], "distribution": "normal"},
                    "coords": {"source": "tile_coordinates", "system": "cips",
                               "coordinate_system": cfg.coordinate_system, "grid_height": cfg.size,
                               "grid_width": cfg.size},
                },
                "recipe": recipe,
            },
        }


