"""Run a SavedModel through TensorFlow's C API, the way ``tensorflow_model_server`` loads it.

TF Serving loads a version folder with the C++ ``LoadSavedModel`` (tag ``serve``) into a
graph session and answers a Predict request by feeding and fetching the tensor names of
the requested SignatureDef. The pip ``tensorflow`` wheel exports that loader through the
C API: ``TF_LoadSessionFromSavedModel``, ``TF_SessionRun`` and the graph functions from
``libtensorflow_cc.so.2``, the tensor, buffer and status functions from
``libtensorflow_framework.so.2`` (its dependency; ``nm -D --defined-only`` shows which
library defines what). :class:`SavedModelSession` reaches them with ctypes, so a test can
run the exported graph through the server's own loader instead of a Python one. The
Python package has both libraries loaded already; ctypes shares them.

Example::

    with SavedModelSession("serving/cips/1") as session:
        rgb = session.run("generate_patch", {"z": z, "coords": coords})["rgb"]
"""

from __future__ import annotations

import contextlib
import ctypes
import types
from pathlib import Path

import numpy as np

LIBRARIES = ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2")
TF_STRING = 7  # TF_DataType of string tensors, whose elements are 24-byte TF_TString structs
TSTRING_BYTES = 24  # sizeof(TF_TString) (tensorflow/tsl/platform/ctstring_internal.h)


class CApiError(RuntimeError):
    """A C API call reported a non-OK TF_Status; ``code_name`` is its TF_Code (INVALID_ARGUMENT, ...)."""

    def __init__(self, call: str, code: int, message: str):
        self.call, self.code, self.message = call, code, message
        self.code_name = _code_name(code)
        super().__init__(f"{call}: {self.code_name}: {message}")


class CApiUnavailable(RuntimeError):
    """The installed TensorFlow does not export a C API function this module needs."""


def _code_name(code: int) -> str:
    from tensorflow.core.protobuf import error_codes_pb2

    try:
        return error_codes_pb2.Code.Name(code)
    except ValueError:
        return f"code {code}"


class _Buffer(ctypes.Structure):  # TF_Buffer (tensorflow/c/tf_buffer.h)
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("data_deallocator", ctypes.c_void_p)]


class _Output(ctypes.Structure):  # TF_Output: an operation and the index of one of its outputs
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


_P = ctypes.c_void_p
_BUFFER = ctypes.POINTER(_Buffer)
# name: (return type, argument types), as declared in tensorflow/c/c_api.h and tf_*.h.
_PROTOTYPES = {
    "TF_Version": (ctypes.c_char_p, []),
    "TF_NewStatus": (_P, []),
    "TF_DeleteStatus": (None, [_P]),
    "TF_GetCode": (ctypes.c_int, [_P]),
    "TF_Message": (ctypes.c_char_p, [_P]),
    "TF_NewBuffer": (_BUFFER, []),
    "TF_DeleteBuffer": (None, [_BUFFER]),
    "TF_NewGraph": (_P, []),
    "TF_DeleteGraph": (None, [_P]),
    "TF_GraphOperationByName": (_P, [_P, ctypes.c_char_p]),
    "TF_NewSessionOptions": (_P, []),
    "TF_DeleteSessionOptions": (None, [_P]),
    "TF_LoadSessionFromSavedModel": (_P, [_P, _BUFFER, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                          _P, _BUFFER, _P]),
    "TF_SessionRun": (None, [_P, _BUFFER,
                             ctypes.POINTER(_Output), ctypes.POINTER(_P), ctypes.c_int,  # inputs, their values
                             ctypes.POINTER(_Output), ctypes.POINTER(_P), ctypes.c_int,  # outputs, their values
                             ctypes.POINTER(_P), ctypes.c_int,  # target operations
                             _BUFFER, _P]),
    "TF_CloseSession": (None, [_P, _P]),
    "TF_DeleteSession": (None, [_P, _P]),
    "TF_AllocateTensor": (_P, [ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t]),
    "TF_DeleteTensor": (None, [_P]),
    "TF_TensorType": (ctypes.c_int, [_P]),
    "TF_NumDims": (ctypes.c_int, [_P]),
    "TF_Dim": (ctypes.c_int64, [_P, ctypes.c_int]),
    "TF_TensorByteSize": (ctypes.c_size_t, [_P]),
    "TF_TensorData": (_P, [_P]),
    "TF_StringGetDataPointer": (_P, [_P]),
    "TF_StringGetSize": (ctypes.c_size_t, [_P]),
}

