"""GAWWN: learning what and where to draw (Reed et al., NeurIPS 2016), wired for the trainer.

What: a caption, embedded by the char-CNN-GRU text encoder (or a precomputed embedding);
a training sample's text is the mean of ``text.num_captions`` random captions of the image
(``num_holdout`` never used). Where: a bounding box (``model.conditioning="box"``) or K part
keypoints (``"keypoints"``). Optionally a conditional keypoint generator fills in parts the
user does not give (``model.keypoint_generator``).

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

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfcoord.data.gawwn.captions import tokenize_all
from tfcoord.data.gawwn.parts import flip_order, part_names
from tfcoord.errors import UserError
from tfcoord.gan.distribute import all_gather, average, gather_features
from tfcoord.gan.ema import ema_step
from tfcoord.gan.losses import gan_cls_discriminator_loss, gan_cls_generator_loss
from tfcoord.models.base import CoordinateGan, step_seed
from tfcoord.models.gawwn import networks
from tfcoord.models.gawwn.blocks import keypoint_maps
from tfcoord.models.gawwn.text_encoder import CharCnnGru, HashedNgramEncoder, ImageEncoder, joint_embedding_loss
from tfcoord.training.precision import loss_scaled, minimize, to_float32

BOX_COLOUR = np.array([255, 0, 255], np.uint8)
PART_COLOURS = np.array([[255, 255, 255], [255, 64, 64], [64, 255, 64], [64, 160, 255], [255, 220, 0]], np.uint8)


def adam(optim, scale: float = 1.0):
    rate = optim.lr * scale
    if optim.decay_every:
        rate = keras.optimizers.schedules.ExponentialDecay(rate, optim.decay_every, optim.lr_decay, staircase=True)
    return keras.optimizers.Adam(rate, beta_1=optim.beta_1, beta_2=optim.beta_2, epsilon=optim.epsilon)


def check_boxes(boxes) -> np.ndarray:
    """(N, 4) ymin, xmin, ymax, xmax inside [0, 1] with positive size, else a UserError."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not np.all(np.isfinite(boxes)) or boxes.min() < 0 or boxes.max() > 1:
        raise UserError("boxes must lie inside the image: every coordinate in [0, 1]")
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise UserError("boxes must have a positive width and height")
    return boxes


