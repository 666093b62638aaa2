"""CIPS's training step (models.md §2.6), as the official ``train.py`` runs it.

Non-saturating logistic GAN loss, lazy R1 (gamma 10 every 16 steps, a separate D update as
in the official code, selected through :meth:`CipsTraining.step_variant`), Adam (lr 0.002,
betas (0, 0.99)) adjusted by the lazy-regularisation ratio, horizontal flips, a G EMA updated
after every step, and optionally the official multi-scale patch training (``model.crop``): G
evaluates exactly the P x P coordinates of a (strided) crop and D judges the matching P x P
crop of the real image, so a 256 model trains with the memory of a P patch.
"""

from __future__ import annotations

import math

import tensorflow as tf
from keras import ops

from tfcoord.coords import cylinder_angle, cylindrical, linear_position
from tfcoord.gan.distribute import average
from tfcoord.gan.ema import ema_step
from tfcoord.gan.losses import logistic_discriminator_loss, nonsaturating_generator_loss
from tfcoord.gan.optimizers import lazy_regularization_adam
from tfcoord.gan.regularizers import lazy_r1_loss, lazy_step_due, r1_penalty
from tfcoord.models.base import step_seed
from tfcoord.training.precision import input_gradient, loss_scaled, minimize, to_float32

R1_VARIANT = "r1"


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


class CipsTraining:
    """The trainer's side of :class:`~tfcoord.models.cips.model.Cips` (mixed in, as Keras mixes its
    ``Trainer`` into ``Model``): optimizers, step inputs and the step itself, on the model's
    ``config``, ``generator``, ``generator_ema`` and ``discriminator``."""

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

    def step_variant(self, step):
        loss = self.config.loss
        return R1_VARIANT if loss.r1_gamma > 0 and lazy_step_due(step, loss.r1_every) else None

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
                r1_loss = average(lazy_r1_loss(penalty, loss_cfg.r1_gamma, loss_cfg.r1_every) + 0.0 * d_real,
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
