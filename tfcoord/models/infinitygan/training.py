"""InfinityGAN's training step (models.md §4.7, official ``train.py``).

Real images are resized (128 then 197 for the paper) and cut into random 101 px patches whose
vertical position is D's auxiliary target; G generates 101 px patches from z_g (with style mixing),
a 35^2 local-latent window, the coordinates of a random jittered window of the 45 x 140 meta-grid
and random noise. Per step: one D update (logistic loss + vertical coordinate L1 on real and fake),
lazily an R1 update (gamma 10, every 16 steps, scaled by 16), one G update (non-saturating +
coordinate L1 + diversity), lazily a path-length update (weight 2, every 4 steps, half batch), then
the G EMA. The lazy updates are step variants (:meth:`InfinityGanTraining.step_variant`): the
trainer compiles one step per combination and picks it in Python.

Diversity pairs: :meth:`~InfinityGanTraining.step_inputs` draws every sample independently and each
generator pass makes sample 2k+1 take sample 2k's z_g and coordinates (the official
``setup_paired_inputs``), so every replica's batch must be even; the loss uses distances averaged
over the global batch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from keras import ops

from tfcoord.coords import crop_patches
from tfcoord.errors import UserError
from tfcoord.gan import regularizers
from tfcoord.gan.distribute import average, num_replicas, replica_sum
from tfcoord.gan.ema import ema_step
from tfcoord.gan.losses import logistic_discriminator_loss, nonsaturating_generator_loss
from tfcoord.gan.optimizers import lazy_regularization_adam
from tfcoord.models.base import step_seed
from tfcoord.training.precision import input_gradient, loss_scaled, minimize, to_float32

PASSES = ("d", "g", "path")  # generator forwards of one step, each with its own random inputs


class PassInputs(NamedTuple):
    """The random draws of one generator pass (B samples; the train step forms the diversity pairs)."""

    global_latent: tf.Tensor  # (B, 2, D) z_g; slot 1 differs only when the batch is style-mixed
    inject_index: tf.Tensor  # (B,) the style slot where z_g's second slot takes over
    local_latent: tf.Tensor  # (B, window, window, local_latent_dim) z_l
    coords: tf.Tensor  # (B, window, window, coord_dim) a jittered window of the meta-grid
    ac_targets: tf.Tensor  # (B, 3) that window's coordinate targets for D's auxiliary head
    noises: tuple  # per texture conv i: (B, size_i, size_i, 1)

    def every(self, stride: int) -> PassInputs:
        """Every ``stride``-th sample (the path-length pass)."""
        return tf.nest.map_structure(lambda value: value[::stride], self)


def coordinate_loss(predicted, target, vertical_only: bool):
    """Auxiliary coordinate loss per example: L1 on the vertical coordinate (or the mean over all)."""
    if vertical_only:
        return ops.abs(predicted[:, 0] - target[:, 0])
    return ops.mean(ops.abs(predicted - target), axis=-1)


class InfinityGanTraining:
    """The trainer's side of :class:`~tfcoord.models.infinitygan.model.InfinityGan` (mixed in): optimizers,
    step inputs and the step itself, on the model's ``config``, ``geometry``, ``coordinates``, ``generator``,
    ``generator_ema``, ``discriminator`` and ``coord_head``."""

    def build_optimizers(self):
        """Adam for G and D (StyleGAN2's lazy-regularisation ratios) and the path-length mean, for the
        networks that exist (built here or converted from an official checkpoint)."""
        optim, loss = self.config.optim, self.config.loss

        def adam(every):  # loss-scaled under mixed_float16 (tfcoord.training.precision)
            return loss_scaled(lazy_regularization_adam(optim.lr, optim.beta_1, optim.beta_2, optim.epsilon, every),
                               self.precision)

        self.g_optimizer, self.d_optimizer = adam(loss.path_every), adam(loss.r1_every)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.d_variables())
        # Running mean of the path lengths (identical on every replica: computed from all-reduced values).
        self.mean_path_length = tf.Variable(0.0, trainable=False, name="mean_path_length",
                                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def d_variables(self):
        head = list(self.coord_head.trainable_variables) if self.coord_head is not None else []
        return list(self.discriminator.trainable_variables) + head

    def step_variant(self, step):
        """Lazy regularisation: R1 when ``(step - 1) % r1_every == 0``, path length when ``% path_every``
        (the official loop regularises at iterations 0, 16, ... and 0, 4, ...)."""
        loss = self.config.loss
        r1 = loss.r1_gamma > 0 and regularizers.lazy_step_due(step, loss.r1_every)
        path = loss.path_weight > 0 and regularizers.lazy_step_due(step, loss.path_every)
        names = [name for name, on in (("r1", r1), ("path", path)) if on]
        return "+".join(names) if names else None

    def step_inputs(self, step, global_batch_size):
        """The step's random draws, stateless in (seed, step), in the form the train step consumes.

        Per generator pass (``d``, ``g``, ``path``): its :class:`PassInputs`. Every sample is drawn
        independently; the train step forms the diversity pairs, as the official generator does
        (``setup_paired_inputs``). ``path_image_noise`` is the path-length projection;
        ``real_row``/``real_col``/``real_ac_targets`` place the real patches.
        """
        cfg, batch = self.config, global_batch_size
        seeds = iter(tf.unstack(step_seed(cfg.train.seed, step, 64)))
        model_cfg, geometry, coords = cfg.model, self.geometry, self.coordinates
        inputs = {}
        n_latent = 2 * len(model_cfg.ts_channels) + 1
        for name in PASSES:
            z1 = tf.random.stateless_normal([batch, model_cfg.global_latent_dim], next(seeds))
            z2 = tf.random.stateless_normal([batch, model_cfg.global_latent_dim], next(seeds))
            mixing = tf.random.stateless_uniform([], next(seeds)) < cfg.loss.style_mixing  # per batch, as official
            inject = tf.random.stateless_uniform([], next(seeds), 1, n_latent, tf.int32)
            local_latent = tf.random.stateless_normal(
                [batch, geometry.window, geometry.window, model_cfg.local_latent_dim], next(seeds))
            row = tf.random.stateless_uniform([batch], next(seeds), 0, coords.row_starts, tf.int32)
            col = tf.random.stateless_uniform([batch], next(seeds), 0, coords.meta_cols, tf.int32)
            jitter = tf.random.stateless_uniform([batch, 4], next(seeds), -1.0, 1.0)
            inputs[name] = PassInputs(
                global_latent=tf.stack([z1, tf.where(mixing, z2, z1)], axis=1), inject_index=tf.fill([batch], inject),
                local_latent=local_latent, coords=coords.training_coords(row, col, jitter),
                ac_targets=coords.fake_ac_targets(row, col),
                noises=tuple(tf.random.stateless_normal([batch, size, size, 1], next(seeds))
                             for size in geometry.conv_output_sizes()))
        patch = self.patch_size
        inputs["path_image_noise"] = tf.random.stateless_normal([batch, patch, patch, 3], next(seeds))
        span = model_cfg.full_size - patch
        inputs["real_row"] = tf.random.stateless_uniform([batch], next(seeds), 0, max(span, 1), tf.int32)
        inputs["real_col"] = tf.random.stateless_uniform([batch], next(seeds), 0, max(span, 1), tf.int32)
        inputs["real_ac_targets"] = self.real_ac_targets(inputs["real_row"], inputs["real_col"])
        return inputs

    # -- training forward ----------------------------------------------------------------------
    def _paired(self, values):
        """Diversity pairs: sample 2k+1 takes sample 2k's value (official ``setup_paired_inputs``; with
        an odd batch the last sample keeps its own). Identity when the diversity loss is off."""
        if not self.config.loss.diversity_weight:
            return values
        return ops.take(values, (ops.arange(ops.shape(values)[0]) // 2) * 2, axis=0)

    def _training_styles(self, draws: PassInputs):
        """w+ (B, n_latent, D) with style mixing at the batch's inject index."""
        global_latent = self._paired(draws.global_latent)
        texture = self.generator.texture
        w1, w2 = texture.map(global_latent[:, 0]), texture.map(global_latent[:, 1])
        slots = ops.arange(texture.n_latent, dtype="int32")
        first = ops.expand_dims(ops.expand_dims(slots < draws.inject_index[0], 0), -1)
        return ops.where(first, ops.expand_dims(w1, 1), ops.expand_dims(w2, 1))

    def _structure(self, draws: PassInputs):
        global_latent, coords = self._paired(draws.global_latent), self._paired(draws.coords)
        return self.generator.structure(global_latent[:, 0], draws.local_latent, coords)

    def generate_training(self, draws: PassInputs):
        """(fake patches, structure latent, D's coordinate targets) of one training pass.

        Odd samples are generated with their pair's z_g and coordinates; their coordinate target is
        that of the window they were generated from, or with ``loss.fake_coord_targets=official_drawn``
        the window drawn for them and then replaced by the pairing (quirk I8: the official coordinate
        handler returns its targets before the generator pairs the coordinates).
        """
        structure = self._structure(draws)
        rgb = self.generator.texture(structure, self._training_styles(draws), list(draws.noises))
        targets = draws.ac_targets
        if self.config.loss.fake_coord_targets == "paired":
            targets = self._paired(targets)
        return rgb, structure, targets

    def real_ac_targets(self, row, col):
        """Coordinate targets of real patches cut at (row, col): ``2 row / (full - patch - 1) - 1`` (CropPatch)."""
        denominator = max(1, self.config.model.full_size - self.patch_size - 1)
        vertical = 2.0 * ops.cast(row, "float32") / denominator - 1.0
        angle = np.pi * (2.0 * ops.cast(col, "float32") / denominator - 1.0)
        return ops.stack([vertical, ops.cos(angle), ops.sin(angle)], axis=-1)

    def real_patches(self, images, batch):
        """Random real patches (resized to ``full_size`` first when ``extra_pre_resize``) and their targets."""
        model_cfg = self.config.model
        if model_cfg.extra_pre_resize:
            images = tf.image.resize(images, (model_cfg.full_size, model_cfg.full_size), method="bilinear")
        patches = crop_patches(images, batch["real_row"], batch["real_col"], self.patch_size)
        return patches, batch["real_ac_targets"]

    def _discriminate(self, images):
        """D's logits and predicted coordinates, in float32 (the losses' dtype whatever train.precision)."""
        logits, features = self.discriminator(images, training=True)
        predicted = to_float32(self.coord_head(features)) if self.coord_head is not None else None
        return to_float32(logits), predicted

    def _coordinate_term(self, predicted, target):
        if predicted is None or not self.config.loss.coord_weight:
            return 0.0
        return self.config.loss.coord_weight * coordinate_loss(predicted, target, self.config.loss.coord_vertical_only)

    def _coordinate_error(self, predicted, target, global_batch_size):
        """The unweighted coordinate loss, averaged over the batch (logged as the official losses_breakdown)."""
        return average(coordinate_loss(predicted, target, self.config.loss.coord_vertical_only),
                       global_batch_size)

    def _check_local_batch(self, batch):
        local = batch["image"].shape[0]
        if local is not None and local % 2:
            raise UserError(f"InfinityGAN pairs samples for the diversity loss within each replica, so the "
                            f"per-replica batch must be even; got {local}: set train.batch_size to an even "
                            f"multiple of the number of replicas")

    def train_step(self, batch, global_batch_size, variant=None):
        self._check_local_batch(batch)
        loss_cfg = self.config.loss
        variant = variant or ""
        real, real_targets = self.real_patches(batch["image"], batch)
        out = {}

        # -- D: logistic loss + auxiliary coordinates on real and fake -------------------------------
        fake, _, fake_targets = self.generate_training(batch["d"])
        fake = ops.stop_gradient(fake)
        with tf.GradientTape() as tape:
            real_logits, real_coords = self._discriminate(real)
            fake_logits, fake_coords = self._discriminate(fake)
            adversarial = logistic_discriminator_loss(real_logits, fake_logits)
            coordinate = (self._coordinate_term(real_coords, real_targets)
                          + self._coordinate_term(fake_coords, fake_targets))
            d_loss = average(adversarial + coordinate, global_batch_size)
        minimize(self.d_optimizer, tape, d_loss, self.d_variables())
        out["d_loss"] = d_loss
        out["d_adversarial"] = average(adversarial, global_batch_size)
        if self.coord_head is not None:
            out["d_coords_real"] = self._coordinate_error(real_coords, real_targets, global_batch_size)
            out["d_coords_fake"] = self._coordinate_error(fake_coords, fake_targets, global_batch_size)

        # -- lazy R1 (separate D update, as in the official loop) ----------------------------------
        if "r1" in variant:
            with tf.GradientTape() as tape:
                with tf.GradientTape() as inner:
                    inner.watch(real)
                    logits, _ = self.discriminator(real, training=True)
                    logit_sum = ops.sum(to_float32(logits))
                penalty = regularizers.r1_penalty(input_gradient(inner, logit_sum, real, self.d_optimizer))
                r1_loss = average(regularizers.lazy_r1_loss(penalty, loss_cfg.r1_gamma, loss_cfg.r1_every),
                                  global_batch_size)
            minimize(self.d_optimizer, tape, r1_loss, self.discriminator.trainable_variables)
            out["r1"] = average(penalty, global_batch_size)

        # -- G: non-saturating + coordinates + diversity ---------------------------------------------
        with tf.GradientTape() as tape:
            fake, structure, fake_targets = self.generate_training(batch["g"])
            fake_logits, fake_coords = self._discriminate(fake)
            adversarial = nonsaturating_generator_loss(fake_logits)
            g_loss = average(adversarial + self._coordinate_term(fake_coords, fake_targets), global_batch_size)
            if loss_cfg.diversity_weight:
                diversity = regularizers.diversity_loss(batch["g"].local_latent, to_float32(structure),
                                                        loss_cfg.diversity_distance)
                g_loss = g_loss + loss_cfg.diversity_weight * diversity
                out["diversity"] = diversity
        minimize(self.g_optimizer, tape, g_loss, self.generator.trainable_variables)
        out["g_loss"] = g_loss
        out["g_adversarial"] = average(adversarial, global_batch_size)
        if self.coord_head is not None:
            out["g_coords_fake"] = self._coordinate_error(fake_coords, fake_targets, global_batch_size)

        # -- lazy path-length regularisation (every path_batch_shrink-th sample, paired again) -----
        if "path" in variant:
            out.update(self._path_length_step(batch, global_batch_size))
        return out

    def _path_length_step(self, batch, global_batch_size):
        loss_cfg = self.config.loss
        shrink = loss_cfg.path_batch_shrink
        draws = batch["path"].every(shrink)
        path_global = max(1, global_batch_size // shrink)
        with tf.GradientTape() as tape:
            structure = self._structure(draws)
            styles = self._training_styles(draws)
            with tf.GradientTape() as inner:
                inner.watch(styles)
                rgb = self.generator.texture(structure, styles, list(draws.noises))
                noise = batch["path_image_noise"][::shrink] / float(np.sqrt(self.patch_size * self.patch_size))
                projected = ops.sum(rgb * noise)
            lengths = regularizers.path_lengths(to_float32(input_gradient(inner, projected, styles, self.g_optimizer)))
            totals = replica_sum(ops.stack([ops.sum(lengths), ops.cast(ops.shape(lengths)[0], "float32")]))
            path_mean = self.mean_path_length + loss_cfg.path_decay * (totals[0] / totals[1] - self.mean_path_length)
            penalty = ops.square(lengths - path_mean)
            path_loss = average(loss_cfg.path_weight * loss_cfg.path_every * penalty, path_global)
        minimize(self.g_optimizer, tape, path_loss, self.generator.trainable_variables)
        self.mean_path_length.assign(tf.stop_gradient(path_mean))
        return {"path": average(penalty, path_global), "path_length": totals[0] / totals[1] / num_replicas()}

    def after_step(self):
        """G EMA over every generator weight: the official ``accumulate`` walks ``named_parameters()``,
        which include the (never trained) constant input that tfcoord keeps non-trainable."""
        ema_step(self.generator_ema, self.generator, self.config.optim.ema_decay)
