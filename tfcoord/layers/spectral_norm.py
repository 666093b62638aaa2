"""Spectrally normalised convolution and dense layers.

Spectral normalisation (Miyato et al., "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018) divides a kernel by an estimate of its largest
singular value σ(W), obtained with one power iteration per training step from a
persistent vector `u`:

    W_mat = reshape(W, (-1, out))            # (kh·kw·in, out) for a conv, as COCO-GAN
    v  = l2n(u · W_matᵀ)
    u' = l2n(v · W_mat)
    σ  = v · W_mat · u'ᵀ
    output = layer(x; W/σ) + b

with `l2n(a) = a / (‖a‖ + 1e-12)` (COCO-GAN's epsilon placement).

Unlike `keras.layers.SpectralNormalization` (tensorflow.md P14) the raw kernel is
kept and W/σ is formed in `call`, so gradients flow through σ; `u` is advanced only
in training mode, and a caller that evaluates the layer several times per step
(WGAN-GP) can advance it once with `update_u=False` on the other calls. `u` is a
non-trainable `(1, out)` weight with `aggregation="mean"` so that it stays equal on
all replicas of a `MirroredStrategy` (P13). The weights are named `w`, `b`, `u`, the
names and layouts of the official COCO-GAN TF1 checkpoints (models.md §1.13).

An eval-mode call repeats the power iteration and the division by σ, which for a
served generator means reading every kernel four times per request.
`use_inference_kernel(k)` hands the layer W/σ(W) computed once (the exporter passes a
variable, see `export.saved_model.frozen_spectral_norm`); eval-mode calls then
convolve with it directly, and training-mode calls still use `w` and `u`.
"""

import keras
from keras import ops

_L2_EPSILON = 1e-12


def _l2_normalize(a):
    # COCO-GAN adds epsilon to the norm, not to the squared norm as tf.math.l2_normalize does.
    return a / (ops.sqrt(ops.sum(ops.square(a))) + _L2_EPSILON)


def power_iteration(kernel_matrix, u, grad_through_uv=False):
    """One power iteration on `kernel_matrix` (n, out) from `u` (1, out).

    Returns `(sigma, u_next)`. With `grad_through_uv=False` (PyTorch semantics) u and
    v are constants for differentiation and dσ/dW = vᵀu'; with `True` the iteration is
    differentiated as in the official TF1 COCO-GAN code (models.md §1.11, Q10).
    """
    v = _l2_normalize(ops.matmul(u, ops.transpose(kernel_matrix)))
    if not grad_through_uv:
        v = ops.stop_gradient(v)
    v_times_w = ops.matmul(v, kernel_matrix)
    u_next = _l2_normalize(v_times_w)
    if not grad_through_uv:
        u_next = ops.stop_gradient(u_next)
    sigma = ops.sum(v_times_w * u_next)
    return sigma, u_next


