"""pytorch-fid's FID Inception network in Keras: the feature extractor behind the papers' FIDs.

The published FIDs (COCO-GAN, CIPS, InfinityGAN) come from the Inception graph of TTUR's
FID code (``inception-2015-12-05``), which pytorch-fid (Seitzer, ``pytorch_fid/inception.py``)
ports to PyTorch as ``pt_inception-2015-12-05-6726825d.pth``. This module rebuilds that
network with Keras layers and loads that file without PyTorch (:mod:`tfcoord.torch_pickle`),
so ``--inception-weights pt_inception-2015-12-05-6726825d.pth`` gives paper-comparable FIDs.

The network is torchvision's Inception3 stem and Mixed_5b..Mixed_7c (1008-class head and
aux classifier removed, 2048-d global average pool = "pool3"), with pytorch-fid's patches
that reproduce the TensorFlow graph:

* the pooling branch of ``Mixed_5b..5d`` (FIDInceptionA), ``Mixed_6b..6e`` (FIDInceptionC)
  and ``Mixed_7b`` (FIDInceptionE_1) averages over the window *without* the zero padding
  (TensorFlow's SAME average pool; torch ``count_include_pad=False``);
* ``Mixed_7c`` (FIDInceptionE_2) max-pools in that branch (a quirk of the 2015 graph);
* every ``BasicConv2d`` is a bias-free convolution, BatchNorm with ``eps=0.001``, ReLU.

Where float32 rounding can go two ways, the port rounds as torch does (the bilinear
resize's source positions, the BatchNorm fold): the network magnifies such differences
enough that only then do its features stay within 1e-4 of pytorch-fid's.

Input pipeline (pytorch-fid's ``resize_input=True, normalize_input=True``): images in
[0, 1] are resized to 299 x 299 bilinearly with ``align_corners=False`` and no antialiasing,
then mapped to [-1, 1] by ``2x - 1``. tfcoord's images are [-1, 1] floats; they are
quantised to 8 bits and divided by 255, exactly what pytorch-fid does to saved PNGs.
"""

from __future__ import annotations

import keras
import numpy as np

from tfcoord.errors import UserError
from tfcoord.metrics.inception import FEATURE_DIM, INPUT_SIZE, file_sha256

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}"
BATCH_NORM_EPSILON = 1e-3  # torchvision's BasicConv2d; TensorFlow's graph used the same
# Tensors in the file that the pool3 features do not use: the 1008-class head, and the
# BatchNorm step counters (absent from files saved before PyTorch 0.4.1).
UNUSED_SUFFIXES = (".num_batches_tracked",)
UNUSED_NAMES = ("fc.weight", "fc.bias")


class BasicConv2d(keras.layers.Layer):
    """torchvision's ``BasicConv2d``: convolution without bias, BatchNorm (eps 0.001), ReLU.

    Args:
        filters: output channels.
        kernel_size: int or (height, width).
        strides: int.
        padding: ``"same"`` where torch pads ``kernel // 2`` (stride 1, odd kernels: the same
            thing), ``"valid"`` where it does not pad.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.padding = filters, kernel_size, strides, padding
        # Every weight is loaded from the file; zeros only make building cheap.
        self.conv = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                                        kernel_initializer="zeros", name="conv")
        self.bn = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name="bn")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs):
        # BatchNorm in inference as torch's kernels fold it: per channel, scale = gamma *
        # (1 / sqrt(var + eps)) and shift = beta - mean * scale. Keras' layer multiplies by
        # TensorFlow's rsqrt instead, which is 1-2 float32 ulps off 1 / sqrt in a quarter of the
        # channels; this ill-conditioned network turns that into 7e-5 of the largest pool3
        # feature on the official fixture.
        bn = self.bn
        scale = bn.gamma * (1.0 / keras.ops.sqrt(bn.moving_variance + bn.epsilon))
        shift = bn.beta - bn.moving_mean * scale
        return keras.ops.relu(self.conv(inputs) * scale + shift)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding}


class InceptionBlock(keras.layers.Layer):
    """A Mixed_* block: parallel branches of :class:`BasicConv2d` concatenated on channels.

    ``convs`` maps pytorch-fid's attribute names (``branch1x1``, ``branch5x5_2``, ...) to the
    layers, so the state-dict key of a weight is ``<block name>.<attribute>.conv.weight``.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.convs = {}

    def add_conv(self, attribute, filters, kernel_size, strides=1, padding="same"):
        self.convs[attribute] = BasicConv2d(filters, kernel_size, strides, padding, name=attribute)

    def conv(self, inputs, *attributes):
        """``inputs`` through the named convolutions, one after the other."""
        for attribute in attributes:
            inputs = self.convs[attribute](inputs)
        return inputs

    def build(self, input_shape):
        # Weights exist (for loading) before the first call: run the block once symbolically.
        self.compute_output_spec(keras.KerasTensor(input_shape))
        self.built = True


