"""Read PyTorch ``torch.save`` files (zip format of PyTorch >= 1.6, and the legacy format) into NumPy without torch.

A ``.pt`` / ``.pth`` / ``.pth.tar`` written by ``torch.save`` is a zip archive holding
``<name>/data.pkl`` (a pickle whose tensors refer to storages by key) and one raw file
``<name>/data/<key>`` per storage. This module unpickles ``data.pkl`` with a restricted
unpickler: tensors become ``numpy.ndarray`` (copied out of their storages with the
recorded offset, shape and strides), ``OrderedDict``/dicts/lists stay as they are, and
any other class is replaced by an inert :class:`OpaqueObject` — nothing from the file is
ever imported or executed, so a checkpoint cannot run code.

Legacy (pre-1.6, non-zip) files -- a stream of pickles followed by the raw storages -- are read
the same way (:func:`load_legacy`). Anything else needs torch itself: :func:`load` falls back to
``torch.load(..., map_location="cpu", weights_only=True)`` when torch is installed.

The converters of official checkpoints check what they read against the networks with
:func:`match_weights` / :func:`check_weights`, before anything is assigned.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_, "BFloat16Storage": "bfloat16",
}
INSTALL_TORCH = "pip install tfcoord[convert]"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy torch.save file


class OpaqueObject:
    """Stand-in for any non-tensor class in a checkpoint (optimizer settings, argparse namespaces, ...)."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return OpaqueObject(*args, **kwargs)


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset])
    needed = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if needed > storage.size:
        raise ValueError(f"tensor of size {size} needs {needed} elements but its storage holds {storage.size}")
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=tuple(s * storage.itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): lambda *args: tuple(args),
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(file)
        self.archive, self.prefix, self.byteorder = archive, prefix, byteorder
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        return OpaqueObject

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, _numel = pid[:5]
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            dtype = getattr(storage_type, "dtype", None)
            if dtype is None:  # UntypedStorage (bytes): the dtype comes with the tensor; keep bytes as uint8
                array = np.frombuffer(raw, np.uint8)
            elif dtype == "bfloat16":
                array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<" if self.byteorder == "little" else ">"))
                array = array.astype(np.dtype(dtype).newbyteorder("="), copy=False)
            self.storages[key] = array
        return self.storages[key]


def load_zip(path) -> object:
    """The object a zip-format ``torch.save`` file holds, with tensors as NumPy arrays (no torch needed).

    Raises:
        UserError: the file is not a readable torch zip archive (truncated, corrupt, other format).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                raise UserError(f"{path} is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")
            prefix = pickles[0][: -len("/data.pkl")] if "/" in pickles[0] else ""
            has_order = f"{prefix}/byteorder" in archive.namelist()
            byteorder = (archive.read(f"{prefix}/byteorder").decode().strip() if has_order else "") or "little"
            unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix, byteorder)
            return unpickler.load()
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, pickle.UnpicklingError, OSError,
            IndexError, TypeError, AttributeError) as err:
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err}); "
                        "the file may be truncated or corrupt: download it again") from None


class _PendingTensor:
    """A legacy-format tensor met before its storage's bytes (they follow the pickle in those files)."""

    def __init__(self, storage, storage_offset, size, stride):
        self.storage, self.storage_offset, self.size, self.stride = storage, storage_offset, size, stride


class _LegacyStorage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles the object of a legacy file; storages stay placeholders until their bytes are read."""

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages = {}  # root key -> _LegacyStorage

    def find_class(self, module, name):
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return lambda storage, offset, size, stride, *unused: _PendingTensor(storage, offset, size, stride)
        return _Unpickler.find_class(self, module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, root_key, _location, numel, view = pid[:6]
        dtype = getattr(storage_type, "dtype", None)
        if dtype is None:
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        root = self.storages.setdefault(root_key, _LegacyStorage(dtype, int(numel)))
        if view is None:
            return root
        _view_key, offset, view_numel = view
        return (root, int(offset), int(view_numel))


def _materialise(obj):
    if isinstance(obj, _PendingTensor):
        storage, offset = obj.storage, obj.storage_offset
        if isinstance(storage, tuple):  # a view of a larger storage: (root, element offset, elements)
            storage, view_offset, view_numel = storage
            return _rebuild_tensor(storage.array[view_offset:view_offset + view_numel], offset, obj.size, obj.stride)
        return _rebuild_tensor(storage.array, offset, obj.size, obj.stride)
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def load_legacy(path) -> object:
    """The object a legacy (PyTorch < 1.6, non-zip) ``torch.save`` file holds, tensors as NumPy arrays.

    Such a file is a sequence of pickles -- magic number, protocol version, system info, the object
    (tensors refer to storages by key), the sorted storage keys -- followed by each storage as an
    int64 element count and its raw bytes. Pretrained weights of that era (torchvision's VGG16,
    LPIPS's linear layers) are stored this way.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if pickle.load(handle) != LEGACY_MAGIC:
                raise UserError(f"{path} is not a PyTorch checkpoint (no legacy magic number)")
            pickle.load(handle)  # protocol version
            info = pickle.load(handle, encoding="utf-8")
            byteorder = "<" if not isinstance(info, dict) or info.get("little_endian", True) else ">"
            unpickler = _LegacyUnpickler(handle)
            obj = unpickler.load()
            keys = pickle.load(handle, encoding="utf-8")
            for key in keys:
                storage = unpickler.storages[key]
                numel = int(np.frombuffer(handle.read(8), byteorder + "i8")[0])
                if storage.dtype == "bfloat16":  # came with PyTorch 1.5, just before the zip format
                    raise ValueError("bfloat16 storages in legacy files are not supported")
                dtype = np.dtype(storage.dtype).newbyteorder(byteorder)
                raw = handle.read(numel * dtype.itemsize)
                if len(raw) != numel * dtype.itemsize:
                    raise EOFError(f"storage {key} is cut short")
                storage.array = np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=False)
            return _materialise(obj)
    except UserError:
        raise
    except (EOFError, KeyError, ValueError, pickle.UnpicklingError, OSError, IndexError, TypeError,
            AttributeError) as err:
        raise UserError(f"{path} is not a readable legacy PyTorch checkpoint ({type(err).__name__}: {err}); "
                        "the file may be truncated or corrupt: download it again") from None


