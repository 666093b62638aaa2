"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), version 0.1 with the VGG16 trunk.

For images x0, x1 in [-1, 1] (richzhang/PerceptualSimilarity ``lpips/lpips.py``, ``LPIPS.forward``)::

    d(x0, x1) = sum_l mean_{h,w} sum_c w_l[c] * (n(f_l(s(x0)))[h,w,c] - n(f_l(s(x1)))[h,w,c])^2

with ``s`` the ScalingLayer ((x - shift) / scale, which maps [-1, 1] onto torchvision's
ImageNet normalisation), ``f_l`` the VGG16 activations relu1_2, relu2_2, relu3_3, relu4_3 and
relu5_3 (3x3 convolutions with padding 1, 2x2 max pools between the five blocks; the fifth pool
is not used), ``n`` the channel normalisation ``f / (sqrt(sum_c f^2) + 1e-10)`` and ``w_l`` the
learned non-negative 1x1 weights (``lin{l}.model.1.weight``, no bias). Images need at least
16 pixels a side (four pools down to 1 x 1).

The trunk comes from either file that holds ImageNet VGG16 weights:

* torchvision's ``vgg16-397923af.pth`` -- the network the LPIPS weights were calibrated on;
  this reproduces the paper's numbers;
* Keras's ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` -- the original Caffe VGG16
  ported to Keras. That network expects Caffe's input (BGR, 0..255, minus the ImageNet mean), so
  its first kernel is turned to RGB and the input goes through that preprocessing instead of the
  ScalingLayer. Its activations differ from torchvision's network (trained separately), so the
  distance is LPIPS-like rather than the paper's values; prefer the torchvision file.

