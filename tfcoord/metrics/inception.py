"""The pinned feature extractor: Inception-v3 pool features (2048-d, the global average pool).

Two networks, told apart in every record by ``feature_network`` and in the statistics
cache by the extractor's fingerprint:

* ``pytorch-fid``: pytorch-fid's FID Inception network (the one the papers' FIDs use),
  from ``--inception-weights pt_inception-2015-12-05-6726825d.pth`` -- any ``.pth``/``.pt``
  file, or a file with torch content (zip or legacy format), is read as such (:mod:`tfcoord.metrics.fid_inception`);
* ``keras-imagenet``: Keras's ImageNet Inception-v3 (no top, average pooling).

Weights come from exactly one of two places, and nothing is ever downloaded:

* ``--inception-weights FILE`` (``train.fid_inception_weights``): pytorch-fid's ``.pth``,
  or Keras Inception-v3 weights without the top, a legacy ``.h5`` or a Keras 3
  ``.weights.h5`` file;
* the Keras cache, ``$KERAS_HOME/models/`` (default ``~/.keras/models/``)
  ``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``, which
  ``keras.applications.InceptionV3(include_top=False)`` downloads on a machine with
  internet access.

When neither exists the command stops with a :class:`UserError` saying so; there is
no silent fallback to other weights.

Comparability: the papers' FIDs use the **standard FID Inception graph**
(``pt_inception-2015-12-05``, as in TTUR, pytorch-fid and torch-fidelity); pass its
pytorch-fid file for comparable numbers (docs/fid.md). The Keras ImageNet weights are a
different network, so their FID values are internally consistent but NOT comparable
with published numbers. Tests and experiments may inject another extractor with
``TFCOORD_FEATURE_EXTRACTOR=module:factory`` (a zero-argument callable returning an
object with ``name``, ``fingerprint``, ``dim`` and ``__call__(images) -> (B, dim)``).

Input convention: images (B, H, W, 3) in [-1, 1]; both real and generated sets are
quantised to 8 bits (as saved images would be), then resized bilinearly to 299 x 299
(for ``pytorch-fid``: as pytorch-fid does, see :mod:`tfcoord.metrics.fid_inception`).
"""

from __future__ import annotations

import importlib
import os
import zipfile
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError
from tfcoord.fileio import file_sha256
from tfcoord.images import to_float

KERAS_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
FEATURE_EXTRACTOR_ENV = "TFCOORD_FEATURE_EXTRACTOR"
INPUT_SIZE = 299
FEATURE_DIM = 2048
TORCH_SUFFIXES = (".pth", ".pt")
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
LEGACY_TORCH_PREFIX = b"\x80\x02\x8a\x0a"  # pickle protocol 2, then the 10-byte magic of legacy torch.save