def _is_legacy(path: Path) -> bool:
    """Whether the file starts with the pickled legacy magic number (protocol 2: PROTO 2, LONG1 10 bytes)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    return head[:2] == b"\x80\x02" and head[2:4] == b"\x8a\x0a" and \
        int.from_bytes(head[4:14], "little") == LEGACY_MAGIC


def load(path) -> object:
    """Load a ``torch.save`` file without torch (zip and legacy formats); other formats through torch if installed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if zipfile.is_zipfile(path):
        return load_zip(path)
    if _is_legacy(path):
        return load_legacy(path)
    with open(path, "rb") as handle:
        if handle.read(4) == b"PK\x03\x04":  # a zip archive whose directory (at the end) is missing
            raise UserError(f"{path} is a truncated or corrupt PyTorch checkpoint (a zip archive without its "
                            "central directory); download it again")
    try:
        import torch
    except ImportError:
        raise UserError(f"{path} is not a zip-format PyTorch checkpoint: it is truncated or corrupt, or was saved "
                        f"by PyTorch < 1.6 (reading legacy files needs torch: {INSTALL_TORCH})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200]}); the file may be truncated or corrupt") from None
    return to_numpy(obj)


def to_numpy(obj):
    """Nested dicts/lists of torch tensors -> the same structure of NumPy arrays (other values kept)."""
    if isinstance(obj, dict):
        return type(obj)((k, to_numpy(v)) for k, v in obj.items()) if isinstance(obj, collections.OrderedDict) \
            else {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):
        return obj.detach().cpu().float().numpy() if str(obj.dtype) == "torch.bfloat16" else obj.detach().cpu().numpy()
    return obj


def match_weights(state: dict, weight_map: dict, buffers=(), ignored=lambda name: False) -> tuple[list, dict]:
    """Check an official ``{name: array}`` against ``weight_map`` ``{name: (variable, numpy transform)}``.

    Returns ``[(variable, float32 array)]`` and the problems found, ``{"missing" | "unexpected" |
    "mis-shaped": names}`` (a mis-shaped entry starts with the name). ``buffers`` must be present but
    carry no learned state; other names where ``ignored(name)`` holds are not unexpected. Assigns nothing.
    """
    missing = [name for name in [*weight_map, *buffers] if name not in state]
    unexpected = [str(name) for name in state
                  if name not in weight_map and name not in buffers and not ignored(str(name))]
    mis_shaped, assignments = [], []
    for name, (variable, transform) in weight_map.items():
        if name not in state:
            continue
        value = np.asarray(state[name])
        if not np.issubdtype(value.dtype, np.floating):
            mis_shaped.append(f"{name} (dtype {value.dtype}, expected float)")
            continue
        try:
            converted = np.asarray(transform(value), "float32")
        except (ValueError, IndexError):
            converted = None
        if converted is None or converted.shape != tuple(variable.shape):
            mis_shaped.append(f"{name} {tuple(value.shape)} (the config needs {tuple(variable.shape)} after "
                              "conversion)")
        elif not np.all(np.isfinite(converted)):
            mis_shaped.append(f"{name} (non-finite values)")
        else:
            assignments.append((variable, converted))
    problems = {"missing": missing, "unexpected": unexpected, "mis-shaped": mis_shaped}
    return assignments, {kind: names for kind, names in problems.items() if names}


def check_weights(state: dict, weight_map: dict, what: str, source, hint: str, **match) -> list:
    """:func:`match_weights`, raising a UserError that counts and names every problem (``hint`` ends it)."""
    assignments, problems = match_weights(state, weight_map, **match)
    if problems:
        listed = "; ".join(f"{kind} {len(names)}: {_describe(names)}" for kind, names in problems.items())
        raise UserError(f"{source}: the {what} does not match the configuration ({listed}); {hint}")
    return assignments


def _describe(names, limit: int = 12) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
