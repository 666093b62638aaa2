"""GAWWN's sampler: latents, caption embeddings, and images drawn for a box or parts (eval mode)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfcoord.data.gawwn.captions import known_characters, tokenize_all
from tfcoord.errors import UserError
from tfcoord.models.gawwn.blocks import keypoint_maps


def check_boxes(boxes) -> np.ndarray:
    """(N, 4) ymin, xmin, ymax, xmax inside [0, 1] with positive size, else a UserError."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not np.all(np.isfinite(boxes)) or boxes.min() < 0 or boxes.max() > 1:
        raise UserError("boxes must lie inside the image: every coordinate in [0, 1]")
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise UserError("boxes must have a positive width and height")
    return boxes


class GawwnSampler:
    """Draws with a GAWWN run's networks: ``generator`` (G, or its EMA copy), ``text_encoder`` and
    ``keypoint_completer`` (either may be None), for the run's ``config``; ``Gawwn.sampler`` is one."""

    def __init__(self, config, generator, text_encoder=None, keypoint_completer=None):
        self.config, self.generator = config, generator
        self.text_encoder, self.keypoint_completer = text_encoder, keypoint_completer
        self._functions = {}

    def latents(self, seed: int, num: int) -> np.ndarray:
        """z ~ N(0, I)^z_dim for ``num`` images, deterministic for ``seed``."""
        return np.random.default_rng(seed).standard_normal((num, self.config.model.z_dim)).astype("float32")

    def _call(self, key, fn, *inputs, dtype=np.float32) -> np.ndarray:
        """``fn`` (traced once per ``key``) on the inputs as ``dtype`` arrays."""
        if key not in self._functions:
            self._functions[key] = tf.function(fn, reduce_retracing=True)
        return np.array(self._functions[key](*(np.asarray(x, dtype) for x in inputs)))

    def encode_tokens(self, tokens) -> np.ndarray:
        """(N, doc_length) caption tokens -> (N, D) embeddings."""
        if self.text_encoder is None:
            raise UserError("this run was trained on precomputed text embeddings and has no text encoder; pass "
                            "--embedding FILE.npy, or train with text.encoder=char-cnn-gru (or text.encoder_run)")
        return self._call("encode", lambda t: self.text_encoder(t, training=False), tokens, dtype=np.int32)

    def embed_captions(self, captions) -> np.ndarray:
        """The mean embedding (D,) of one or more free-text captions (the paper averages any number)."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        for caption in captions:
            if not known_characters(caption):
                raise UserError(f"caption {caption!r} has no letters, digits or punctuation the text encoder knows")
        return self.encode_tokens(tokenize_all(captions, self.config.text.doc_length)).mean(axis=0)

    def data_text(self, elements) -> np.ndarray:
        """Deterministic text of data elements: the mean of their first usable captions."""
        text = self.config.text
        count = np.maximum(elements["num_captions"] - text.num_holdout, 1)
        k = np.minimum(count, text.num_captions)
        if text.encoder == "precomputed":
            embeddings = elements["caption_embeddings"]
        else:
            tokens = elements["captions"]
            embeddings = self.encode_tokens(tokens.reshape(-1, tokens.shape[-1])).reshape(
                tokens.shape[0], tokens.shape[1], -1)
        return np.stack([embeddings[i, :k[i]].mean(axis=0) for i in range(len(k))]).astype("float32")

    def generate_from_box(self, z, text_embedding, boxes) -> np.ndarray:
        """Images (N, S, S, 3) in [-1, 1]: G(z, t, box) in eval mode; boxes (ymin, xmin, ymax, xmax)."""
        self._require("box")
        return self._call("box", lambda z, t, b: self.generator([z, t, b], training=False), z, text_embedding,
                          check_boxes(boxes))

    def generate_from_keypoints(self, z, text_embedding, keypoints) -> np.ndarray:
        """Images from keypoints (N, K, 3) = (x, y, visibility) in [0, 1]."""
        self._require("keypoints")
        return self._call("keypoints", lambda z, t, k: self.generator([z, t, keypoint_maps(k)], training=False),
                          z, text_embedding, keypoints)

    def complete_keypoints(self, z, text_embedding, keypoints) -> np.ndarray:
        """G_k in eval mode: given parts (visibility 1) unchanged, the others generated in [0, 1]."""
        if self.keypoint_completer is None:
            raise UserError("this run has no keypoint generator (model.keypoint_generator=false); give every part")
        return self._call("complete", lambda z, t, k: self.keypoint_completer([z, t, k], training=False),
                          z, text_embedding, keypoints)

    def generate(self, z, text_embedding, conditions) -> np.ndarray:
        """Images for this run's conditioning: ``conditions`` are boxes (N, 4) or keypoints (N, K, 3)."""
        if self.config.model.conditioning == "box":
            return self.generate_from_box(z, text_embedding, conditions)
        return self.generate_from_keypoints(z, text_embedding, conditions)

    def _require(self, conditioning):
        if self.config.model.conditioning != conditioning:
            raise UserError(f"this run is conditioned on {self.config.model.conditioning}, not {conditioning} "
                            f"(model.conditioning)")