def keras_cache_path() -> Path:
    """Where Keras keeps downloaded application weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / KERAS_WEIGHTS_FILE


def injected_extractor_name() -> str | None:
    """The ``module:factory`` of an injected extractor, or None for Inception-v3."""
    return os.environ.get(FEATURE_EXTRACTOR_ENV) or None


def resolve_weights(path: str | os.PathLike | None) -> Path:
    """The Inception-v3 weights file to use, or a UserError when there is none (never a download)."""
    if path:
        path = Path(path).expanduser()
        if not path.is_file():
            raise UserError(f"--inception-weights {path} does not exist; pass pytorch-fid's {PYTORCH_FID_FILE} "
                            f"(paper-comparable FID, docs/fid.md) or the Keras Inception-v3 no-top weights file "
                            f"({KERAS_WEIGHTS_FILE}), or drop the option to use the Keras cache")
        return path
    cached = keras_cache_path()
    if not cached.is_file():
        raise UserError(
            f"no Inception-v3 weights: {cached} does not exist and nothing is downloaded here; "
            "on a machine with internet run `python -c \"import keras; keras.applications.InceptionV3("
            "include_top=False)\"` and copy that file to this path, or pass --inception-weights FILE "
            f"(pytorch-fid's {PYTORCH_FID_FILE} for paper-comparable FID, docs/fid.md; "
            "train.fid_inception_weights for training)")
    return cached


def is_pytorch_fid_weights(path) -> bool:
    """Whether ``path`` is read as pytorch-fid's FID Inception weights: a ``.pth``/``.pt`` name or torch content.

    Keras weights are HDF5; a torch file is a zip archive (PyTorch >= 1.6) or starts with the
    pickled magic number of the legacy format (pytorch-fid's 2019 release may be either).
    """
    path = Path(path)
    if path.suffix.lower() in TORCH_SUFFIXES or zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(4) == LEGACY_TORCH_PREFIX


def quantize(images) -> np.ndarray:
    """[-1, 1] floats rounded to the 256 levels of an 8-bit image, back in [-1, 1] (float32)."""
    levels = np.rint((np.clip(np.asarray(images, np.float32), -1.0, 1.0) + 1.0) * 127.5)
    return to_float(levels)


class InceptionV3Features:
    """Keras Inception-v3 (no top, average pooling) loaded from a weights file."""

    name = "inception-v3-pool"
    network_name = "keras-imagenet"
    dim = FEATURE_DIM

    def __init__(self, weights_path):
        self.weights_path = Path(weights_path)
        self._check_file()
        import keras
        import tensorflow as tf

        network = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                                 input_shape=(INPUT_SIZE, INPUT_SIZE, 3))
        try:
            network.load_weights(str(self.weights_path))
        except Exception as err:  # h5py, Keras and TF report a wrong file in many ways
            raise UserError(f"{self.weights_path} is not a Keras Inception-v3 no-top weights file "
                            f"({str(err).splitlines()[0][:200] if str(err) else type(err).__name__}); "
                            f"pass {KERAS_WEIGHTS_FILE}, or pytorch-fid's {PYTORCH_FID_FILE} for "
                            "paper-comparable FID (docs/fid.md)") from None
        self.fingerprint = f"keras-inception-v3-notop-avgpool:{file_sha256(self.weights_path)[:20]}"

        @tf.function(reduce_retracing=True)
        def features(images):
            resized = tf.image.resize(images, (INPUT_SIZE, INPUT_SIZE), method="bilinear")
            return network(resized, training=False)  # preprocess_input 'tf' mode is [-1, 1] already

        self._features = features

    def _check_file(self):
        """A cheap look at the file before the network is built: HDF5 with Keras weight groups."""
        import h5py

        try:
            with h5py.File(self.weights_path, "r") as file:
                keras_layout = "layer_names" in file.attrs or "layers" in file or "model_weights" in file
        except OSError as err:
            keras_layout, reason = False, str(err).splitlines()[0][:200]
        else:
            reason = "no Keras weight groups in it"
        if not keras_layout:
            raise UserError(f"{self.weights_path} is not a Keras Inception-v3 no-top weights file ({reason}); "
                            f"pass {KERAS_WEIGHTS_FILE}, or pytorch-fid's {PYTORCH_FID_FILE} for "
                            "paper-comparable FID (docs/fid.md)")

    def __call__(self, images) -> np.ndarray:
        return np.asarray(self._features(quantize(images)), np.float64)


def feature_network(extractor) -> str:
    """Which network an extractor's features come from: ``pytorch-fid``, ``keras-imagenet`` or an injected name."""
    return getattr(extractor, "network_name", None) or f"injected:{extractor.name}"


def load_extractor(weights: str | os.PathLike | None = None):
    """The feature extractor: an injected one (``TFCOORD_FEATURE_EXTRACTOR``), pytorch-fid's
    FID Inception (a ``.pth`` file) or Keras Inception-v3.

    Raises a UserError when Inception-v3 weights are missing (call it before slow work).
    """
    injected = injected_extractor_name()
    if injected:
        module_name, _, factory = injected.partition(":")
        try:
            return getattr(importlib.import_module(module_name), factory or "make")()
        except (ImportError, AttributeError) as err:
            raise UserError(f"{FEATURE_EXTRACTOR_ENV}={injected} cannot be loaded ({err}); "
                            "use module:factory or unset it for Inception-v3") from None
    path = resolve_weights(weights)
    if is_pytorch_fid_weights(path):
        from tfcoord.metrics.fid_inception import FIDInceptionFeatures

        return FIDInceptionFeatures.from_file(path)
    return InceptionV3Features(path)


def check_extractor_available(weights: str | os.PathLike | None = None) -> None:
    """Fail fast (before data or models load) when the extractor cannot be built."""
    if not injected_extractor_name():
        resolve_weights(weights)