_LIBRARY = None


def library():
    """The C API of the installed TensorFlow, every function of ``_PROTOTYPES`` typed; or CApiUnavailable."""
    global _LIBRARY
    if _LIBRARY is None:
        import tensorflow as tf

        folder = Path(tf.sysconfig.get_lib())
        paths = [folder / name for name in LIBRARIES]
        if not paths[0].is_file():
            raise CApiUnavailable(f"{paths[0]} not found: this TensorFlow {tf.__version__} install does not ship the "
                                  "C API library that TF_LoadSessionFromSavedModel lives in")
        # The Python package has loaded both already: CDLL returns the same copies, whose
        # runtime (op registry, devices) the session shares. Each name is looked up in both.
        handles = [ctypes.CDLL(str(path)) for path in paths if path.is_file()]
        functions = {}
        for name, (restype, argtypes) in _PROTOTYPES.items():
            function = next((getattr(handle, name) for handle in handles if hasattr(handle, name)), None)
            if function is None:
                raise CApiUnavailable(f"the C API function {name} is not exported by {', '.join(map(str, paths))} "
                                      f"(TensorFlow {tf.__version__}); check with nm -D --defined-only")
            function.restype, function.argtypes = restype, argtypes
            functions[name] = function
        _LIBRARY = types.SimpleNamespace(**functions)
    return _LIBRARY


@contextlib.contextmanager
def _status(call: str):
    """A fresh TF_Status for one call; raises CApiError after the call if it is not OK."""
    lib = library()
    status = lib.TF_NewStatus()
    try:
        yield status
        code = lib.TF_GetCode(status)
        if code != 0:
            raise CApiError(call, code, lib.TF_Message(status).decode("utf-8", "replace"))
    finally:
        lib.TF_DeleteStatus(status)


def _output(graph, tensor_name: str) -> _Output:
    """TF_Output of a tensor name of a SignatureDef (``op_name:index``)."""
    op_name, _, index = tensor_name.rpartition(":")
    operation = library().TF_GraphOperationByName(graph, op_name.encode("utf-8"))
    if not operation:
        raise CApiError("TF_GraphOperationByName", 5, f"the loaded graph has no operation {op_name!r}")  # NOT_FOUND
    return _Output(operation, int(index))


def _tensor(array: np.ndarray):
    """A new TF_Tensor holding a copy of ``array`` (numeric or bool dtypes)."""
    import tensorflow as tf

    array = np.ascontiguousarray(array)
    if array.dtype.kind in "OSU":
        raise TypeError(f"string inputs are not supported by {__name__} (got dtype {array.dtype})")
    lib = library()
    dims = (ctypes.c_int64 * array.ndim)(*array.shape)
    tensor = lib.TF_AllocateTensor(tf.as_dtype(array.dtype).as_datatype_enum, dims, array.ndim, array.nbytes)
    if not tensor:
        raise MemoryError(f"TF_AllocateTensor failed for {array.dtype} {array.shape}")
    if array.nbytes:
        ctypes.memmove(lib.TF_TensorData(tensor), array.ctypes.data, array.nbytes)
    return tensor


def _array(tensor) -> np.ndarray:
    """A NumPy copy of a TF_Tensor (strings as an object array of bytes)."""
    import tensorflow as tf

    lib = library()
    shape = tuple(lib.TF_Dim(tensor, axis) for axis in range(lib.TF_NumDims(tensor)))
    data, dtype = lib.TF_TensorData(tensor), lib.TF_TensorType(tensor)
    if dtype == TF_STRING:
        strings = [ctypes.string_at(lib.TF_StringGetDataPointer(data + TSTRING_BYTES * i),
                                    lib.TF_StringGetSize(data + TSTRING_BYTES * i)) for i in range(int(np.prod(shape)))]
        return np.array(strings, dtype=object).reshape(shape)
    raw = ctypes.string_at(data, lib.TF_TensorByteSize(tensor)) if data else b""
    return np.frombuffer(raw, tf.dtypes.as_dtype(dtype).as_numpy_dtype).reshape(shape).copy()