class Gawwn(CoordinateGan):
    """GAWWN for the trainer, the generator CLI and the exporter."""

    name = "gawwn"

    def __init__(self, config):
        super().__init__(config)
        self.parts = part_names(config.model.parts)
        self.flip_order = np.asarray(flip_order(self.parts), np.int32)
        self.text_encoder = self.image_encoder = None
        self.generator_ema = None
        self.keypoint_completer = self.keypoint_critic = None
        self._probe = None
        self._functions = {}
        if config.text.train_encoder and config.text.encoder != "char-cnn-gru":
            raise UserError(f"text.train_encoder needs text.encoder=char-cnn-gru ({config.text.encoder} is fixed)")

    # -- construction ------------------------------------------------------------------
    @property
    def text_dim(self) -> int:
        return self.config.text.embedding_dim

    def image_size(self):
        return (self.config.model.image_size, self.config.model.image_size)

    def build_networks(self):
        with self.dtype_policy_scope():  # train.precision
            self._build_networks()

    def _build_networks(self):
        cfg, text = self.config.model, self.config.text
        K = len(self.parts)
        if cfg.conditioning == "box":
            self.generator = networks.box_generator(cfg, self.text_dim, name="generator")
            self.discriminator = networks.box_discriminator(cfg, self.text_dim, name="discriminator")
        else:
            self.generator = networks.keypoint_generator(cfg, self.text_dim, K, name="generator")
            self.discriminator = networks.keypoint_discriminator(cfg, self.text_dim, K, name="discriminator")
        if self.config.optim.g_ema_decay:
            build = networks.box_generator if cfg.conditioning == "box" else (
                lambda c, d, name: networks.keypoint_generator(c, d, K, name=name))
            self.generator_ema = build(cfg, self.text_dim, name="generator_ema")
            self.generator_ema.set_weights(self.generator.get_weights())
        if cfg.keypoint_generator:
            self.keypoint_completer = networks.keypoint_completer(cfg, self.text_dim, K, name="keypoint_completer")
            self.keypoint_critic = networks.keypoint_critic(cfg, self.text_dim, K, name="keypoint_critic")
        if text.encoder == "char-cnn-gru":
            self.text_encoder = CharCnnGru(self.text_dim, text.cnn_channels, text.doc_length, name="text_encoder")
            self.text_encoder.build((None, text.doc_length))
        elif text.encoder == "hashed-ngrams":
            self.text_encoder = HashedNgramEncoder(self.text_dim, name="text_encoder")
        if text.train_encoder:
            self.image_encoder = ImageEncoder(self.text_dim, text.image_encoder_width, cfg.image_size,
                                              name="image_encoder")
            self.image_encoder.build((None, cfg.image_size, cfg.image_size, 3))

    def build(self):
        self.build_networks()
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
            # RMSprop as the official text encoder training (Torch alpha 0.99, eps 1e-8).
            self.text_optimizer = loss_scaled(keras.optimizers.RMSprop(self.config.text.encoder_lr, rho=0.99,
                                                                       epsilon=1e-8), self.precision)
            self.text_optimizer.build(self.joint_variables())
        if self.config.text.encoder_run:
            self.load_text_encoder(self.config.text.encoder_run)

    def load_text_encoder(self, run_dir):
        """Initialise the text encoder from a ``text-encoder`` run (same architecture fields)."""
        from tfcoord.config import load_run_config
        from tfcoord.models import section_classes
        from tfcoord.training.checkpoints import restore_networks_from_run

        if not isinstance(self.text_encoder, CharCnnGru):
            raise UserError("text.encoder_run needs text.encoder=char-cnn-gru")
        other = load_run_config(run_dir, section_classes)
        if other.model_type not in ("text-encoder", "gawwn"):
            raise UserError(f"text.encoder_run {run_dir} is a {other.model_type} run; pass a text-encoder run")
        theirs = other.model if other.model_type == "text-encoder" else other.text
        mine = self.config.text
        for key in ("embedding_dim", "cnn_channels", "doc_length"):
            if tuple(np.atleast_1d(getattr(theirs, key))) != tuple(np.atleast_1d(getattr(mine, key))):
                raise UserError(f"text.encoder_run {run_dir} has {key}={getattr(theirs, key)}, this run "
                                f"text.{key}={getattr(mine, key)}; set --set text.{key}=... to match")
        for key in ("final_pool", "average_states"):  # GAWWN builds the published encoder's (CharCnnGru defaults)
            if getattr(theirs, key, getattr(self.text_encoder, key)) != getattr(self.text_encoder, key):
                raise UserError(f"text.encoder_run {run_dir} has {key}={getattr(theirs, key)}, GAWWN's encoder "
                                f"{key}={getattr(self.text_encoder, key)}; train the text encoder with that value")
        restore_networks_from_run({"text_encoder": self.text_encoder}, run_dir)

    def joint_variables(self):
        return list(self.text_encoder.trainable_variables) + list(self.image_encoder.trainable_variables)

    def network_items(self):
        items = {"generator": self.generator, "discriminator": self.discriminator}
        for key in ("generator_ema", "keypoint_completer", "keypoint_critic", "text_encoder", "image_encoder"):
            if getattr(self, key) is not None:
                items[key] = getattr(self, key)
        return items

    def checkpoint_items(self):
        items = dict(self.network_items(), g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer)
        for key in ("kg_optimizer", "kd_optimizer", "text_optimizer"):
            if getattr(self, key) is not None:
                items[key] = getattr(self, key)
        return items

    # -- training ------------------------------------------------------------------------
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

    def _location(self, batch):
        """The where-condition of the batch: boxes (B, 4), or keypoint maps (B, 16, 16, K)."""
        if self.config.model.conditioning == "box":
            return batch["bbox"]
        return keypoint_maps(self._keypoints(batch))

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

    def _discriminate(self, discriminator, images, conditions, texts):
        """D's logits for several (image, condition, text) groups of one batch size each.

        With ``model.d_joint_batch`` the groups go through D as one batch (shared batch-norm
        statistics); otherwise one call each, as the official code does. Logits in float32 (the losses'
        dtype whatever train.precision).
        """
        if not self.config.model.d_joint_batch:
            return [to_float32(discriminator([i, c, t], training=True)) for i, c, t in zip(images, conditions, texts)]
        joined = [ops.concatenate(list(group), axis=0) for group in (images, conditions, texts)]
        return ops.split(to_float32(discriminator(joined, training=True)), len(images), axis=0)

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
            kp = self._keypoint_gan_step(real, given, text, batch["keypoint_z"], global_batch_size)
            losses.update(kp)
        return losses

    def _keypoint_gan_step(self, real, given, text, z, global_batch_size):
        completer, critic = self.keypoint_completer, self.keypoint_critic
        joint = self.config.model.d_joint_batch

        def criticise(parts):
            if joint:
                return ops.split(to_float32(critic([ops.concatenate(parts, 0), ops.concatenate([text] * len(parts), 0)],
                                                   training=True)), len(parts), axis=0)
            return [to_float32(critic([p, text], training=True)) for p in parts]

        with tf.GradientTape(persistent=True) as tape:
            fake = to_float32(completer([z, text, given], training=True))
            d_real, d_fake = criticise([real, fake])
            # main_gen_keypoints.lua: real and fake weigh 1 each, targets 1 and 0, no label smoothing.
            d_loss = average(gan_cls_discriminator_loss(d_real, None, d_fake, cls_weight=0.0), global_batch_size)
            with tape.stop_recording():
                minimize(self.kd_optimizer, tape, d_loss, critic.trainable_variables)
            d_fake_for_g = d_fake if self.config.model.reuse_d_forward else criticise([real, fake])[1]
            g_loss = average(gan_cls_generator_loss(d_fake_for_g), global_batch_size)
        minimize(self.kg_optimizer, tape, g_loss, completer.trainable_variables)
        del tape
        return {"keypoint_d_loss": d_loss, "keypoint_g_loss": g_loss}

    def after_step(self):
        """G EMA (``optim.g_ema_decay``) in cross-replica context, after G's update."""
        ema_step(self.generator_ema, self.generator, self.config.optim.g_ema_decay,
                 warmup_step=self.g_optimizer.iterations)

    @property
    def sampling_generator(self):
        """The generator that draws (generation, samples, export): the EMA copy when there is one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    # -- generation ------------------------------------------------------------------------
    def latents(self, seed: int, num: int) -> np.ndarray:
        """z ~ N(0, I)^z_dim for ``num`` images, deterministic for ``seed``."""
        return np.random.default_rng(seed).standard_normal((num, self.config.model.z_dim)).astype("float32")

    def _function(self, key, fn):
        if key not in self._functions:
            self._functions[key] = tf.function(fn, reduce_retracing=True)
        return self._functions[key]

    def encode_tokens(self, tokens) -> np.ndarray:
        """(N, doc_length) caption tokens -> (N, D) embeddings."""
        if self.text_encoder is None:
            raise UserError("this run was trained on precomputed text embeddings and has no text encoder; pass "
                            "--embedding FILE.npy, or train with text.encoder=char-cnn-gru (or text.encoder_run)")
        encode = self._function("encode", lambda t: self.text_encoder(t, training=False))
        return np.array(encode(np.asarray(tokens, np.int32)))

    def embed_captions(self, captions) -> np.ndarray:
        """The mean embedding (D,) of one or more free-text captions (the paper averages any number)."""
        from tfcoord.data.gawwn.captions import known_characters

        captions = [captions] if isinstance(captions, str) else list(captions)
        for caption in captions:
            if not known_characters(caption):
                raise UserError(f"caption {caption!r} has no letters, digits or punctuation the text encoder knows")
        return self.encode_tokens(tokenize_all(captions, self.config.text.doc_length)).mean(axis=0)

    def generate_from_box(self, z, text_embedding, boxes) -> np.ndarray:
        """Images (N, S, S, 3) in [-1, 1]: G(z, t, box) in eval mode; boxes (ymin, xmin, ymax, xmax)."""
        self._require("box")
        generate = self._function("box", lambda z, t, b: self.sampling_generator([z, t, b], training=False))
        return np.array(generate(np.asarray(z, np.float32), np.asarray(text_embedding, np.float32),
                                 check_boxes(boxes)))

    def generate_from_keypoints(self, z, text_embedding, keypoints) -> np.ndarray:
        """Images from keypoints (N, K, 3) = (x, y, visibility) in [0, 1]."""
        self._require("keypoints")
        generate = self._function("keypoints",
                                  lambda z, t, k: self.sampling_generator([z, t, keypoint_maps(k)],
                                                                            training=False))
        return np.array(generate(np.asarray(z, np.float32), np.asarray(text_embedding, np.float32),
                                 np.asarray(keypoints, np.float32)))

    def complete_keypoints(self, z, text_embedding, keypoints) -> np.ndarray:
        """G_k in eval mode: given parts (visibility 1) unchanged, the others generated in [0, 1]."""
        if self.keypoint_completer is None:
            raise UserError("this run has no keypoint generator (model.keypoint_generator=false); give every part")
        complete = self._function("complete", lambda z, t, k: self.keypoint_completer([z, t, k], training=False))
        return np.array(complete(np.asarray(z, np.float32), np.asarray(text_embedding, np.float32),
                                   np.asarray(keypoints, np.float32)))

    def generate(self, z, text_embedding, boxes=None, keypoints=None) -> np.ndarray:
        """Images for this run's conditioning (boxes or keypoints)."""
        if self.config.model.conditioning == "box":
            return self.generate_from_box(z, text_embedding, boxes)
        return self.generate_from_keypoints(z, text_embedding, keypoints)

    def _require(self, conditioning):
        if self.config.model.conditioning != conditioning:
            raise UserError(f"this run is conditioned on {self.config.model.conditioning}, not {conditioning} "
                            f"(model.conditioning)")

    # -- samples -------------------------------------------------------------------------
    def probe_batch(self, num: int) -> dict:
        """The first ``num`` evaluation elements of the run's data (captions, boxes, keypoints, images)."""
        if self._probe is None or len(self._probe["image"]) < num:
            from tfcoord.data import make_dataset

            data = make_dataset(self.config.data.source, image_size=self.image_size(), batch_size=num,
                                seed=self.config.train.seed, training=False)
            self._probe = {key: value.numpy() for key, value in next(iter(data.take(1))).items()}
        return {key: value[:num] for key, value in self._probe.items()}

    def probe_text(self, probe) -> np.ndarray:
        """Deterministic text of probe elements: the mean of their first usable captions."""
        text = self.config.text
        count = np.maximum(probe["num_captions"] - text.num_holdout, 1)
        k = np.minimum(count, text.num_captions)
        if text.encoder == "precomputed":
            embeddings = probe["caption_embeddings"]
        else:
            tokens = probe["captions"]
            embeddings = self.encode_tokens(tokens.reshape(-1, tokens.shape[-1])).reshape(
                tokens.shape[0], tokens.shape[1], -1)
        return np.stack([embeddings[i, :k[i]].mean(axis=0) for i in range(len(k))]).astype("float32")

    def sample_images(self, seed, num):
        """Rows of one probe caption each: the real image, G at the real box/parts, then the box/parts moved."""
        columns = max(2, int(math.ceil(math.sqrt(num))))  # one column drew nothing: num=1 failed
        rows = int(math.ceil(num / columns))
        probe = self.probe_batch(rows)
        text = self.probe_text(probe)
        z = self.latents(seed, rows)
        images = []
        for row in range(rows):
            conditions = [None] + moved_conditions(self, probe, row, columns - 1)
            fakes = self._generate_conditions(np.repeat(z[row:row + 1], columns - 1, 0),
                                              np.repeat(text[row:row + 1], columns - 1, 0), conditions[1:])
            images.append(self._annotate(probe["image"][row], self._real_condition(probe, row)))
            images.extend(self._annotate(fake, condition) for fake, condition in zip(fakes, conditions[1:]))
        return np.stack(images[:num])

    def _real_condition(self, probe, row):
        if self.config.model.conditioning == "box":
            return probe["bbox"][row]
        return np.asarray(self._keypoints({k: v[row:row + 1] for k, v in probe.items()})[0])

    def _generate_conditions(self, z, text, conditions):
        if self.config.model.conditioning == "box":
            return self.generate_from_box(z, text, np.stack(conditions))
        return self.generate_from_keypoints(z, text, np.stack(conditions))

    def _annotate(self, image, condition) -> np.ndarray:
        """The image as float [-1, 1] with its box outline or part dots drawn in."""
        from tfcoord.images import to_uint8

        pixels = to_uint8(image).copy()
        draw_condition(pixels, condition, self.config.model.conditioning)
        return pixels.astype(np.float32) / 127.5 - 1.0

    # -- export (tensorflow.md §12-13) -------------------------------------------------------
    def serving_functions(self, patch_size=None):
        from tfcoord.models.gawwn.serving import serving_functions

        return serving_functions(self, patch_size)

    def serving_description(self):
        from tfcoord.models.gawwn.serving import serving_description

        return serving_description(self)


