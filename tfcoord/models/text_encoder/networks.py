"""The char-CNN-RNN text encoder and the image encoder (Reed et al., CVPR 2016).

GAWWN conditions on 1024-d embeddings of captions made by the "hybrid" char-CNN-RNN of
Reed, Akata, Lee and Schiele, "Learning Deep Representations of Fine-Grained Visual
Descriptions". The published CUB encoder that GAN-INT-CLS and GAWWN use is
``lm_sje_nc4_cub_hybrid_gru18_a1_c512_0.00070_1_10_trainvalids.txt_iter30000.t7``
(``reedscot/icml2016@db3f0c6`` ``CONFIG`` line 4): ``HybridCNNLong`` + ``FixedGRU`` over 18 steps,
``avg = 1``, ``cnn_dim = 512``, built so by ``main_txt_coco.lua`` lines 75-76 and 85
(``DocumentCNN.cnn(alphabet_size, 1024, 0, 1, 512)``). :class:`CharCnnGru`:

* one-hot characters (70-symbol alphabet, ``reedscot/cvpr2016@7988b42``
  ``util/MultimodalMinibatchLoaderCaption.lua`` lines 13-18; 201 characters,
  ``train_sje_hybrid.lua`` line 20) ->
  temporal conv k4 (384) ReLU, max-pool 3/3 -> conv k4 (512) ReLU, max-pool 3/3 ->
  conv k4 (``cnn_dim`` = 512) ReLU (icml2016 ``modules/HybridCNNLong.lua`` lines 13-22:
  201 -> 198 -> 66 -> 63 -> 21 -> 18 steps; ``nn.Threshold()`` is a ReLU). ``final_pool=True``
  adds cvpr2016 ``modules/HybridCNN.lua``'s max-pool 3/2 (line 23; 18 -> 8 steps);
* a GRU over the steps (icml2016 ``modules/FixedGRU.lua``: ``h_1 = tanh(W x_1)`` line 68, then
  ``u = sigmoid(W_u x_t + U_u h_{t-1})``, ``r = sigmoid(W_r x_t + U_r h_{t-1})``,
  ``h_t = u * tanh(W x_t + U (r * h_{t-1})) + (1 - u) * h_{t-1}`` lines 53-66, weights shared over
  time lines 35-51), the **mean of its hidden states** over time (``avg == 1``, lines 72-78;
  ``average_states=False``: the last state, line 80);
* a linear map to the embedding (``HybridCNNLong.lua`` line 26, ``Linear(cnn_dim, emb_dim)``,
  dropout 0).

Training: :mod:`tfcoord.models.text_encoder.loss`. A GAWWN run builds these layers too (its
``text.encoder``), or takes them trained from a text-encoder run. The official image side is
fixed 1024-d GoogLeNet features (``-image_noop 1``: the image encoder is the identity,
``modules/ImageEncoder.lua`` lines 9-10); the text-encoder model takes such features from a
file, or trains a small CNN (:class:`ImageEncoder`) on synthetic data.
The official training script initialises every parameter U(-0.08, 0.08) (line 112); that init
leaves a freshly built encoder mapping every caption to nearly the same vector (scores differ
by ~1e-4) so the hinge loss cannot start; tfcoord uses Glorot-uniform weights (orthogonal
recurrent ones) and zero biases instead. ``keras.ops`` only.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tfcoord.data.gawwn.captions import ALPHABET_SIZE

# (pool size, stride) after each convolution: cvpr2016 HybridCNN.lua lines 15, 19, 23 (the last one is
# absent from icml2016 HybridCNNLong.lua, the published CUB encoder).
POOLS = ((3, 3), (3, 3), (3, 2))
KERNEL_SIZE = 4  # every TemporalConvolution(in, out, 4) of HybridCNN*.lua (lines 13, 17, 21)


def _kernel():
    return keras.initializers.GlorotUniform()


def _pools(final_pool: bool):
    return POOLS if final_pool else POOLS[:2] + (None,)


def steps_after_cnn(doc_length: int, final_pool: bool = True) -> int:
    """Time steps left after the three convolutions and poolings (of 201 characters: 8 with ``final_pool``, 18
    without, the published CUB encoder's ``gru18``)."""
    length = doc_length
    for pool in _pools(final_pool):
        length = length - KERNEL_SIZE + 1  # 'valid' convolution
        if pool is not None:
            length = (length - pool[0]) // pool[1] + 1
    return length


@keras.saving.register_keras_serializable(package="tfcoord")
class FixedGru(keras.layers.Layer):
    """Reed's ``FixedGRU`` over a fixed number of steps: the mean (or last) of its hidden states."""

    def __init__(self, units: int, average_states: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.average_states = average_states

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
        total = hidden
        for t in range(1, sequence.shape[1]):
            gates = ops.sigmoid(projected[:, t, :2 * units] + ops.matmul(hidden, self.gate_kernel) + self.gate_bias)
            update, reset = gates[:, :units], gates[:, units:]
            candidate = ops.tanh(projected[:, t, 2 * units:]
                                 + ops.matmul(reset * hidden, self.candidate_kernel) + self.candidate_bias)
            hidden = update * candidate + (1.0 - update) * hidden
            total = total + hidden
        return total / sequence.shape[1] if self.average_states else hidden


@keras.saving.register_keras_serializable(package="tfcoord")
class CharCnnGru(keras.layers.Layer):
    """Caption tokens (B, doc_length) int -> text embedding (B, embedding_dim).

    Args:
        embedding_dim: output size (1024 for the published CUB/MHP encoders).
        channels: widths of the three temporal convolutions (published CUB encoder 384, 512, 512;
            the third is ``cnn_dim``, whose default in ``HybridCNN*.lua`` is 256).
        doc_length: characters per caption (201).
        final_pool: max-pool 3/2 after the third convolution (cvpr2016 ``HybridCNN``, 8 steps);
            the published CUB encoder (``HybridCNNLong``, 18 steps) has none.
        average_states: the mean of the GRU's hidden states over time (``avg = 1``, the published
            encoder's ``a1``); False: its last state.

    Example:
        >>> from tfcoord.data.gawwn.captions import tokenize_all
        >>> encoder = CharCnnGru(64, (32, 32, 32))
        >>> encoder(tokenize_all(["a small bird with red wings."])).shape
        (1, 64)
    """

    def __init__(self, embedding_dim: int = 1024, channels=(384, 512, 512), doc_length: int = 201,
                 final_pool: bool = False, average_states: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.channels = tuple(channels)
        self.doc_length = doc_length
        self.final_pool = bool(final_pool)
        self.average_states = bool(average_states)
        if steps_after_cnn(doc_length, self.final_pool) < 1:
            raise ValueError(f"doc_length {doc_length} is too short for three convolutions and poolings")
        self.convs = [keras.layers.Conv1D(width, KERNEL_SIZE, padding="valid", kernel_initializer=_kernel(),
                                          name=f"char_conv_{i}")
                      for i, width in enumerate(self.channels, start=1)]
        self.gru = FixedGru(self.channels[-1], self.average_states, name="gru")
        self.projection = keras.layers.Dense(embedding_dim, kernel_initializer=_kernel(), name="projection")

    @property
    def steps(self) -> int:
        """Time steps the GRU runs over (18 for the published CUB encoder)."""
        return steps_after_cnn(self.doc_length, self.final_pool)

    def build(self, input_shape):
        width = ALPHABET_SIZE
        for conv in self.convs:
            conv.build((None, None, width))
            width = conv.filters
        self.gru.build((None, self.steps, width))
        self.projection.build((None, width))

    def call(self, tokens):
        # Token 0 (padding, unknown character) is an all-zero column, as in the official one-hot.
        x = ops.one_hot(ops.cast(tokens, "int32") - 1, ALPHABET_SIZE)
        for conv, pool in zip(self.convs, _pools(self.final_pool)):
            x = ops.relu(conv(x))  # nn.Threshold() = ReLU
            if pool is not None:
                x = ops.max_pool(x, pool_size=pool[0], strides=pool[1], padding="valid")
        return self.projection(self.gru(x))


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
