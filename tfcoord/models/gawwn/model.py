"""GAWWN: learning what and where to draw (Reed et al., NeurIPS 2016), wired for the trainer.

What: a caption, embedded by the char-CNN-GRU text encoder (or a precomputed embedding);
a training sample's text is the mean of ``text.num_captions`` random captions of the image
(``num_holdout`` never used). Where: a bounding box (``model.conditioning="box"``) or K part
keypoints (``"keypoints"``). Optionally a conditional keypoint generator fills in parts the
user does not give (``model.keypoint_generator``).

The wiring of its parts: the networks (:mod:`~tfcoord.models.gawwn.networks`, the text
encoder), the training step (:mod:`~tfcoord.models.gawwn.training`), the sampler
(:mod:`~tfcoord.models.gawwn.sampling`), the sample grid (:mod:`~tfcoord.models.gawwn.drawing`)
and the serving signatures (:mod:`~tfcoord.models.gawwn.serving`).
"""

from __future__ import annotations

import functools

import numpy as np

from tfcoord.data.gawwn.parts import flip_order, part_names
from tfcoord.errors import UserError
from tfcoord.models.base import CoordinateGan
from tfcoord.models.gawwn import drawing, networks, serving
from tfcoord.models.gawwn.sampling import GawwnSampler
from tfcoord.models.text_encoder.networks import CharCnnGru, HashedNgramEncoder, ImageEncoder
from tfcoord.models.gawwn.training import GawwnTraining


class Gawwn(GawwnTraining, CoordinateGan):
    """GAWWN for the trainer, the generator CLI and the exporter; ``sampler`` draws with its networks."""

    name = "gawwn"

    def __init__(self, config):
        super().__init__(config)
        self.parts = part_names(config.model.parts)
        self.flip_order = np.asarray(flip_order(self.parts), np.int32)
        self.generator_ema = self.keypoint_completer = self.keypoint_critic = None
        self.text_encoder = self.image_encoder = self.sampler = None
        self._sample_elements = None
        if config.text.train_encoder and config.text.encoder != "char-cnn-gru":
            raise UserError(f"text.train_encoder needs text.encoder=char-cnn-gru ({config.text.encoder} is fixed)")

    @property
    def text_dim(self) -> int:
        return self.config.text.embedding_dim

    def image_size(self):
        return (self.config.model.image_size, self.config.model.image_size)

    def build_networks(self):
        with self.dtype_policy_scope():  # train.precision
            self._build_networks()
        self.sampler = GawwnSampler(self.config, self.sampling_generator, self.text_encoder, self.keypoint_completer)

    def _build_networks(self):
        cfg, text, K = self.config.model, self.config.text, len(self.parts)
        box = cfg.conditioning == "box"
        generator = (functools.partial(networks.box_generator, cfg, self.text_dim) if box
                     else functools.partial(networks.keypoint_generator, cfg, self.text_dim, K))
        self.generator = generator(name="generator")
        self.discriminator = (networks.box_discriminator(cfg, self.text_dim, name="discriminator") if box
                              else networks.keypoint_discriminator(cfg, self.text_dim, K, name="discriminator"))
        if self.config.optim.g_ema_decay:
            self.generator_ema = generator(name="generator_ema")
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
        self.build_optimizers()
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

    def _present(self, *names) -> dict:
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def network_items(self):
        return self._present("generator", "discriminator", "generator_ema", "keypoint_completer",
                             "keypoint_critic", "text_encoder", "image_encoder")

    def checkpoint_items(self):
        return {**self.network_items(),
                **self._present("g_optimizer", "d_optimizer", "kg_optimizer", "kd_optimizer", "text_optimizer")}

    @property
    def sampling_generator(self):
        """The generator that draws (generation, samples, export): the EMA copy when there is one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def sample_images(self, seed, num):
        """Rows of one evaluation element each: the real image, G at its box/parts, then the box/parts moved."""
        from tfcoord.data import first_elements

        rows, _ = drawing.grid_shape(num)
        if self._sample_elements is None or len(self._sample_elements["image"]) < rows:
            self._sample_elements = first_elements(self.config.data.source, image_size=self.image_size(), num=rows,
                                                   seed=self.config.train.seed)
        elements = {key: value[:rows] for key, value in self._sample_elements.items()}
        return drawing.sample_grid_images(self.sampler, elements, np.asarray(self.real_conditions(elements)), seed,
                                          num)

    # The serving module's functions take the model first: they are its methods.
    serving_functions = serving.serving_functions
    serving_description = serving.serving_description