class SavedModelSession:
    """A SavedModel loaded by ``TF_LoadSessionFromSavedModel`` into a C API session.

    ``signature_defs`` holds the MetaGraphDef's SignatureDefs the loader returned;
    :meth:`run` feeds a signature's inputs by their tensor names, as TF Serving's Predict
    does, and returns its outputs by output name. Close it (or use it as a context
    manager) to free the session and graph.
    """

    def __init__(self, export_dir, tags=("serve",)):
        from tensorflow.core.protobuf import meta_graph_pb2

        lib = library()
        self._graph, self._session = lib.TF_NewGraph(), None
        options, meta_graph_buffer = lib.TF_NewSessionOptions(), lib.TF_NewBuffer()
        try:
            tag_array = (ctypes.c_char_p * len(tags))(*[tag.encode("utf-8") for tag in tags])
            with _status(f"TF_LoadSessionFromSavedModel({export_dir}, tags={list(tags)})") as status:
                self._session = lib.TF_LoadSessionFromSavedModel(options, None, str(export_dir).encode("utf-8"),
                                                                 tag_array, len(tags), self._graph,
                                                                 meta_graph_buffer, status)
            buffer = meta_graph_buffer.contents
            self.meta_graph = meta_graph_pb2.MetaGraphDef.FromString(ctypes.string_at(buffer.data, buffer.length))
        except BaseException:
            self.close()
            raise
        finally:
            lib.TF_DeleteBuffer(meta_graph_buffer)
            lib.TF_DeleteSessionOptions(options)
        self.signature_defs = self.meta_graph.signature_def

    def run(self, signature: str, feeds: dict) -> dict:
        """Outputs ``{name: array}`` of ``signature`` for inputs ``{name: array}`` (all of them, none more)."""
        if self._session is None:
            raise ValueError("the session is closed")
        if signature not in self.signature_defs:
            raise KeyError(f"no signature {signature!r}; the SavedModel has {sorted(self.signature_defs)}")
        signature_def = self.signature_defs[signature]
        if set(feeds) != set(signature_def.inputs):
            raise ValueError(f"{signature} takes inputs {sorted(signature_def.inputs)}, got {sorted(feeds)}")
        lib = library()
        names = sorted(feeds)
        output_names = sorted(signature_def.outputs)
        inputs = (_Output * len(names))(*[_output(self._graph, signature_def.inputs[n].name) for n in names])
        outputs = (_Output * len(output_names))(*[_output(self._graph, signature_def.outputs[n].name)
                                                  for n in output_names])
        input_values = (_P * len(names))()
        output_values = (_P * len(output_names))()
        try:
            for i, name in enumerate(names):
                input_values[i] = _tensor(feeds[name])
            with _status(f"TF_SessionRun({signature})") as status:
                lib.TF_SessionRun(self._session, None, inputs, input_values, len(names), outputs, output_values,
                                  len(output_names), None, 0, None, status)
            return {name: _array(output_values[i]) for i, name in enumerate(output_names)}
        finally:
            for tensor in [*input_values, *output_values]:  # the caller owns both (c_api.h, TF_SessionRun)
                if tensor:
                    lib.TF_DeleteTensor(tensor)

    def close(self) -> None:
        """Close and delete the session, then the graph (a closed session can be closed again)."""
        lib = library()
        session, graph, self._session, self._graph = self._session, self._graph, None, None
        try:
            if session:
                with _status("TF_CloseSession") as status:
                    lib.TF_CloseSession(session, status)
        finally:
            if session:
                with _status("TF_DeleteSession") as status:
                    lib.TF_DeleteSession(session, status)
            if graph:
                lib.TF_DeleteGraph(graph)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
