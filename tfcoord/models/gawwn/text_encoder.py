"""The char-CNN-GRU text encoder and its structured joint embedding (Reed et al., CVPR 2016).

GAWWN conditions on 1024-d embeddings of captions made by the "hybrid" char-CNN-RNN of
Reed, Akata, Lee and Schiele, "Learning Deep Representations of Fine-Grained Visual
Descriptions" (``reedscot/cvpr2016``, ``HybridCNN.lua`` + ``FixedGRU.lua``):

* one-hot characters (70-symbol alphabet, 201 characters) ->
  temporal conv k4 (384) ReLU, max-pool 3/3 -> conv k4 (512) ReLU, max-pool 3/3 ->
  conv k4 (256) ReLU, max-pool 3/2 -> 8 steps;
* a GRU over the 8 steps (``h_1 = tanh(W x_1)``, then update/reset gates,
  ``h_t = u * tanh(W x_t + U (r * h_{t-1})) + (1 - u) * h_{t-1}``), its last state;
* a linear map to the embedding.

Training (:func:`joint_embedding_loss`) is the symmetric structured joint embedding: for
each image, every text of *another* class must score at least 1 below its own text, and
vice versa, with scores ``phi(image) . psi(text)``. The official image side is fixed
GoogLeNet features; tfcoord trains a small CNN (:class:`ImageEncoder`) instead, since no
pretrained weights may be downloaded. The official training script initialises every parameter
U(-0.08, 0.08); that init leaves a freshly built encoder mapping every caption to
nearly the same vector (scores differ by ~1e-4) so the hinge loss cannot start; tfcoord uses
Glorot-uniform weights (orthogonal recurrent ones) and zero biases instead. ``keras.ops`` only.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcoord.data.gawwn.captions import ALPHABET_SIZE


def _kernel():
    return keras.initializers.GlorotUniform()


def steps_after_cnn(doc_length: int) -> int:
    """Time steps left after the three convolutions and poolings (201 characters -> 8)."""
    length = doc_length
    for pool, stride in ((3, 3), (3, 3), (3, 2)):
        length = (length - 3 - pool) // stride + 1  # conv k4 'valid', then max-pool
    return length


@keras.saving.register_keras_serializable(package="tfcoord")
class FixedGru(keras.layers.Layer):
    """Reed's ``FixedGRU`` over a fixed number of steps; returns the last hidden state."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        d, units = input_shape[-1], self.units
        # input -> (update, reset, candidate); hidden -> (update, reset); hidden -> candidate
        self.input_kernel = self.add_weight((d, 3 * units), _kernel(), name="input_kernel")
        self.input_bias = self.add_weight((3 * units,), "zeros", name="input_bias")
        self.gate_kernel = self.add_weight((units, 2 * units), keras.initializers.Orthogonal(), name="gate_kernel")
        self.gate_bias = self.add_weight((2 * units,), "zeros", name="gate_bias")
        self.candidate_kernel = self.add_weight((units, units), keras.initializers.Orthogonal(),
                                                name="candidate_kernel")
        self.candidate_bias = self.add_weight((units,), "zeros", name="candidate_bias")

    def call(self, sequence):
        """``sequence`` (B, T, d) -> (B, units)."""
        units = self.units
        projected = ops.einsum("btd,dk->btk", sequence, self.input_kernel) + self.input_bias
        hidden = ops.tanh(projected[:, 0, 2 * units:])
        for t in range(1, sequence.shape[1]):
            gates = ops.sigmoid(projected[:, t, :2 * units] + ops.matmul(hidden, self.gate_kernel) + self.gate_bias)
            update, reset = gates[:, :units], gates[:, units:]
            candidate = ops.tanh(projected[:, t, 2 * units:]
                                 + ops.matmul(reset * hidden, self.candidate_kernel) + self.candidate_bias)
            hidden = update * candidate + (1.0 - update) * hidden
        return hidden

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tfcoord")
class CharCnnGru(keras.layers.Layer):
    """Caption tokens (B, doc_length) int -> text embedding (B, embedding_dim).

    Args:
        embedding_dim: output size (1024 for the published CUB/MHP encoders).
        channels: widths of the three temporal convolutions (official 384, 512, 256).
        doc_length: characters per caption (201).

    Example:
        >>> from tfcoord.data.gawwn.captions import tokenize_all
        >>> encoder = CharCnnGru(64, (32, 32, 32))
        >>> encoder(tokenize_all(["a small bird with red wings."])).shape
        (1, 64)
    """

    def __init__(self, embedding_dim: int = 1024, channels=(384, 512, 256), doc_length: int = 201, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.channels = tuple(channels)
        self.doc_length = doc_length
        if steps_after_cnn(doc_length) < 1:
            raise ValueError(f"doc_length {doc_length} is too short for three convolutions and poolings")
        self.convs = [keras.layers.Conv1D(width, 4, padding="valid", kernel_initializer=_kernel(),
                                          name=f"char_conv_{i}")
                      for i, width in enumerate(self.channels, start=1)]
        self.gru = FixedGru(self.channels[-1], name="gru")
        self.projection = keras.layers.Dense(embedding_dim, kernel_initializer=_kernel(), name="projection")

    def build(self, input_shape):
        length, width = self.doc_length, ALPHABET_SIZE
        for conv, (pool, stride) in zip(self.convs, ((3, 3), (3, 3), (3, 2))):
            conv.build((None, length, width))
            length, width = (length - 3 - pool) // stride + 1, conv.filters
        self.gru.build((None, length, width))
        self.projection.build((None, width))

    def call(self, tokens):
        # Token 0 (padding, unknown character) is an all-zero column, as in the official one-hot.
        x = ops.one_hot(ops.cast(tokens, "int32") - 1, ALPHABET_SIZE)
        for conv, (pool, stride) in zip(self.convs, ((3, 3), (3, 3), (3, 2))):
            x = ops.max_pool(ops.relu(conv(x)), pool_size=pool, strides=stride, padding="valid")
        return self.projection(self.gru(x))

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "channels": self.channels,
                "doc_length": self.doc_length}