def _pool_3x3_stride_1(inputs, pool: str):
    # Keras' "same" average pool divides by the number of real pixels in the window, like
    # TensorFlow's graph and torch's count_include_pad=False; the max pool pads with -inf.
    if pool == "avg":
        return keras.ops.average_pool(inputs, 3, strides=1, padding="same")
    return keras.ops.max_pool(inputs, 3, strides=1, padding="same")


class FIDInceptionA(InceptionBlock):
    """Mixed_5b..5d: 1x1, 5x5, double 3x3 and an average-pool branch (padding excluded)."""

    def __init__(self, pool_features, **kwargs):
        super().__init__(**kwargs)
        self.pool_features = pool_features
        self.add_conv("branch1x1", 64, 1)
        self.add_conv("branch5x5_1", 48, 1)
        self.add_conv("branch5x5_2", 64, 5)
        self.add_conv("branch3x3dbl_1", 64, 1)
        self.add_conv("branch3x3dbl_2", 96, 3)
        self.add_conv("branch3x3dbl_3", 96, 3)
        self.add_conv("branch_pool", pool_features, 1)

    def call(self, x):
        branch5x5 = self.conv(x, "branch5x5_1", "branch5x5_2")
        branch3x3dbl = self.conv(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3")
        branch_pool = self.conv(_pool_3x3_stride_1(x, "avg"), "branch_pool")
        return keras.ops.concatenate([self.conv(x, "branch1x1"), branch5x5, branch3x3dbl, branch_pool], axis=-1)

    def get_config(self):
        return {**super().get_config(), "pool_features": self.pool_features}


class InceptionB(InceptionBlock):
    """Mixed_6a (torchvision's InceptionB, unpatched): 35x35 -> 17x17 by stride-2 branches and a max pool."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_conv("branch3x3", 384, 3, strides=2, padding="valid")
        self.add_conv("branch3x3dbl_1", 64, 1)
        self.add_conv("branch3x3dbl_2", 96, 3)
        self.add_conv("branch3x3dbl_3", 96, 3, strides=2, padding="valid")

    def call(self, x):
        branch3x3dbl = self.conv(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3")
        branch_pool = keras.ops.max_pool(x, 3, strides=2, padding="valid")
        return keras.ops.concatenate([self.conv(x, "branch3x3"), branch3x3dbl, branch_pool], axis=-1)


class FIDInceptionC(InceptionBlock):
    """Mixed_6b..6e: factorised 7x7 branches (1x7 and 7x1) and an average-pool branch (padding excluded)."""

    def __init__(self, channels_7x7, **kwargs):
        super().__init__(**kwargs)
        self.channels_7x7 = channels_7x7
        c7 = channels_7x7
        self.add_conv("branch1x1", 192, 1)
        self.add_conv("branch7x7_1", c7, 1)
        self.add_conv("branch7x7_2", c7, (1, 7))
        self.add_conv("branch7x7_3", 192, (7, 1))
        self.add_conv("branch7x7dbl_1", c7, 1)
        self.add_conv("branch7x7dbl_2", c7, (7, 1))
        self.add_conv("branch7x7dbl_3", c7, (1, 7))
        self.add_conv("branch7x7dbl_4", c7, (7, 1))
        self.add_conv("branch7x7dbl_5", 192, (1, 7))
        self.add_conv("branch_pool", 192, 1)

    def call(self, x):
        branch7x7 = self.conv(x, "branch7x7_1", "branch7x7_2", "branch7x7_3")
        branch7x7dbl = self.conv(x, *(f"branch7x7dbl_{index}" for index in range(1, 6)))
        branch_pool = self.conv(_pool_3x3_stride_1(x, "avg"), "branch_pool")
        return keras.ops.concatenate([self.conv(x, "branch1x1"), branch7x7, branch7x7dbl, branch_pool], axis=-1)

    def get_config(self):
        return {**super().get_config(), "channels_7x7": self.channels_7x7}


class InceptionD(InceptionBlock):
    """Mixed_7a (torchvision's InceptionD, unpatched): 17x17 -> 8x8 by stride-2 branches and a max pool."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_conv("branch3x3_1", 192, 1)
        self.add_conv("branch3x3_2", 320, 3, strides=2, padding="valid")
        self.add_conv("branch7x7x3_1", 192, 1)
        self.add_conv("branch7x7x3_2", 192, (1, 7))
        self.add_conv("branch7x7x3_3", 192, (7, 1))
        self.add_conv("branch7x7x3_4", 192, 3, strides=2, padding="valid")

    def call(self, x):
        branch3x3 = self.conv(x, "branch3x3_1", "branch3x3_2")
        branch7x7x3 = self.conv(x, *(f"branch7x7x3_{index}" for index in range(1, 5)))
        branch_pool = keras.ops.max_pool(x, 3, strides=2, padding="valid")
        return keras.ops.concatenate([branch3x3, branch7x7x3, branch_pool], axis=-1)


class FIDInceptionE(InceptionBlock):
    """Mixed_7b (``pool="avg"``, FIDInceptionE_1) and Mixed_7c (``pool="max"``, FIDInceptionE_2).

    Branches: 1x1; 1x1 then parallel 1x3 and 3x1; 1x1, 3x3 then parallel 1x3 and 3x1; a
    pool then 1x1. The 2015 graph max-pools in Mixed_7c's pool branch where the paper
    averages; pytorch-fid keeps that, and so must any port that wants the same numbers.
    """

    def __init__(self, pool="avg", **kwargs):
        super().__init__(**kwargs)
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.add_conv("branch1x1", 320, 1)
        self.add_conv("branch3x3_1", 384, 1)
        self.add_conv("branch3x3_2a", 384, (1, 3))
        self.add_conv("branch3x3_2b", 384, (3, 1))
        self.add_conv("branch3x3dbl_1", 448, 1)
        self.add_conv("branch3x3dbl_2", 384, 3)
        self.add_conv("branch3x3dbl_3a", 384, (1, 3))
        self.add_conv("branch3x3dbl_3b", 384, (3, 1))
        self.add_conv("branch_pool", 192, 1)

    def call(self, x):
        branch3x3 = self.conv(x, "branch3x3_1")
        branch3x3 = keras.ops.concatenate([self.conv(branch3x3, "branch3x3_2a"),
                                           self.conv(branch3x3, "branch3x3_2b")], axis=-1)
        branch3x3dbl = self.conv(x, "branch3x3dbl_1", "branch3x3dbl_2")
        branch3x3dbl = keras.ops.concatenate([self.conv(branch3x3dbl, "branch3x3dbl_3a"),
                                              self.conv(branch3x3dbl, "branch3x3dbl_3b")], axis=-1)
        branch_pool = self.conv(_pool_3x3_stride_1(x, self.pool), "branch_pool")
        return keras.ops.concatenate([self.conv(x, "branch1x1"), branch3x3, branch3x3dbl, branch_pool], axis=-1)

    def get_config(self):
        return {**super().get_config(), "pool": self.pool}


class FIDInceptionV3(keras.Model):
    """pytorch-fid's FID Inception-v3 up to pool3: (B, 299, 299, 3) in [-1, 1] -> (B, 2048).

    Layer names are pytorch-fid's module names (``Conv2d_1a_3x3``, ``Mixed_7c``), so that
    :func:`torch_weight_map` can pair every weight with its state-dict key.

    Example:
        >>> network = FIDInceptionV3()
        >>> load_state_dict(network, torch_pickle.load("pt_inception-2015-12-05-6726825d.pth"))
        >>> pool3 = network(images_in_minus_one_one_299)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stages = [
            BasicConv2d(32, 3, strides=2, name="Conv2d_1a_3x3"),
            BasicConv2d(32, 3, name="Conv2d_2a_3x3"),
            BasicConv2d(64, 3, padding="same", name="Conv2d_2b_3x3"),
            keras.layers.MaxPooling2D(3, strides=2, name="maxpool1"),  # nn.MaxPool2d(3, stride=2): no padding
            BasicConv2d(80, 1, name="Conv2d_3b_1x1"),
            BasicConv2d(192, 3, name="Conv2d_4a_3x3"),
            keras.layers.MaxPooling2D(3, strides=2, name="maxpool2"),
            FIDInceptionA(32, name="Mixed_5b"),
            FIDInceptionA(64, name="Mixed_5c"),
            FIDInceptionA(64, name="Mixed_5d"),
            InceptionB(name="Mixed_6a"),
            FIDInceptionC(128, name="Mixed_6b"),
            FIDInceptionC(160, name="Mixed_6c"),
            FIDInceptionC(160, name="Mixed_6d"),
            FIDInceptionC(192, name="Mixed_6e"),
            InceptionD(name="Mixed_7a"),
            FIDInceptionE("avg", name="Mixed_7b"),
            FIDInceptionE("max", name="Mixed_7c"),
        ]

    def build(self, input_shape=(None, INPUT_SIZE, INPUT_SIZE, 3)):
        shape = tuple(input_shape)
        for stage in self.stages:
            stage.build(shape)
            shape = stage.compute_output_spec(keras.KerasTensor(shape)).shape
        self.built = True

    def call(self, images):
        x = images
        for stage in self.stages:
            x = stage(x)
        return keras.ops.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d(1): pool3


def basic_convs(network: FIDInceptionV3):
    """``(pytorch-fid module name, BasicConv2d)`` for every convolution of the network, in order."""
    for stage in network.stages:
        if isinstance(stage, BasicConv2d):
            yield stage.name, stage
        elif isinstance(stage, InceptionBlock):
            for attribute, conv in stage.convs.items():
                yield f"{stage.name}.{attribute}", conv


def torch_weight_map(network: FIDInceptionV3) -> dict:
    """State-dict key -> (Keras variable, the tensor's shape in torch, torch array -> variable value)."""
    def conv_kernel(weight):  # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
        return np.transpose(weight, (2, 3, 1, 0))

    mapping = {}
    for prefix, layer in basic_convs(network):
        kh, kw, channels_in, channels_out = layer.conv.kernel.shape
        mapping[f"{prefix}.conv.weight"] = (layer.conv.kernel, (channels_out, channels_in, kh, kw), conv_kernel)
        for torch_name, variable in (("weight", layer.bn.gamma), ("bias", layer.bn.beta),
                                     ("running_mean", layer.bn.moving_mean),
                                     ("running_var", layer.bn.moving_variance)):
            mapping[f"{prefix}.bn.{torch_name}"] = (variable, tuple(variable.shape), np.asarray)
    return mapping


def _listed(names, limit: int = 8) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_state_dict(network: FIDInceptionV3, state, source: str = "the state dict") -> None:
    """Assign pytorch-fid's state dict (names -> NumPy arrays) to ``network``; nothing is assigned unless all fits.

    Raises:
        UserError: naming every missing, unexpected or mis-shaped tensor.
    """
    hint = f"pass pytorch-fid's {FID_WEIGHTS_FILE} ({FID_WEIGHTS_URL})"
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a checkpoint wrapping the weights
    if not isinstance(state, dict) or not state:
        raise UserError(f"{source} holds no state dict of tensors ({type(state).__name__}); {hint}")
    if not network.built:
        network.build()
    mapping = torch_weight_map(network)
    missing = [name for name in mapping if name not in state]
    unexpected = [name for name in state if name not in mapping
                  and name not in UNUSED_NAMES and not name.endswith(UNUSED_SUFFIXES)]
    if missing or unexpected:
        parts = ([f"missing {len(missing)}: {_listed(missing)}"] if missing else []) + \
                ([f"unexpected {len(unexpected)}: {_listed(unexpected)}"] if unexpected else [])
        raise UserError(f"{source} is not pytorch-fid's FID Inception state dict ({'; '.join(parts)}); {hint}")
    values = []
    for name, (variable, torch_shape, convert) in mapping.items():
        tensor = state[name]
        if not isinstance(tensor, np.ndarray) or not np.issubdtype(tensor.dtype, np.floating):
            raise UserError(f"{source}: {name} is not a floating-point tensor ({type(tensor).__name__}); {hint}")
        if tuple(tensor.shape) != torch_shape:
            raise UserError(f"{source}: {name} has shape {tuple(tensor.shape)}, the FID Inception network "
                            f"needs {torch_shape}; {hint}")
        values.append((variable, convert(tensor.astype(np.float32))))
    for variable, value in values:
        variable.assign(value)


def _torch_bilinear_taps(in_size, out_size: int = INPUT_SIZE):
    """One axis of torch's bilinear taps (``align_corners=False``), rounded where its float32 kernel rounds.

    Output pixel ``i`` samples input position ``scale * (i + 0.5) - 0.5`` (clamped at 0) with
    ``scale = float32(in) / out``, between pixels ``floor`` and ``floor + 1`` (clamped at the
    edge). torch computes that position in float32 with one rounding (its compiled CPU and
    CUDA kernels fuse the multiply-add); the float64 product of two float32 values minus 0.5
    is exact, so casting it to float32 rounds once too. The rounding matters: it shifts whole
    rows and columns by up to 8e-6 of a pixel, and on the official fixture pool3 moves by
    1.4e-3 of its largest feature between exact and torch's positions, by 5e-4 between
    TensorFlow's resize (two roundings) and torch's.

    Returns:
        (low index, high index, low weight, high weight), each of length ``out_size``.
    """
    import tensorflow as tf

    scale = tf.cast(in_size, tf.float32) / float(out_size)
    centres = tf.range(out_size, dtype=tf.float32) + 0.5
    position = tf.cast(tf.cast(scale, tf.float64) * tf.cast(centres, tf.float64) - 0.5, tf.float32)
    position = tf.maximum(position, 0.0)
    low = tf.minimum(tf.cast(tf.floor(position), tf.int32), in_size - 1)
    high = tf.minimum(low + 1, in_size - 1)
    high_weight = tf.clip_by_value(position - tf.cast(low, tf.float32), 0.0, 1.0)
    return low, high, 1.0 - high_weight, high_weight


def resize_like_pytorch_fid(unit_images):
    """(B, H, W, 3) -> (B, 299, 299, 3) as pytorch-fid's ``F.interpolate(mode="bilinear", align_corners=False)``.

    Same sampling as TensorFlow's half-pixel bilinear resize without antialiasing (neither
    antialiases when shrinking), but with torch's float32 source positions
    (:func:`_torch_bilinear_taps`) and its order of operations: each output pixel blends two
    columns in each of two rows, then the two rows.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(unit_images, tf.float32)
    shape = tf.shape(images)
    top, bottom, top_weight, bottom_weight = _torch_bilinear_taps(shape[1])
    left, right, left_weight, right_weight = _torch_bilinear_taps(shape[2])
    columns = (tf.gather(images, left, axis=2) * left_weight[:, None]
               + tf.gather(images, right, axis=2) * right_weight[:, None])
    return (tf.gather(columns, top, axis=1) * top_weight[:, None, None]
            + tf.gather(columns, bottom, axis=1) * bottom_weight[:, None, None])


def unit_range_images(images) -> np.ndarray:
    """tfcoord's [-1, 1] images as pytorch-fid reads saved 8-bit images: levels / 255 in [0, 1] (float32)."""
    levels = np.rint((np.clip(np.asarray(images, np.float32), -1.0, 1.0) + 1.0) * 127.5)
    return (levels / 255.0).astype(np.float32)


class FIDInceptionFeatures:
    """pool3 features of pytorch-fid's FID Inception network (a feature extractor, see
    :func:`tfcoord.metrics.inception.load_extractor`).

    Args:
        state: pytorch-fid's state dict as NumPy arrays (:func:`tfcoord.torch_pickle.load`).
        fingerprint: what identifies the weights in the statistics cache.
        source: how error messages name the weights (the file).
    """

    name = "pytorch-fid-inception-pool3"
    network_name = "pytorch-fid"
    dim = FEATURE_DIM

    def __init__(self, state, *, fingerprint: str, source: str = "the state dict"):
        import tensorflow as tf

        self.network = FIDInceptionV3(name="fid_inception_v3")
        load_state_dict(self.network, state, source)
        self.fingerprint = fingerprint
        network = self.network

        @tf.function(reduce_retracing=True)
        def features(unit_images):
            return network(2.0 * resize_like_pytorch_fid(unit_images) - 1.0)  # normalize_input: [0, 1] -> [-1, 1]

        self._features = features

    @classmethod
    def from_file(cls, path):
        """Read ``pt_inception-2015-12-05-6726825d.pth`` (a zip or legacy torch file) without PyTorch."""
        from tfcoord import torch_pickle

        state = torch_pickle.load(path)
        return cls(state, fingerprint=cls.fingerprint_of_sha256(file_sha256(path)), source=str(path))

    @staticmethod
    def fingerprint_of_sha256(sha256: str) -> str:
        """The statistics-cache identity of a weights file; never equal to a Keras extractor's."""
        return f"pytorch-fid-inception-2015-12-05-pool3:{sha256[:20]}"

    def features_of_unit_images(self, unit_images) -> np.ndarray:
        """pool3 features of (B, H, W, 3) images in [0, 1], as pytorch-fid computes them (float32)."""
        return np.asarray(self._features(np.asarray(unit_images, np.float32)))

    def __call__(self, images) -> np.ndarray:
        return np.asarray(self.features_of_unit_images(unit_range_images(images)), np.float64)
