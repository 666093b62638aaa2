"""COCO-GAN's training step (models.md §1.7-1.8, the official ``trainer.py``).

Per batch element a macro position is drawn; G emits the N x N micro patches of that macro
patch from the *same* z and their micro coordinates; the merge function phi assembles them; D
judges the macro patch against the real macro patch psi(x, c') cut at the same position and
regresses its coordinate with head A. Losses: WGAN-GP (lambda = 10) + spatial consistency
(alpha = 100), TTUR Adam; optionally head Q's content loss and the extrapolation fine-tuning.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tfcoord.coords import crop_patches, merge_patches
from tfcoord.gan.distribute import average
from tfcoord.gan.ema import ema_step
from tfcoord.gan.losses import wasserstein_discriminator_loss, wasserstein_generator_loss, wasserstein_gradient_penalty
from tfcoord.layers.spectral_norm import power_iteration, spectral_norm_layers
from tfcoord.models.base import step_seed
from tfcoord.training.precision import input_gradient, loss_scaled, minimize, scaled_gradients, to_float32

# Official extrapolation fine-tuning: the fake coordinate loss of macro coordinates
# beyond this bound is not back-propagated (A is tanh-bounded and cannot reach them).
EXTRAPOLATION_BOUND = 1.0 + 1e-4
# Blocks of G the extrapolation optimizer may change (official fine-tuning recipe).
EXTRAPOLATION_G_BLOCKS = ("g_resblock_0", "g_resblock_1")


def spatial_loss(predicted, target, kind: str, trained=None):
    """Per-example spatial consistency loss L_S: mean squared error (official) or L2 distance. ``trained``: (B,)
    bool, the examples whose loss is back-propagated (the others' is only logged); None: all."""
    predicted = to_float32(predicted)  # the loss in float32 whatever the dtype policy (train.precision)
    target = ops.cast(target, predicted.dtype)
    if kind == "l2_norm":
        loss = ops.sqrt(ops.sum(ops.square(predicted - target), axis=-1) + 1e-12)
    else:
        loss = ops.mean(ops.square(predicted - target), axis=-1)
    return loss if trained is None else ops.where(trained, loss, ops.stop_gradient(loss))


def advance_spectral_norms(*networks):
    """Store one power iteration in every spectral norm of ``networks``: ``u <- u'(W, u)``.

    The official graph runs these assignments once per step, as control dependencies of
    the optimizer, from the weights and ``u`` the step's forward passes read.
    """
    for network in networks:
        for layer in spectral_norm_layers(network):
            kernel_matrix = ops.reshape(layer.kernel, (-1, layer.kernel.shape[-1]))
            layer.u.assign(power_iteration(kernel_matrix, layer.u)[1])


def roll_columns(images, shifts):
    """Roll each panorama horizontally by its own shift (360 degree augmentation)."""
    width = ops.shape(images)[2]
    columns = (ops.expand_dims(ops.arange(width, dtype="int32"), 0) + ops.expand_dims(shifts, -1)) % width
    return ops.take_along_axis(images, ops.expand_dims(ops.expand_dims(columns, 1), -1), axis=2)


class CocoGanTraining:
    """The trainer's side of :class:`~tfcoord.models.cocogan.model.CocoGan` (mixed in): optimizers, step
    inputs and the step itself, on the model's ``config``, ``geometry`` and networks."""

    def build_optimizers(self):
        """The Adam optimizers, built for the networks' variables (after a conversion, too)."""
        optim = self.config.optim

        def adam(lr, variables):  # loss-scaled under mixed_float16 (tfcoord.training.precision)
            optimizer = loss_scaled(keras.optimizers.Adam(lr, beta_1=optim.beta_1, beta_2=optim.beta_2,
                                                          epsilon=optim.epsilon), self.precision)
            optimizer.build(variables)  # eagerly, inside the strategy scope: avoids P16
            return optimizer

        self.g_optimizer = adam(optim.lr_g, self.g_variables())
        self.d_optimizer = adam(optim.lr_d, self.d_variables())
        self.q_optimizer = None
        if self.content_head is not None:
            self.q_optimizer = adam(optim.lr_q, self.content_head.trainable_variables)
        self.extrapolation_optimizers = None
        if self.config.loss.extrapolation_steps:
            self.extrapolation_optimizers = (adam(optim.lr_g, self.extrapolation_g_variables()),
                                             adam(optim.lr_d, self.d_variables()))

    def g_variables(self):
        variables = list(self.generator.trainable_variables)
        if self.config.loss.spatial_head_optimizers == "both":  # quirk Q4
            variables += self.spatial_head.trainable_variables
        return variables

    def d_variables(self):
        return list(self.discriminator.trainable_variables) + list(self.spatial_head.trainable_variables)

    def extrapolation_g_variables(self):
        blocks = [b for b in self.generator.blocks if b.name in EXTRAPOLATION_G_BLOCKS]
        return [v for block in blocks for v in block.trainable_variables]

    def after_step(self):
        """G EMA (``optim.g_ema_decay``) in cross-replica context, after G's update: every weight, the spectral-norm
        vectors and batch-norm statistics included, with the warm-up of tf.train.ExponentialMovingAverage."""
        ema_step(self.generator_ema, self.generator, self.config.optim.g_ema_decay,
                 warmup_step=self.g_optimizer.iterations)

    def step_inputs(self, step, global_batch_size):
        cfg = self.config
        seeds = step_seed(cfg.train.seed, step, 6)
        batch = global_batch_size
        size = cfg.model.macro_size
        inputs = {
            "z": tf.random.stateless_uniform([batch, cfg.model.z_dim], seeds[0], -1.0, 1.0),
            "macro_row": tf.random.stateless_uniform([batch], seeds[1], 0, self.geometry.macro_rows(), tf.int32),
            "macro_col": tf.random.stateless_uniform([batch], seeds[2], 0, self.geometry.macro_cols(), tf.int32),
        }
        alpha_shape = [batch, size, size, 3] if cfg.loss.gp_alpha == "per_element" else [batch, 1, 1, 1]
        inputs["gp_alpha"] = tf.random.stateless_uniform(alpha_shape, seeds[3])
        if self.geometry.system == "cylindrical":
            # Real panoramas are augmented by a random horizontal roll (official loader).
            inputs["roll"] = tf.random.stateless_uniform([batch], seeds[4], 0, self.geometry.full_width, tf.int32)
        steps = cfg.loss.extrapolation_steps
        if steps:
            rows, cols = self.geometry.macro_rows(steps), self.geometry.macro_cols(steps)
            extrap_seeds = tf.random.experimental.stateless_split(seeds[5], 2)
            shift = 0 if self.geometry.system == "cylindrical" else steps
            inputs["extrapolation_row"] = tf.random.stateless_uniform([batch], extrap_seeds[0], 0, rows, tf.int32) - steps
            inputs["extrapolation_col"] = tf.random.stateless_uniform([batch], extrap_seeds[1], 0, cols, tf.int32) - shift
        return inputs

    def generate_macro_patches(self, z, macro_row, macro_col, training, update_state=True):
        """phi(G(z, C'')): the macro patches whose top-left micro indices are (row, col)."""
        n = self.geometry.micro_per_macro
        micro_coords = ops.reshape(self.geometry.micro_coords_of_macro(macro_row, macro_col),
                                   (-1, self.geometry.coord_dim))
        z_per_patch = ops.repeat(z, n * n, axis=0)  # one z for all micro patches of a macro patch
        generator = self.generator if training else self.sampling_generator
        patches = generator([z_per_patch, micro_coords], training=training, update_state=update_state)
        return merge_patches(patches, n, n)

    def real_macro_patches(self, images, macro_row, macro_col):
        """psi(x, c'): the real macro patches at the same positions."""
        top, left = self.geometry.macro_pixel_offset(macro_row, macro_col)
        return crop_patches(images, top, left, self.config.model.macro_size,
                            wrap_columns=self.geometry.system == "cylindrical")

    # Which step moves which network state (the official update collections, trainer.py):
    # G's u and CBN recorders in the G step; D's u in the D step; A's u in the D step (and
    # the G step when A is in both optimizers, Q4); Q's u in the Q step. Each is advanced
    # once per step from the state the step started with, so every call of a step (real,
    # fake, gradient-penalty interpolates) divides by the same sigma. The plain BNs move
    # their averages on every training call, as tf.contrib's in-place updates do.

    def _discriminate(self, images, coords, **kwargs):
        """D's (logits in float32, features): losses take float32 whatever the precision (train.precision)."""
        logits, features = self.discriminator(images, coords, **kwargs)
        return to_float32(logits), features

    def _spatial_predictions(self, h_real, h_fake, update_u):
        """A on real and fake features in one call (one BN group each, one state update)."""
        predicted = self.spatial_head(ops.concatenate([h_real, h_fake], axis=0), training=True,
                                      update_u=update_u, groups=2)
        return ops.split(predicted, 2, axis=0)

    def _content_loss(self, z, h_fake, update_u):
        """Per-example L_Q = mean |z - Q(h)| of fake features (code_loss before its weight)."""
        predicted = to_float32(self.content_head(h_fake, training=True, update_u=update_u))
        return ops.mean(ops.abs(z - predicted), axis=-1)

    def _uses_content(self):
        return self.content_head is not None and self.config.loss.content_weight > 0

    def _critic_step(self, real, real_coords, fake_args, z, gp_alpha, global_batch_size, optimizer,
                     fake_spatial_mask=None):
        """One D (and A) update on WGAN-GP + spatial (+ content) losses; returns the loss terms.

        ``optimizer``: D's, whose loss scale (mixed_float16) also scales the penalty's input gradient.
        """
        loss_cfg = self.config.loss
        fake_row, fake_col, fake_coords = fake_args
        with tf.GradientTape() as tape:
            fake = self.generate_macro_patches(z, fake_row, fake_col, training=True, update_state=False)
            d_real, h_real = self._discriminate(real, real_coords, training=True, update_u=False)
            d_fake, h_fake = self._discriminate(fake, fake_coords, training=True, update_u=False)
            mixed = gp_alpha * fake + (1.0 - gp_alpha) * real
            with tf.GradientTape() as gp_tape:
                gp_tape.watch(mixed)
                d_mixed, _ = self._discriminate(mixed, None, training=True, update_u=False)  # quirk Q3
            penalty = wasserstein_gradient_penalty(input_gradient(gp_tape, d_mixed, mixed, optimizer),
                                                   loss_cfg.gp_norm)
            predicted_real, predicted_fake = self._spatial_predictions(h_real, h_fake, update_u=False)
            spatial_real = spatial_loss(predicted_real, real_coords, loss_cfg.spatial_loss)
            spatial_fake = spatial_loss(predicted_fake, fake_coords, loss_cfg.spatial_loss, fake_spatial_mask)
            per_example = (wasserstein_discriminator_loss(d_real, d_fake) + loss_cfg.gp_weight * penalty
                           + loss_cfg.spatial_weight * (spatial_real + spatial_fake))
            terms = {"wasserstein": average(d_real - d_fake, global_batch_size),
                     "gradient_penalty": average(penalty, global_batch_size),
                     "spatial_real": average(spatial_real, global_batch_size),
                     "spatial_fake": average(spatial_fake, global_batch_size)}
            if self._uses_content():
                content = self._content_loss(z, h_fake, update_u=False)
                per_example += loss_cfg.content_weight * content
                terms["content"] = average(content, global_batch_size)
            d_loss = average(per_example, global_batch_size)
        variables = self.d_variables()
        gradients = scaled_gradients(tape, d_loss, variables, optimizer)
        advance_spectral_norms(self.discriminator, self.spatial_head)
        optimizer.apply_gradients(zip(gradients, variables))
        return {"d_loss": d_loss, **terms}

    def _generator_step(self, real, real_coords, fake_args, z, global_batch_size, optimizer, variables,
                        fake_spatial_mask=None):
        """One G update on the non-saturating WGAN + spatial (+ content) losses."""
        loss_cfg = self.config.loss
        fake_row, fake_col, fake_coords = fake_args
        spatial_head_in_g = loss_cfg.spatial_head_optimizers == "both"  # quirk Q4
        with tf.GradientTape() as tape:
            fake = self.generate_macro_patches(z, fake_row, fake_col, training=True)
            d_fake, h_fake = self._discriminate(fake, fake_coords, training=True, update_u=False)
            terms = {}
            if spatial_head_in_g:
                # The official g_loss holds the whole coordinate loss; the real term only trains A.
                _, h_real = self._discriminate(real, real_coords, training=True, update_u=False)
                predicted_real, predicted_fake = self._spatial_predictions(h_real, h_fake, update_u=True)
                spatial_real = spatial_loss(predicted_real, real_coords, loss_cfg.spatial_loss)
                terms["g_spatial_real"] = average(spatial_real, global_batch_size)
            else:
                predicted_fake = self.spatial_head(h_fake, training=True, update_u=False)
                spatial_real = 0.0
            spatial_fake = spatial_loss(predicted_fake, fake_coords, loss_cfg.spatial_loss, fake_spatial_mask)
            adversarial = wasserstein_generator_loss(d_fake)
            per_example = adversarial + loss_cfg.spatial_weight * (spatial_real + spatial_fake)
            if self._uses_content():
                content = self._content_loss(z, h_fake, update_u=False)
                per_example += loss_cfg.content_weight * content
                terms["g_content"] = average(content, global_batch_size)
            g_loss = average(per_example, global_batch_size)
        minimize(optimizer, tape, g_loss, variables)
        return {"g_loss": g_loss, "g_adversarial": average(adversarial, global_batch_size),
                "g_spatial_fake": average(spatial_fake, global_batch_size), **terms}

    def _content_step(self, fake_args, z, global_batch_size):
        """One Q update on the content loss, after the G step (official order: D, G, then Q)."""
        fake_row, fake_col, fake_coords = fake_args
        fake = self.generate_macro_patches(z, fake_row, fake_col, training=True, update_state=False)
        d_fake, h_fake = self._discriminate(fake, fake_coords, training=True, update_u=False)
        with tf.GradientTape() as tape:
            q_loss = average(self.config.loss.content_weight * self._content_loss(z, h_fake, update_u=True),
                             global_batch_size)
        minimize(self.q_optimizer, tape, q_loss, self.content_head.trainable_variables)
        # The official q_loss also adds G's adversarial loss (no gradient reaches Q through it).
        return {"q_loss": q_loss, "q_adversarial": average(-d_fake, global_batch_size)}

    def _adversarial_step(self, real_images, z, gp_alpha, real_row, real_col, fake_row, fake_col,
                          global_batch_size, g_optimizer, d_optimizer, g_variables, fake_spatial_mask=None):
        """One D update followed by one G update reusing z and coordinates (official loop)."""
        real = self.real_macro_patches(real_images, real_row, real_col)
        real_coords = self.geometry.macro_coords(real_row, real_col)
        fake_args = (fake_row, fake_col, self.geometry.macro_coords(fake_row, fake_col))
        losses = self._critic_step(real, real_coords, fake_args, z, gp_alpha, global_batch_size, d_optimizer,
                                   fake_spatial_mask)
        losses.update(self._generator_step(real, real_coords, fake_args, z, global_batch_size, g_optimizer,
                                           g_variables, fake_spatial_mask))
        return losses, fake_args

    def train_step(self, batch, global_batch_size):
        images = batch["image"]
        if self.geometry.system == "cylindrical":
            images = roll_columns(images, batch["roll"])
        losses, fake_args = self._adversarial_step(
            images, batch["z"], batch["gp_alpha"], batch["macro_row"], batch["macro_col"],
            batch["macro_row"], batch["macro_col"], global_batch_size,
            self.g_optimizer, self.d_optimizer, self.g_variables())
        if self._uses_content():
            losses.update(self._content_step(fake_args, batch["z"], global_batch_size))
        if self.extrapolation_optimizers is not None:
            fake_row, fake_col = batch["extrapolation_row"], batch["extrapolation_col"]
            coords = self.geometry.macro_coords(fake_row, fake_col)
            inside = ops.all(ops.abs(coords) <= EXTRAPOLATION_BOUND, axis=-1)
            extrapolation, _ = self._adversarial_step(
                images, batch["z"], batch["gp_alpha"], batch["macro_row"], batch["macro_col"],
                fake_row, fake_col, global_batch_size, *self.extrapolation_optimizers,
                self.extrapolation_g_variables(), fake_spatial_mask=inside)
            losses.update({f"extrapolation/{k}": v for k, v in extrapolation.items()})
        return losses