def moved_conditions(model, probe, row, count):
    """The real condition of probe ``row``, then ``count - 1`` copies moved across the image."""
    if model.config.model.conditioning == "box":
        box = np.asarray(probe["bbox"][row], np.float32)
        boxes = [box]
        width = box[3] - box[1]
        for left in np.linspace(0.0, 1.0 - width, max(count - 1, 1)) if count > 1 else []:
            boxes.append(np.array([box[0], left, box[2], left + width], np.float32))
        return boxes[:count]
    keypoints = model._real_condition(probe, row)
    out = [keypoints]
    visible = keypoints[:, 2] > 0
    if visible.any():
        low, high = keypoints[visible, 0].min(), keypoints[visible, 0].max()
        for left in np.linspace(0.02, 0.98 - (high - low), max(count - 1, 1)) if count > 1 else []:
            moved = keypoints.copy()
            moved[visible, 0] += left - low
            out.append(moved)
    while len(out) < count:
        out.append(keypoints)
    return out[:count]


def draw_condition(pixels, condition, conditioning):
    """Draw a box outline (magenta) or part dots into uint8 ``pixels`` (H, W, 3) in place."""
    height, width = pixels.shape[:2]
    if conditioning == "box":
        ymin, xmin, ymax, xmax = np.asarray(condition, np.float64)
        top, bottom = (int(np.clip(v, 0, height - 1)) for v in (round(ymin * height), round(ymax * height) - 1))
        left, right = (int(np.clip(v, 0, width - 1)) for v in (round(xmin * width), round(xmax * width) - 1))
        pixels[top, left:right + 1] = pixels[bottom, left:right + 1] = BOX_COLOUR
        pixels[top:bottom + 1, left] = pixels[top:bottom + 1, right] = BOX_COLOUR
        return
    for i, (x, y, visible) in enumerate(np.asarray(condition)):
        if visible > 0:
            row, col = int(np.clip(y * height, 0, height - 1)), int(np.clip(x * width, 0, width - 1))
            pixels[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = PART_COLOURS[i % len(PART_COLOURS)]