``.pth`` files are read without torch (:mod:`tfcoord.torch_pickle`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError

TORCHVISION_FILE = "vgg16-397923af.pth"
KERAS_FILES = ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
LINEAR_FILE = "vgg.pth"
WHERE_TO_GET = (f"torchvision's {TORCHVISION_FILE} (https://download.pytorch.org/models/{TORCHVISION_FILE}) or "
                f"Keras's {KERAS_FILES[0]}, and LPIPS's {LINEAR_FILE} (richzhang/PerceptualSimilarity, "
                "lpips/weights/v0.1/vgg.pth)")

BLOCK_CONVS = (2, 2, 3, 3, 3)  # VGG16 convolutions per block; each block ends at one LPIPS layer
VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # indices in ``vgg16().features``
KERAS_CONVS = tuple(f"block{b + 1}_conv{c + 1}" for b, n in enumerate(BLOCK_CONVS) for c in range(n))
LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # ScalingLayer: 2 * ImageNet mean - 1
LPIPS_SCALE = (0.458, 0.448, 0.450)  # 2 * ImageNet std
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # Keras's preprocess_input(mode="caffe"), here in RGB order
NORMALIZE_EPS = 1e-10  # lpips.normalize_tensor
MIN_SIZE = 16


@dataclasses.dataclass(frozen=True)
class LpipsWeights:
    """The VGG16 trunk (RGB input channels) and the five LPIPS linear layers."""

    kernels: tuple  # 13 x (3, 3, in, out)
    biases: tuple  # 13 x (out,)
    linear: tuple  # 5 x (channels,), >= 0
    preprocessing: str  # "lpips" (ScalingLayer, torchvision trunk) or "caffe" (Keras trunk)
    source: str  # the trunk's file


def find_weight_files(directory) -> tuple[Path, Path]:
    """The trunk file and ``vgg.pth`` in ``directory`` (torchvision's VGG16 preferred over Keras's)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"LPIPS weights folder {directory} does not exist; put {WHERE_TO_GET} into it")
    trunk = next((directory / name for name in (TORCHVISION_FILE, *KERAS_FILES) if (directory / name).is_file()), None)
    if trunk is None:
        raise UserError(f"{directory} holds no VGG16 weights ({TORCHVISION_FILE} or {KERAS_FILES[0]}); "
                        f"put {WHERE_TO_GET} into it")
    linear = directory / LINEAR_FILE
    if not linear.is_file():
        raise UserError(f"{directory} has no {LINEAR_FILE} (LPIPS v0.1 linear layers: richzhang/PerceptualSimilarity "
                        "lpips/weights/v0.1/vgg.pth)")
    return trunk, linear


def _state_dict(path: Path) -> dict:
    from tfcoord import torch_pickle

    state = torch_pickle.load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict (a name -> tensor mapping)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _tensor(state: dict, key: str, path: Path, source: str) -> np.ndarray:
    if key not in state:
        raise UserError(f"{path} has no tensor {key}: it is not {source}")
    value = state[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise UserError(f"{path}: {key} is not a floating-point tensor ({type(value).__name__})")
    return value.astype(np.float32)


def read_torchvision_vgg16(path) -> tuple[list, list]:
    """Conv kernels (3, 3, in, out) and biases from torchvision's VGG16 ``state_dict`` (``features.N.*``)."""
    path = Path(path)
    state = _state_dict(path)
    kernels, biases = [], []
    for index in TORCHVISION_CONVS:
        weight = _tensor(state, f"features.{index}.weight", path, "torchvision's VGG16")
        if weight.ndim != 4:
            raise UserError(f"{path}: features.{index}.weight has shape {weight.shape}, expected (out, in, 3, 3)")
        kernels.append(weight.transpose(2, 3, 1, 0))  # torch (out, in, kh, kw) -> (kh, kw, in, out)
        biases.append(_tensor(state, f"features.{index}.bias", path, "torchvision's VGG16"))
    return kernels, biases


def read_keras_vgg16(path) -> tuple[list, list]:
    """Conv kernels (3, 3, in, out) and biases from a Keras VGG16 ``.h5`` (layers ``block{b}_conv{c}``),
    with the first kernel's input channels turned from Caffe's BGR to RGB."""
    import h5py

    path = Path(path)
    kernels, biases = [], []
    try:
        with h5py.File(path, "r") as file:
            root = file["model_weights"] if "model_weights" in file else file  # a whole-model save nests them
            for name in KERAS_CONVS:
                if name not in root:
                    raise UserError(f"{path} has no layer {name}: it is not Keras's VGG16")
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
                arrays = [np.asarray(group[n], np.float32) for n in names] if names else []
                if not arrays:  # no weight_names attribute: take the datasets below the layer's group
                    group.visititems(lambda _, item: arrays.append(np.asarray(item, np.float32))
                                     if isinstance(item, h5py.Dataset) else None)
                kernel = [a for a in arrays if a.ndim == 4]
                bias = [a for a in arrays if a.ndim == 1]
                if len(kernel) != 1 or len(bias) != 1:
                    raise UserError(f"{path}: layer {name} should hold one 4-D kernel and one bias, found shapes "
                                    f"{[a.shape for a in arrays]}")
                kernels.append(kernel[0])
                biases.append(bias[0])
    except OSError as err:
        raise UserError(f"{path} is not a readable HDF5 file ({err}); download it again") from None
    kernels[0] = kernels[0][:, :, ::-1].copy()  # Caffe's BGR input channels -> RGB
    return kernels, biases


def read_linear(path, channels) -> list:
    """LPIPS's five linear layers (``lin{l}.model.1.weight``, shape (1, C, 1, 1)) as (C,) vectors."""
    path = Path(path)
    state = _state_dict(path)
    linear = []
    for layer, width in enumerate(channels):
        key = f"lin{layer}.model.1.weight"
        weight = _tensor(state, key, path, "LPIPS's v0.1 vgg.pth")
        if weight.shape != (1, width, 1, 1):
            raise UserError(f"{path}: {key} has shape {weight.shape}, expected (1, {width}, 1, 1) for this VGG16")
        if not np.all(np.isfinite(weight)) or weight.min() < 0:
            raise UserError(f"{path}: {key} holds negative or non-finite values; LPIPS's linear weights are >= 0")
        linear.append(weight.reshape(width))
    return linear


def check_trunk(kernels, biases, source) -> None:
    """The 13 convolutions chain (3 input channels, 3x3 kernels, each input the previous output)."""
    if len(kernels) != len(KERAS_CONVS):
        raise UserError(f"{source}: expected {len(KERAS_CONVS)} VGG16 convolutions, got {len(kernels)}")
    previous = 3
    for index, (kernel, bias, name) in enumerate(zip(kernels, biases, KERAS_CONVS)):
        label = f"{name} (torchvision features.{TORCHVISION_CONVS[index]})"
        if kernel.ndim != 4 or kernel.shape[:3] != (3, 3, previous):
            raise UserError(f"{source}: {label} kernel has shape (kh, kw, in, out) = {kernel.shape}, expected "
                            f"(3, 3, {previous}, out)")
        if bias.shape != (kernel.shape[3],):
            raise UserError(f"{source}: {label} bias has shape {bias.shape}, expected ({kernel.shape[3]},)")
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise UserError(f"{source}: {label} holds non-finite values; download the file again")
        previous = kernel.shape[3]


def layer_channels(kernels) -> list[int]:
    """Channels of the five LPIPS layers (the last convolution of each block)."""
    ends = np.cumsum(BLOCK_CONVS) - 1
    return [int(kernels[i].shape[3]) for i in ends]


def load_weights(directory) -> LpipsWeights:
    """Read and check the VGG16 trunk and the LPIPS linear layers in ``directory`` (see the module doc)."""
    trunk, linear_path = find_weight_files(directory)
    if trunk.suffix == ".h5":
        kernels, biases, preprocessing = *read_keras_vgg16(trunk), "caffe"
    else:
        kernels, biases, preprocessing = *read_torchvision_vgg16(trunk), "lpips"
    check_trunk(kernels, biases, trunk)
    linear = read_linear(linear_path, layer_channels(kernels))
    return LpipsWeights(tuple(kernels), tuple(biases), tuple(linear), preprocessing, str(trunk))


class Lpips:
    """LPIPS distance between batches of (N, H, W, 3) images in [-1, 1]; differentiable (``keras.ops``).

    Args:
        weights: :class:`LpipsWeights`, e.g. from :func:`load_weights`.

    Example::

        lpips = Lpips(load_weights("weights/lpips"))
        distances = lpips(images_a, images_b)  # (N,)
    """

    def __init__(self, weights: LpipsWeights):
        from keras import ops

        if weights.preprocessing not in ("lpips", "caffe"):
            raise ValueError(f"unknown preprocessing {weights.preprocessing!r}")
        self.weights = weights
        self.kernels = [ops.convert_to_tensor(k, "float32") for k in weights.kernels]
        self.biases = [ops.convert_to_tensor(b, "float32") for b in weights.biases]
        self.linear = [ops.convert_to_tensor(w, "float32") for w in weights.linear]
        if weights.preprocessing == "lpips":
            self.shift, self.scale = np.float32(LPIPS_SHIFT), np.float32(LPIPS_SCALE)
        else:  # Caffe: 127.5 (x + 1) - mean = (x - (mean / 127.5 - 1)) / (1 / 127.5)
            self.shift = np.float32(np.asarray(CAFFE_MEAN_RGB) / 127.5 - 1.0)
            self.scale = np.float32([1.0 / 127.5] * 3)

    def features(self, images) -> list:
        """The five VGG16 activations relu1_2 ... relu5_3 of (N, H, W, 3) images in [-1, 1]."""
        from keras import ops

        height, width = images.shape[1], images.shape[2]
        if height is not None and width is not None and min(height, width) < MIN_SIZE:
            raise UserError(f"LPIPS needs images of at least {MIN_SIZE} x {MIN_SIZE} pixels (four 2x2 pools), "
                            f"got {height} x {width}")
        x = (images - self.shift) / self.scale
        taps, conv = [], 0
        for block, convs in enumerate(BLOCK_CONVS):
            if block:
                x = ops.max_pool(x, 2, 2, padding="valid")
            for _ in range(convs):
                x = ops.relu(ops.conv(x, self.kernels[conv], padding="same") + self.biases[conv])
                conv += 1
            taps.append(x)
        return taps

    def __call__(self, images_a, images_b):
        """(N,) distances; ``images_a`` and ``images_b`` (N, H, W, 3) in [-1, 1]."""
        from keras import ops

        images_a = ops.convert_to_tensor(images_a, "float32")
        images_b = ops.convert_to_tensor(images_b, "float32")
        count = ops.shape(images_a)[0]
        taps = self.features(ops.concatenate([images_a, images_b], axis=0))  # one pass for both
        total = 0.0
        for tap, weight in zip(taps, self.linear):
            # normalize_tensor. Where every channel is 0, sqrt's gradient is infinite, but those zeros come from
            # the ReLU, whose gradient there is 0 (a select, not a product), so no NaN reaches the image.
            norm = ops.sqrt(ops.sum(ops.square(tap), axis=-1, keepdims=True))
            unit = tap / (norm + NORMALIZE_EPS)
            squared = ops.square(unit[:count] - unit[count:])
            total = total + ops.mean(ops.sum(squared * weight, axis=-1), axis=(1, 2))
        return total

    def distance(self, images_a, images_b) -> np.ndarray:
        """:meth:`__call__` as a NumPy array; also accepts single (H, W, 3) images."""
        a, b = np.asarray(images_a, np.float32), np.asarray(images_b, np.float32)
        if a.shape != b.shape:
            raise UserError(f"LPIPS compares images of one shape, got {a.shape} and {b.shape}")
        single = a.ndim == 3
        result = np.asarray(self(a[None] if single else a, b[None] if single else b))
        return result[0] if single else result