class _SpectralNormalized(keras.layers.Layer):
    """Weights `w`, `b`, `u` and the normalised kernel shared by SNConv2D and SNDense."""

    def __init__(self, use_bias, kernel_initializer, grad_through_uv, **kwargs):
        super().__init__(**kwargs)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.grad_through_uv = grad_through_uv
        self._inference_kernel = None

    def _build_sn_weights(self, kernel_shape):
        out = kernel_shape[-1]
        self.kernel = self.add_weight(shape=kernel_shape, initializer=self.kernel_initializer, name="w")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(out,), initializer="zeros", name="b")
        # Official: tf.truncated_normal_initializer() (stddev 1); the scale is irrelevant.
        self.u = self.add_weight(shape=(1, out), initializer=keras.initializers.TruncatedNormal(stddev=1.0),
                                 trainable=False, aggregation="mean", name="u",
                                 autocast=False)  # the power iteration runs in the variable dtype (float32)

    def _power_iteration(self):
        kernel = ops.convert_to_tensor(self.kernel)
        kernel_matrix = ops.reshape(ops.cast(kernel, self.u.dtype), (-1, kernel.shape[-1]))
        sigma, u_next = power_iteration(kernel_matrix, self.u, self.grad_through_uv)
        return kernel, sigma, u_next

    def _normalized_kernel(self, training, update_u):
        if not training and self._inference_kernel is not None:
            return ops.cast(self._inference_kernel, self.compute_dtype)  # float16 under mixed precision
        kernel, sigma, u_next = self._power_iteration()
        if training and update_u:
            self.u.assign(u_next)
        return kernel / ops.cast(sigma, kernel.dtype)

    def normalized_kernel(self):
        """W/σ(W) with σ from one power iteration on the current u: the kernel of an eval-mode call."""
        kernel, sigma, _ = self._power_iteration()
        return kernel / ops.cast(sigma, kernel.dtype)

    def use_inference_kernel(self, kernel):
        """Make eval-mode calls use ``kernel`` (W/σ(W) computed once) instead of the power iteration.

        ``kernel`` has the shape of ``w``, e.g. a variable holding ``normalized_kernel()``;
        ``None`` restores the default. Training-mode calls are not affected. The kernel is
        not a weight of the layer (checkpoints and ``weights`` are unchanged): it is kept
        current by whoever passes it, e.g. for the length of an export.
        """
        if kernel is not None and tuple(kernel.shape) != tuple(self.kernel.shape):
            raise ValueError(f"{self.name}: the inference kernel must have the shape of w, "
                             f"{tuple(self.kernel.shape)}; got {tuple(kernel.shape)}")
        # Set past Keras's and TensorFlow's attribute tracking: a variable here must not become
        # a weight of the layer (a built layer refuses new state, and checkpoints would change).
        object.__setattr__(self, "_inference_kernel", kernel)

    def sigma(self):
        """The σ(W) the next forward pass divides by (one iteration from the current u)."""
        return self._power_iteration()[1]

    def _add_bias(self, y):
        return y + self.bias if self.use_bias else y

    def get_config(self):
        return {**super().get_config(), "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "grad_through_uv": self.grad_through_uv}


@keras.saving.register_keras_serializable(package="tfcoord")
class SNConv2D(_SpectralNormalized):
    """2-D convolution with a spectrally normalised kernel (Miyato et al. 2018).

    Computes `conv(x, W/σ(W)) + b`, σ estimated by one power iteration on W reshaped
    to `(kh·kw·in, filters)` (the SN-Conv of COCO-GAN, models.md §1.4).

    Args:
        filters: number of output channels.
        kernel_size: int or pair `(kh, kw)`.
        strides: int or pair.
        padding: `"same"` or `"valid"`.
        use_bias: add the bias `b`.
        kernel_initializer: initializer of the raw kernel `w`; the default
            `"he_normal"` is a truncated normal of standard deviation sqrt(2/fan_in),
            COCO-GAN's conv initialisation.
        grad_through_uv: differentiate through the power iteration (official TF1
            COCO-GAN, quirk Q10) instead of treating u and v as constants.

    Call arguments:
        x: `(B, H, W, C)`.
        training: advance `u` (the power iteration state) when True.
        update_u: set False to keep `u` on a training-mode call, e.g. all but one of
            the discriminator evaluations of a WGAN-GP step.

    Example:
        >>> conv = SNConv2D(64, 3)
        >>> y = conv(keras.random.normal((2, 8, 8, 3)), training=True)
    """

    def __init__(self, filters, kernel_size, strides=1, padding="same", use_bias=True,
                 kernel_initializer="he_normal", grad_through_uv=False, **kwargs):
        super().__init__(use_bias, kernel_initializer, grad_through_uv, **kwargs)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        self.filters, self.kernel_size, self.strides, self.padding = filters, kernel_size, strides, padding

    def build(self, input_shape):
        kh, kw = _pair(self.kernel_size)
        self._build_sn_weights((kh, kw, input_shape[-1], self.filters))

    def call(self, x, training=False, update_u=True):
        kernel = self._normalized_kernel(training, update_u)
        y = ops.conv(x, kernel, strides=_pair(self.strides), padding=self.padding)
        return self._add_bias(y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding}


@keras.saving.register_keras_serializable(package="tfcoord")
class SNDense(_SpectralNormalized):
    """Fully connected layer with a spectrally normalised kernel (Miyato et al. 2018).

    Computes `x · W/σ(W) + b` over the last axis of `x`, W of shape `(in, units)`
    (COCO-GAN's SN-Linear, models.md §1.4).

    Args:
        units: output features.
        use_bias: add the bias `b`.
        kernel_initializer: initializer of the raw kernel `w`; default
            `"lecun_normal"`, a truncated normal of standard deviation sqrt(1/fan_in)
            (tfcoord's default; the official code falls back to glorot-uniform, Q8).
        grad_through_uv: differentiate through the power iteration (quirk Q10).

    Call arguments:
        x: `(..., in)`.
        training: advance `u` when True.
        update_u: set False to keep `u` on a training-mode call.

    Example:
        >>> dense = SNDense(128)
        >>> y = dense(keras.random.normal((4, 130)), training=True)
    """

    def __init__(self, units, use_bias=True, kernel_initializer="lecun_normal", grad_through_uv=False, **kwargs):
        super().__init__(use_bias, kernel_initializer, grad_through_uv, **kwargs)
        self.units = units

    def build(self, input_shape):
        self._build_sn_weights((input_shape[-1], self.units))

    def call(self, x, training=False, update_u=True):
        kernel = self._normalized_kernel(training, update_u)
        return self._add_bias(ops.matmul(x, kernel))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def spectral_norm_layers(network) -> list:
    """The spectrally normalised layers of a Keras layer or model, itself included, depth first."""
    return [layer for layer in network._flatten_layers(include_self=True, recursive=True)
            if isinstance(layer, _SpectralNormalized)]


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)
