"""Write ``torch.save``-format files from NumPy arrays without torch, for tests of :mod:`tfcoord.torch_pickle`.

Both formats PyTorch has used: the zip archive (PyTorch >= 1.6) and the legacy stream of pickles
(older releases; torchvision's VGG16 and LPIPS's ``vgg.pth`` are legacy files). Only flat
``{name: float32/float64/int64 array}`` state dicts are written, the tensors contiguous.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import sys
import types
import zipfile

import numpy as np

from tfcoord.torch_pickle import LEGACY_MAGIC

_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
                  np.dtype("int64"): "LongStorage"}


@contextlib.contextmanager
def _torch_names():
    """Stand-ins for ``torch._utils._rebuild_tensor_v2`` and ``torch.<X>Storage``, registered under
    torch's module names only while pickling (pickle writes a global by module and name)."""
    torch_module, utils_module = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("written, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils_module._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch_module._utils = utils_module
    for name in _STORAGE_NAMES.values():
        setattr(torch_module, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch_module, "torch._utils": utils_module})
    try:
        yield torch_module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array).reshape(-1)


class _Tensor:
    def __init__(self, storage, shape, rebuild):
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce__(self):
        strides = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
        return self.rebuild, (self.storage, 0, tuple(self.shape), strides, False, collections.OrderedDict())


class _Pickler(pickle.Pickler):
    def __init__(self, file, torch_module, legacy):
        super().__init__(file, protocol=2)
        self.torch_module, self.legacy = torch_module, legacy

    def persistent_id(self, obj):
        if not isinstance(obj, _Storage):
            return None
        storage_type = getattr(self.torch_module, _STORAGE_NAMES[obj.array.dtype])
        pid = ("storage", storage_type, obj.key, "cpu", obj.array.size)
        return pid + (None,) if self.legacy else pid  # legacy ids carry view metadata


def _state(arrays: dict, rebuild):
    storages, state = [], collections.OrderedDict()
    for i, (name, array) in enumerate(arrays.items()):
        array = np.asarray(array)
        storages.append(_Storage(str(i), array))
        state[name] = _Tensor(storages[-1], array.shape, rebuild)
    return state, storages


def write_zip(path, arrays: dict) -> None:
    """``arrays`` as a zip-format torch file (``archive/data.pkl`` + one raw file per storage)."""
    with _torch_names() as torch_module:
        state, storages = _state(arrays, torch_module._utils._rebuild_tensor_v2)
        buffer = io.BytesIO()
        _Pickler(buffer, torch_module, legacy=False).dump(state)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for storage in storages:
            little_endian = storage.array.astype(storage.array.dtype.newbyteorder("<"))
            archive.writestr(f"archive/data/{storage.key}", little_endian.tobytes())
        archive.writestr("archive/version", "3\n")


def write_legacy(path, arrays: dict) -> None:
    """``arrays`` as a legacy torch file: magic, protocol, system info, object, keys, then each storage."""
    with _torch_names() as torch_module:
        state, storages = _state(arrays, torch_module._utils._rebuild_tensor_v2)
        with open(path, "wb") as handle:
            for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                                "type_sizes": {"short": 2, "int": 4, "long": 8}}):
                pickle.dump(header, handle, protocol=2)
            _Pickler(handle, torch_module, legacy=True).dump(state)
            pickle.dump([s.key for s in storages], handle, protocol=2)
            for storage in storages:
                handle.write(np.int64(storage.array.size).astype("<i8").tobytes())
                handle.write(storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
