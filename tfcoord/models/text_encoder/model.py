"""The ``text-encoder`` model: char-CNN-GRU captions and images in one embedding (Reed et al., CVPR 2016).

``python -m tfcoord.train --model text-encoder --data synthetic-birds`` (or an
``annotations:FILE.jsonl`` source with captions and classes) trains the char-CNN-GRU text
encoder against an image encoder with the symmetric structured joint embedding loss
(:func:`~tfcoord.models.gawwn.text_encoder.joint_embedding_loss`). Each step pairs every
image with one of its captions, chosen at random among all but the ``num_holdout`` last; the
other images of the global batch (of other classes) are the negatives.

A GAWWN run uses the trained encoder with ``--set text.encoder_run=RUN`` (the weights are
copied into the GAWWN run, so its checkpoint encodes free text on its own).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfcoord.data.gawwn.captions import tokenize_all
from tfcoord.errors import UserError
from tfcoord.models.base import CoordinateGan, step_seed
from tfcoord.models.gawwn.model import average, gather_features
from tfcoord.models.gawwn.text_encoder import CharCnnGru, ImageEncoder, joint_embedding_loss


class TextEncoderModel(CoordinateGan):
    """The text encoder for the trainer (its "samples" are caption-image score maps)."""

    name = "text-encoder"

    def image_size(self):
        size = self.config.model.image_size
        return (size, size)

    def build_networks(self):
        cfg = self.config.model
        self.text_encoder = CharCnnGru(cfg.embedding_dim, cfg.cnn_channels, cfg.doc_length, name="text_encoder")
        self.text_encoder.build((None, cfg.doc_length))
        self.image_encoder = ImageEncoder(cfg.embedding_dim, cfg.image_encoder_width, cfg.image_size,
                                          name="image_encoder")
        self.image_encoder.build((None, cfg.image_size, cfg.image_size, 3))

    def build(self):
        self.build_networks()
        optim = self.config.optim
        rate = optim.lr
        if optim.decay_every:
            rate = keras.optimizers.schedules.ExponentialDecay(optim.lr, optim.decay_every, optim.lr_decay,
                                                               staircase=True)
        self.optimizer = keras.optimizers.RMSprop(rate, rho=0.99, epsilon=1e-8)
        self.optimizer.build(self.variables())
        self._probe = None

    def variables(self):
        return list(self.text_encoder.trainable_variables) + list(self.image_encoder.trainable_variables)

    def network_items(self):
        return {"text_encoder": self.text_encoder, "image_encoder": self.image_encoder}

    def checkpoint_items(self):
        return dict(self.network_items(), optimizer=self.optimizer)

    def step_inputs(self, step, global_batch_size):
        seed = step_seed(self.config.train.seed, step)
        return {"caption_keys": tf.random.stateless_uniform([global_batch_size, self.config.loss.max_captions], seed)}

    def _chosen_tokens(self, batch):
        """One caption per image: the first of a random order of its usable captions."""
        if "captions" not in batch:
            raise UserError("the text encoder needs captions: train on synthetic-birds or an "
                            "annotations:FILE.jsonl source whose records have 'captions'")
        captions = batch["captions"][:, :self.config.loss.max_captions]
        keys = batch["caption_keys"][:, :captions.shape[1]]
        usable = tf.maximum(batch["num_captions"] - self.config.loss.num_holdout, 1)
        keys = tf.where(tf.range(tf.shape(keys)[1])[None, :] < usable[:, None], keys, 2.0)
        return tf.gather(captions, tf.argmin(keys, axis=1, output_type=tf.int32), batch_dims=1)

    def train_step(self, batch, global_batch_size):
        variables = self.variables()
        labels = batch["label"]
        with tf.GradientTape() as tape:
            text = self.text_encoder(self._chosen_tokens(batch), training=True)
            image = self.image_encoder(batch["image"], training=True)
            per_example, correct = joint_embedding_loss(image, text, labels, *gather_features(image, text, labels),
                                                        center=self.config.loss.center_features)
            loss = average(per_example, global_batch_size)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"loss": loss, "accuracy": average(correct, global_batch_size)}

    # -- evaluation and use ----------------------------------------------------------------
    def encode(self, captions) -> np.ndarray:
        """(N,) caption strings -> (N, embedding_dim)."""
        tokens = tokenize_all(list(captions), self.config.model.doc_length)
        return np.asarray(self.text_encoder(tokens, training=False))

    def scores(self, num: int) -> tuple[np.ndarray, np.ndarray]:
        """Score matrix (num, num) of the first ``num`` evaluation images against their held-out captions."""
        if self._probe is None:
            from tfcoord.data import make_dataset

            data = make_dataset(self.config.data.source, image_size=self.image_size(), batch_size=num,
                                seed=self.config.train.seed, training=False)
            self._probe = {k: v.numpy() for k, v in next(iter(data.take(1))).items()}
        probe = self._probe
        # The last caption of each image: held out from training when num_holdout >= 1.
        last = np.maximum(probe["num_captions"] - 1, 0)
        tokens = probe["captions"][np.arange(len(last)), last]
        text = np.asarray(self.text_encoder(tokens, training=False))
        image = np.asarray(self.image_encoder(probe["image"], training=False))
        return image @ text.T, probe["label"]

    def sample_images(self, seed, num):
        """One image: the image-by-caption score matrix of held-out captions (bright = high; diagonal = matches)."""
        scores, _ = self.scores(max(4, min(num, 32)))
        span = scores.max() - scores.min()
        normalised = (scores - scores.min()) / (span if span > 0 else 1.0)
        cell = 8
        heat = np.kron(normalised, np.ones((cell, cell)))
        rgb = np.stack([heat, heat ** 2, 1.0 - heat], axis=-1)
        return (rgb[None] * 2.0 - 1.0).astype(np.float32)

    def serving_functions(self, patch_size=None):
        cfg = self.config.model
        encoder = self.text_encoder

        @tf.function(input_signature=[tf.TensorSpec([None, cfg.doc_length], tf.int32, name="tokens")])
        def encode_text(tokens):
            return {"text_embedding": encoder(tokens, training=False)}

        # The exporter's required entry point; a text encoder has no image output.
        return {"generate_patch": encode_text, "encode_text": encode_text}

    def serving_description(self):
        from tfcoord.data.gawwn.captions import ALPHABET

        cfg = self.config.model
        return {"model_type": "text-encoder",
                "paper": "Learning Deep Representations of Fine-Grained Visual Descriptions (Reed et al., CVPR 2016)",
                "signatures": {"encode_text": {"doc": "caption tokens (1 + alphabet index of each lower-cased "
                                                      f"character, 0-padded to {cfg.doc_length}) -> text_embedding"},
                               "generate_patch": {"doc": "the same as encode_text"}},
                "alphabet": ALPHABET, "doc_length": cfg.doc_length, "embedding_dim": cfg.embedding_dim,
                "output": {"name": "text_embedding"}}