@keras.saving.register_keras_serializable(package="tfcoord")
class HashedNgramEncoder(keras.layers.Layer):
    """A fixed, training-free text encoder: caption tokens (B, L) -> (B, embedding_dim).

    Every character n-gram (n in ``ngram_sizes``, padding excluded) is hashed to an integer
    h < 65521, which selects a pseudo-random +-1 vector ``v_d(h) = +1 if (h a_d + b_d) mod 65521
    < 32760 else -1`` with per-dimension constants a_d, b_d fixed by ``seed``; the embedding is
    the sum of the caption's vectors divided by the square root of their count. Integer
    arithmetic only (exact on every backend and in TFLite, int32 never overflows).

    Long n-grams span word boundaries ("ed cro" only occurs in "red crown"), so colour-part
    bindings of the synthetic-bird captions are linearly readable and free text with the same
    words works at generation. Not in the paper: the default preset's stand-in for a
    pretrained char-CNN-GRU (``text.encoder=hashed-ngrams``).
    """

    PRIME = 65521

    def __init__(self, embedding_dim: int = 1024, ngram_sizes=(3, 6), seed: int = 2016, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim, self.ngram_sizes, self.seed = embedding_dim, tuple(ngram_sizes), seed
        import numpy as np

        rng = np.random.default_rng(seed)
        self._scale = rng.integers(1, 32768, embedding_dim).astype("int32")
        self._shift = rng.integers(0, self.PRIME, embedding_dim).astype("int32")

    def call(self, tokens):
        tokens = ops.cast(tokens, "int32")
        length = tokens.shape[1]
        scale = ops.convert_to_tensor(self._scale)
        shift = ops.convert_to_tensor(self._shift)
        total, count = 0.0, 0.0
        for n in self.ngram_sizes:
            windows = length - n + 1
            hashed = ops.zeros_like(tokens[:, :windows])
            valid = ops.ones_like(tokens[:, :windows])
            for k in range(n):
                char = tokens[:, k:k + windows]
                hashed = (hashed * 73 + char) % self.PRIME
                valid = valid * ops.cast(char > 0, "int32")
            bits = (ops.expand_dims(hashed, -1) * scale + shift) % self.PRIME < self.PRIME // 2
            signs = ops.cast(bits, "float32") * 2.0 - 1.0
            weight = ops.expand_dims(ops.cast(valid, "float32"), -1)
            total = total + ops.sum(signs * weight, axis=1)
            count = count + ops.sum(weight, axis=1)
        return total / ops.sqrt(ops.maximum(count, 1.0))

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "ngram_sizes": self.ngram_sizes,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfcoord")
class ImageEncoder(keras.layers.Layer):
    """The image side of the joint embedding: strided 4 x 4 convolutions, global mean, linear map.

    A stand-in for the fixed GoogLeNet features of the official training (see module docstring).
    """

    def __init__(self, embedding_dim: int = 1024, width: int = 64, image_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim, self.width, self.image_size = embedding_dim, width, image_size
        stages = max(1, (image_size // 4).bit_length() - 1)  # down to about 4 x 4
        self.convs = [keras.layers.Conv2D(width * min(2 ** i, 8), 4, strides=2, padding="same",
                                          kernel_initializer=_kernel(), name=f"image_conv_{i + 1}")
                      for i in range(stages)]
        self.projection = keras.layers.Dense(embedding_dim, kernel_initializer=_kernel(), name="projection")

    def build(self, input_shape):
        channels, size = 3, self.image_size
        for conv in self.convs:
            conv.build((None, size, size, channels))
            channels, size = conv.filters, (size + 1) // 2
        self.projection.build((None, channels))

    def call(self, images):
        x = images
        for conv in self.convs:
            x = ops.leaky_relu(conv(x), 0.2)
        return self.projection(ops.mean(x, axis=(1, 2)))

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "width": self.width,
                "image_size": self.image_size}


def joint_embedding_loss(image_features, text_features, labels, all_image_features=None, all_text_features=None,
                         all_labels=None, center: bool = False):
    """Per-example symmetric structured joint embedding loss and retrieval accuracy.

    For example i with score ``s(a, b) = a . b``:
    ``sum_{j: y_j != y_i} max(0, 1 + s(img_i, txt_j) - s(img_i, txt_i))
    + max(0, 1 + s(txt_i, img_j) - s(txt_i, img_i))``, divided by the number of candidates
    (the official loss divides by batch x classes). The ``all_*`` arguments are the
    candidates (default: this batch); under a distribution strategy pass every replica's
    features (``all_gather``), so that each replica count sees the same negatives.
    ``center`` subtracts the candidates' mean from each side's features first (not in the
    paper; see :class:`tfcoord.models.text_encoder.config.TextEncoderLossConfig`).

    Returns:
        (loss (B,), correct (B,) 1.0 where the image's best-scoring text has its class).
    """
    all_image_features = image_features if all_image_features is None else all_image_features
    all_text_features = text_features if all_text_features is None else all_text_features
    all_labels = labels if all_labels is None else all_labels
    if center:
        image_mean = ops.mean(all_image_features, axis=0, keepdims=True)
        text_mean = ops.mean(all_text_features, axis=0, keepdims=True)
        image_features, all_image_features = image_features - image_mean, all_image_features - image_mean
        text_features, all_text_features = text_features - text_mean, all_text_features - text_mean
    own = ops.sum(image_features * text_features, axis=-1, keepdims=True)  # (B, 1)
    image_vs_texts = ops.matmul(image_features, ops.transpose(all_text_features))  # (B, N)
    text_vs_images = ops.matmul(text_features, ops.transpose(all_image_features))
    other_class = ops.cast(ops.not_equal(ops.expand_dims(labels, 1), ops.expand_dims(all_labels, 0)), own.dtype)
    hinge = ops.relu(1.0 + image_vs_texts - own) + ops.relu(1.0 + text_vs_images - own)
    count = ops.cast(ops.shape(all_labels)[0], own.dtype)
    loss = ops.sum(hinge * other_class, axis=-1) / count
    best = ops.argmax(image_vs_texts, axis=-1)
    correct = ops.cast(ops.equal(ops.take(all_labels, best), labels), own.dtype)
    return loss, correct
