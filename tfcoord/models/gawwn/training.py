"""GAWWN's training step.

One training step on each replica (models.md §3.6):

1. text embeddings of the batch (when ``text.train_encoder``, the encoder and an image
   encoder also take one step of the structured joint embedding loss; the GAN sees the
   embeddings as constants);
2. D step, matching-aware GAN-CLS (:mod:`~tfcoord.gan.losses`): ``BCE(D(x, t), 1)
   + cls * BCE(D(x, t_wrong), 0) + (1 - cls) * BCE(D(G(z, t, loc), t), 0)``, t_wrong the text
   of another image of the global batch (a permutation drawn by :meth:`step_inputs`, which,
   like the official ``randperm``, may leave an example its own text); ``model.d_joint_batch`` passes
   the three groups through D as one batch, ``loss.real_label`` < 1 smooths the real target
   (both off in the paper, on in the default preset);
3. G step: ``BCE(D(G(z, t, loc), t), 1)`` with the updated D (quirk W2: the D output of
   step 2);
4. with a keypoint generator: the same two steps for G_k / D_k on the batch's parts, each
   conditioning part kept with probability ``1 - loss.keypoint_drop_prob``.

Losses are per example and averaged over the global batch, and every cross-example
operation (wrong texts, joint-embedding negatives) uses all replicas' values, so two
replicas train exactly like one device.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tfcoord.errors import UserError
from tfcoord.gan.distribute import all_gather, average, gather_features
from tfcoord.gan.ema import ema_step
from tfcoord.gan.losses import gan_cls_discriminator_loss, gan_cls_generator_loss
from tfcoord.gan.optimizers import step_decay, torch_rmsprop
from tfcoord.models.base import step_seed
from tfcoord.models.gawwn.blocks import keypoint_maps
from tfcoord.models.text_encoder.loss import joint_embedding_loss
from tfcoord.training.precision import loss_scaled, minimize, to_float32


def adam(optim, scale: float = 1.0):
    rate = step_decay(optim.lr * scale, optim.decay_every, optim.lr_decay)
    return keras.optimizers.Adam(rate, beta_1=optim.beta_1, beta_2=optim.beta_2, epsilon=optim.epsilon)


class GawwnTraining:
    """The trainer's side of :class:`~tfcoord.models.gawwn.model.Gawwn` (mixed in, as Keras mixes its
    ``Trainer`` into ``Model``): optimizers, step inputs and the step itself, on the model's
    ``config`` and networks."""

    def build_optimizers(self):
        """Adams for G and D (and G_k, D_k), RMSprop for a jointly trained text encoder."""
        optim = self.config.optim
        # Loss-scaled under mixed_float16 (tfcoord.training.precision).
        self.g_optimizer = loss_scaled(adam(optim), self.precision)
        self.d_optimizer = loss_scaled(adam(optim, optim.d_lr_ratio), self.precision)
        # Building optimizers eagerly inside the strategy scope avoids P16.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.kg_optimizer = self.kd_optimizer = self.text_optimizer = None
        if self.keypoint_completer is not None:
            self.kg_optimizer = loss_scaled(adam(optim), self.precision)
            self.kd_optimizer = loss_scaled(adam(optim, optim.d_lr_ratio), self.precision)
            self.kg_optimizer.build(self.keypoint_completer.trainable_variables)
            self.kd_optimizer.build(self.keypoint_critic.trainable_variables)
        if self.image_encoder is not None:
            self.text_optimizer = loss_scaled(torch_rmsprop(self.config.text.encoder_lr), self.precision)
            self.text_optimizer.build(self.joint_variables())

    def joint_variables(self):
        return list(self.text_encoder.trainable_variables) + list(self.image_encoder.trainable_variables)

    def step_inputs(self, step, global_batch_size):
        cfg = self.config
        seeds = step_seed(cfg.train.seed, step, 5)
        batch = global_batch_size
        inputs = {
            "z": tf.random.stateless_normal([batch, cfg.model.z_dim], seeds[0]),
            "caption_keys": tf.random.stateless_uniform([batch, cfg.text.max_captions], seeds[1]),
            # t_wrong of example i is the text of example wrong_index[i] of the global batch.
            "wrong_index": tf.argsort(tf.random.stateless_uniform([batch], seeds[2])),
        }
        if cfg.model.keypoint_generator:
            inputs["keypoint_z"] = tf.random.stateless_normal([batch, cfg.model.z_dim], seeds[3])
            inputs["keypoint_keep"] = (tf.random.stateless_uniform([batch, len(self.parts)], seeds[4])
                                       >= cfg.loss.keypoint_drop_prob)
        return inputs

    def _caption_choice(self, count, keys):
        """Which captions form each example's text: (indices (B, k), weights (B, k) summing to 1)."""
        text = self.config.text
        available = ops.shape(keys)[1]
        usable = ops.maximum(count - text.num_holdout, 1)  # captions after the held-out ones
        slots = ops.expand_dims(ops.arange(available), 0)
        keys = ops.where(slots < ops.expand_dims(usable, 1), keys, 2.0)  # held-out captions sort last
        k = min(text.num_captions, keys.shape[1])
        indices = ops.argsort(keys, axis=-1)[:, :k]
        weights = ops.cast(ops.expand_dims(ops.arange(k), 0) < ops.expand_dims(usable, 1), "float32")
        return indices, weights / ops.sum(weights, axis=1, keepdims=True)

    def _mean_caption_embedding(self, batch, training):
        """(B, D): the mean embedding of the chosen captions of each example."""
        text = self.config.text
        if text.encoder == "precomputed":
            if "caption_embeddings" not in batch:
                raise UserError("text.encoder=precomputed needs data with text embeddings (an annotations file "
                                "whose records have 'text_embeddings'); use text.encoder=char-cnn-gru for captions")
            captions = batch["caption_embeddings"][:, :text.max_captions]
        else:
            if "captions" not in batch:
                raise UserError("GAWWN needs captions: train on synthetic-birds or an annotations:FILE.jsonl source")
            captions = batch["captions"][:, :text.max_captions]
        keys = batch["caption_keys"][:, :captions.shape[1]]
        indices, weights = self._caption_choice(batch["num_captions"], keys)
        chosen = tf.gather(captions, indices, batch_dims=1)  # (B, k, ...)
        if text.encoder != "precomputed":
            shape = ops.shape(chosen)
            flat = to_float32(self.text_encoder(ops.reshape(chosen, (-1, chosen.shape[-1])), training=training))
            chosen = ops.reshape(flat, (shape[0], shape[1], self.text_dim))
        return ops.sum(chosen * ops.expand_dims(weights, -1), axis=1)

    def real_conditions(self, batch):
        """The where-condition of data elements: boxes (B, 4), or keypoints (B, K, 3) (quirk W4 undone)."""
        if self.config.model.conditioning == "box":
            return batch["bbox"]
        return self._keypoints(batch)

    def _location(self, batch):
        """The where-condition of the batch: boxes (B, 4), or keypoint maps (B, 16, 16, K)."""
        conditions = self.real_conditions(batch)
        return conditions if self.config.model.conditioning == "box" else keypoint_maps(conditions)

    def _keypoints(self, batch):
        keypoints = batch["keypoints"]
        if not self.config.model.flip_swaps_lr and "flipped" in batch:
            # Quirk W4: the official loader flips coordinates but keeps left/right part names.
            unswapped = tf.gather(keypoints, tf.constant(self.flip_order), axis=1)
            keypoints = tf.where(batch["flipped"][:, None, None], unswapped, keypoints)
        return keypoints

    def _text_step(self, batch, global_batch_size):
        """The batch's text embeddings (constants for the GAN) and, when training the encoder, its losses."""
        if not self.config.text.train_encoder:
            return ops.stop_gradient(self._mean_caption_embedding(batch, training=False)), {}
        variables = self.joint_variables()
        with tf.GradientTape() as tape:
            text = self._mean_caption_embedding(batch, training=True)
            text, image = to_float32(text), to_float32(self.image_encoder(batch["image"], training=True))
            labels = batch["label"]
            per_example, correct = joint_embedding_loss(image, text, labels, *gather_features(image, text, labels),
                                                        center=self.config.text.center_features)
            loss = average(self.config.loss.joint_embedding_weight * per_example, global_batch_size)
        minimize(self.text_optimizer, tape, loss, variables)
        return ops.stop_gradient(text), {"text_loss": loss, "text_accuracy": average(correct, global_batch_size)}

    def _discriminate(self, discriminator, *inputs):
        """D's (or the keypoint critic's) logits for several groups of one batch size each: ``inputs`` holds, for
        each input of D (image, condition, text), its tensor in every group.

        With ``model.d_joint_batch`` the groups go through D as one batch (shared batch-norm
        statistics); otherwise one call each, as the official code does. Logits in float32 (the losses'
        dtype whatever train.precision).
        """
        if not self.config.model.d_joint_batch:
            return [to_float32(discriminator(list(group), training=True)) for group in zip(*inputs)]
        joined = [ops.concatenate(list(values), axis=0) for values in inputs]
        return ops.split(to_float32(discriminator(joined, training=True)), len(inputs[0]), axis=0)

    def _gan_step(self, generator, discriminator, g_optimizer, d_optimizer, real, g_inputs, d_condition,
                  text, wrong_text, global_batch_size, cls_weight):
        """One D and one G update of matching-aware GAN-CLS; returns the losses for logging."""
        with tf.GradientTape(persistent=True) as tape:
            fake = generator(g_inputs, training=True)
            if cls_weight:
                d_real, d_wrong, d_fake = self._discriminate(discriminator, (real, real, fake), (d_condition,) * 3,
                                                             (text, wrong_text, text))
            else:  # as the official scripts, no wrong-text forward pass (nor its batch-norm update)
                (d_real, d_fake), d_wrong = self._discriminate(discriminator, (real, fake), (d_condition,) * 2,
                                                               (text, text)), None
            d_loss = average(gan_cls_discriminator_loss(d_real, d_wrong, d_fake, cls_weight,
                                                        self.config.loss.real_label), global_batch_size)
            with tape.stop_recording():
                minimize(d_optimizer, tape, d_loss, discriminator.trainable_variables)
            if self.config.model.reuse_d_forward:
                d_fake_for_g = d_fake  # quirk W2: D's output from before its update
            elif self.config.model.d_joint_batch:
                d_fake_for_g = self._discriminate(discriminator, (real, fake), (d_condition,) * 2, (text, text))[1]
            else:
                d_fake_for_g = to_float32(discriminator([fake, d_condition, text], training=True))
            g_loss = average(gan_cls_generator_loss(d_fake_for_g), global_batch_size)
        minimize(g_optimizer, tape, g_loss, generator.trainable_variables)
        del tape
        losses = {"d_loss": d_loss, "g_loss": g_loss, "d_real": average(ops.sigmoid(d_real), global_batch_size),
                  "d_fake": average(ops.sigmoid(d_fake), global_batch_size)}
        if d_wrong is not None:
            losses["d_wrong"] = average(ops.sigmoid(d_wrong), global_batch_size)
        return losses

    def train_step(self, batch, global_batch_size):
        text, losses = self._text_step(batch, global_batch_size)
        wrong_text = tf.gather(all_gather(text), batch["wrong_index"])
        location = self._location(batch)
        cls_weight = self.config.loss.cls_weight
        losses.update(self._gan_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                                     batch["image"], [batch["z"], text, location], location, text, wrong_text,
                                     global_batch_size, cls_weight))
        if self.keypoint_completer is not None:
            real = self._keypoints(batch)
            given = real * ops.cast(ops.expand_dims(batch["keypoint_keep"], -1), real.dtype)
            # Keypoint "images" are the part sets; the critic has no wrong-text term (cls weight 0).
            losses.update(self._keypoint_gan_step(real, given, text, batch["keypoint_z"], global_batch_size))
        return losses

    def _keypoint_gan_step(self, real, given, text, z, global_batch_size):
        completer, critic = self.keypoint_completer, self.keypoint_critic
        with tf.GradientTape(persistent=True) as tape:
            fake = to_float32(completer([z, text, given], training=True))
            d_real, d_fake = self._discriminate(critic, (real, fake), (text, text))
            # main_gen_keypoints.lua: real and fake weigh 1 each, targets 1 and 0, no label smoothing.
            d_loss = average(gan_cls_discriminator_loss(d_real, None, d_fake, cls_weight=0.0), global_batch_size)
            with tape.stop_recording():
                minimize(self.kd_optimizer, tape, d_loss, critic.trainable_variables)
            if not self.config.model.reuse_d_forward:
                d_fake = self._discriminate(critic, (real, fake), (text, text))[1]
            g_loss = average(gan_cls_generator_loss(d_fake), global_batch_size)
        minimize(self.kg_optimizer, tape, g_loss, completer.trainable_variables)
        del tape
        return {"keypoint_d_loss": d_loss, "keypoint_g_loss": g_loss}

    def after_step(self):
        """G EMA (``optim.g_ema_decay``) in cross-replica context, after G's update."""
        ema_step(self.generator_ema, self.generator, self.config.optim.g_ema_decay,
                 warmup_step=self.g_optimizer.iterations)
