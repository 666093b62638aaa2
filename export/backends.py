"""Where a tiled client gets its patches: TF Serving over gRPC or REST, a local SavedModel, a TFLite file.

Every backend offers the same three calls, so the tiling code never knows which one it talks to:

* ``predict(signature, inputs) -> {output name: array}`` (inputs: ``{name: array}``, batch on axis 0);
* ``metadata() -> {signature: {"inputs": {name: shape}, "outputs": {name: shape}}}`` (-1 = dynamic);
* ``description() -> dict``: the model's serving description (export/tiling.py).

Failures worth retrying (server unavailable or overloaded, deadline exceeded, connection
reset) raise :class:`TransientError`; :class:`RetryPolicy` retries them with exponential
backoff. Anything else is a :class:`~tfcoord.errors.UserError` saying what is wrong: an
unknown model (gRPC NOT_FOUND, HTTP 404), a missing signature (FAILED_PRECONDITION, HTTP
400), inputs the signature refuses (INVALID_ARGUMENT).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from export.saved_model import DESCRIBE, DESCRIPTION_ASSET, signature_specs
from export.server_files import served_versions
from tfcoord.errors import UserError

GRPC_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")
HTTP_TRANSIENT = (408, 429, 502, 503, 504)
MAX_MESSAGE_BYTES = 512 * 1024 * 1024


class TransientError(Exception):
    """A failure that may succeed when retried (server busy or restarting, network hiccup)."""


@dataclasses.dataclass
class RetryPolicy:
    """Retry :class:`TransientError` with delays ``base_delay * 2**k`` (capped), ``attempts`` tries in all."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0

    def __post_init__(self):
        self.retries = 0
        self._lock = threading.Lock()

    def call(self, fn, *args):
        for attempt in range(self.attempts):
            try:
                return fn(*args)
            except TransientError as err:
                if attempt == self.attempts - 1:
                    raise UserError(f"{err}; still failing after {self.attempts} attempts; "
                                    "check that the server is up and not overloaded") from None
                with self._lock:
                    self.retries += 1
                time.sleep(min(self.max_delay, self.base_delay * 2 ** attempt))


def missing_signature(where: str, signature: str, detail: str = "") -> UserError:
    extra = f" ({detail})" if detail else ""
    return UserError(f"the model {where} has no signature '{signature}'{extra}; export it with "
                     "python -m export.saved_model, or pick one of its signatures with --signature")


def visible(signatures) -> list[str]:
    """Signature names a user can call (TF2 adds a hidden ``__saved_model_init_op``)."""
    return sorted(name for name in signatures if not name.startswith("__"))


def shapes_of(signature_def_inputs) -> dict:
    """``{name: shape}`` of a SignatureDef's TensorInfo map (protobuf or its JSON dict)."""
    shapes = {}
    for name, info in signature_def_inputs.items():
        if isinstance(info, dict):
            dims = info.get("tensor_shape", {}).get("dim", [])
            shapes[name] = [int(d.get("size", -1)) for d in dims]
        else:
            shapes[name] = [int(d.size) for d in info.tensor_shape.dim]
    return shapes


def signature_summary(signature_defs) -> dict:
    return {name: {"inputs": shapes_of(sig.get("inputs", {}) if isinstance(sig, dict) else sig.inputs),
                   "outputs": shapes_of(sig.get("outputs", {}) if isinstance(sig, dict) else sig.outputs)}
            for name, sig in signature_defs.items()}


def parse_description(text, where: str) -> dict:
    try:
        return json.loads(text)  # bytes too (UTF-8, from the describe signature)
    except ValueError as err:
        raise UserError(f"the model description from {where} is not JSON ({err})") from None


class Backend:
    """Shared: the description comes from the ``describe`` signature unless a subclass knows better."""

    name = "backend"

    def predict(self, signature: str, inputs: dict) -> dict:
        raise NotImplementedError

    def metadata(self) -> dict:
        raise NotImplementedError

    def description(self) -> dict:
        outputs = self.predict(DESCRIBE, {"request": np.zeros([1], np.int32)})
        value = np.asarray(outputs["description"]).reshape(-1)[0]
        return parse_description(value, self.name)

    def close(self) -> None:
        pass


# -- local SavedModel ---------------------------------------------------------------------------
def resolve_version_dir(path) -> Path:
    """``path`` if it is a SavedModel, else its highest integer version folder (as TF Serving picks)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = served_versions(path)
    if not versions:
        raise UserError(f"{path} is neither a SavedModel nor a model base folder with version folders "
                        "(<path>/1/saved_model.pb); pass the --out folder of python -m export.saved_model")
    return path / str(versions[-1])


class SavedModelBackend(Backend):
    """Runs the signatures of a SavedModel in this process (``tf.saved_model.load``)."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = resolve_version_dir(path)
        self.name = str(self.path)
        self.signatures = tf.saved_model.load(str(self.path)).signatures

    def predict(self, signature, inputs):
        import tensorflow as tf

        if signature not in self.signatures:
            raise missing_signature(self.name, signature, f"it has {', '.join(visible(self.signatures))}")
        try:
            outputs = self.signatures[signature](**{name: tf.constant(value) for name, value in inputs.items()})
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as err:
            raise UserError(f"signature '{signature}' of {self.name} refused the inputs: "
                            f"{str(err).splitlines()[0][:300]}") from None
        return {name: value.numpy() for name, value in outputs.items()}

    def metadata(self):
        return {name: {side: {key: spec["shape"] for key, spec in specs.items()}
                       for side, specs in signature_specs(function).items()}
                for name, function in self.signatures.items()}

    def description(self):
        asset = self.path / "assets" / DESCRIPTION_ASSET
        if asset.is_file():
            return parse_description(asset.read_text(), str(asset))
        return super().description()


# -- TFLite ---------------------------------------------------------------------------------------
def sidecar_path(tflite_path) -> Path:
    """The description written next to a ``.tflite`` file: ``model.tflite`` -> ``model.json``."""
    return Path(tflite_path).with_suffix(".json")


class TfliteBackend(Backend):
    """Runs a ``.tflite`` file with ``ai_edge_litert`` (one interpreter per client thread).

    A signature with a fixed batch is invoked once per chunk of that many rows (the
    last chunk padded by repeating its last row).
    """

    def __init__(self, path, num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.name = str(self.path)
        self.num_threads = num_threads
        self._interpreter_class = Interpreter
        self._local = threading.local()
        try:
            self.signature_list = self._interpreter().get_signature_list()
        except ValueError as err:
            raise UserError(f"{path} is not a readable TFLite model ({err})") from None

    def _interpreter(self):
        if not hasattr(self._local, "interpreter"):
            self._local.interpreter = self._interpreter_class(model_path=str(self.path), num_threads=self.num_threads)
            self._local.runners = {}
        return self._local.interpreter

    def _runner(self, signature):
        if signature not in self.signature_list:
            raise missing_signature(self.name, signature, f"it has {', '.join(visible(self.signature_list))}")
        interpreter = self._interpreter()
        if signature not in self._local.runners:
            self._local.runners[signature] = interpreter.get_signature_runner(signature)
        return self._local.runners[signature]

    def predict(self, signature, inputs):
        runner = self._runner(signature)
        details = runner.get_input_details()
        batch = {int(d["shape_signature"][0]) for d in details.values()}.pop()
        rows = len(next(iter(inputs.values())))
        if batch <= 0:
            return runner(**inputs)
        chunks = []
        for start in range(0, rows, batch):
            chunk = {name: value[start:start + batch] for name, value in inputs.items()}
            count = len(next(iter(chunk.values())))
            if count < batch:
                chunk = {name: np.concatenate([value, np.repeat(value[-1:], batch - count, axis=0)])
                         for name, value in chunk.items()}
            try:
                outputs = runner(**chunk)
            except ValueError as err:
                raise UserError(f"signature '{signature}' of {self.name} refused the inputs: {err}") from None
            chunks.append({name: value[:count] for name, value in outputs.items()})
        return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}

    def metadata(self):
        summary = {}
        for signature in self.signature_list:
            runner = self._runner(signature)
            summary[signature] = {
                "inputs": {k: [int(d) for d in v["shape_signature"]] for k, v in runner.get_input_details().items()},
                "outputs": {k: [int(d) for d in v["shape_signature"]] for k, v in runner.get_output_details().items()}}
        return summary

    def description(self):
        sidecar = sidecar_path(self.path)
        if not sidecar.is_file():
            raise UserError(f"{sidecar} is missing: python -m export.tflite writes it next to the .tflite file; "
                            "copy it along, or pass --description FILE")
        return parse_description(sidecar.read_text(), str(sidecar))


# -- TF Serving over gRPC -------------------------------------------------------------------------
class GrpcBackend(Backend):
    """TF Serving's ``PredictionService`` (tensorflow-serving-api) on ``host:port``."""

    def __init__(self, target: str, model_name: str, timeout: float = 30.0, version: int | None = None):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target, self.model_name, self.timeout, self.version = target, model_name, timeout, version
        self.name = f"{model_name} at {target}"
        self._grpc = grpc
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                              ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _model_spec(self, spec, signature=""):
        spec.name = self.model_name
        if signature:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = self.version

    def _error(self, err, signature=""):
        code = err.code()
        detail = (err.details() or "").splitlines()[0][:300] if err.details() else code.name
        if code.name in GRPC_TRANSIENT:
            return TransientError(f"{self.target}: {code.name} ({detail})")
        if code == self._grpc.StatusCode.NOT_FOUND:
            return UserError(f"the server at {self.target} has no model '{self.model_name}' ({detail}); "
                             "check --model-name (TF Serving: the MODEL_NAME / --model_name it was started with)")
        if code == self._grpc.StatusCode.FAILED_PRECONDITION and "signature" in detail.lower():
            return missing_signature(self.name, signature, detail)
        if code == self._grpc.StatusCode.INVALID_ARGUMENT:
            return UserError(f"model '{self.model_name}' refused the inputs of '{signature}' ({detail})")
        return UserError(f"{self.target}: {code.name} ({detail})")

    def predict(self, signature, inputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except self._grpc.RpcError as err:
            raise self._error(err, signature) from None
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self):
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        try:
            response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        except self._grpc.RpcError as err:
            raise self._error(err) from None
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_summary(signature_map.signature_def)

    def close(self):
        self.channel.close()


# -- TF Serving over REST -------------------------------------------------------------------------
class RestBackend(Backend):
    """TF Serving's REST API (``POST /v1/models/NAME:predict``, columnar ``inputs`` format)."""

    def __init__(self, url: str, model_name: str, timeout: float = 30.0, version: int | None = None):
        self.url = url.rstrip("/")
        self.model_name, self.timeout = model_name, timeout
        version_part = f"/versions/{version}" if version is not None else ""
        self.model_url = f"{self.url}/v1/models/{model_name}{version_part}"
        self.name = f"{model_name} at {self.url}"
        self._metadata = None

    def _request(self, url, body=None, signature=""):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                         method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise self._error(err.code, err.read(), signature) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise TransientError(f"{self.url}: {reason}") from None

    def _error(self, status, payload, signature):
        try:
            detail = str(json.loads(payload).get("error", ""))
        except (ValueError, AttributeError):
            detail = payload.decode("utf-8", "replace")[:300]
        detail = detail.splitlines()[0][:300] if detail else f"HTTP {status}"
        if status in HTTP_TRANSIENT:
            return TransientError(f"{self.url}: HTTP {status} ({detail})")
        if "signature" in detail.lower() and "not found" in detail.lower():
            return missing_signature(self.name, signature, detail)
        if status == 404:
            return UserError(f"the server at {self.url} has no model '{self.model_name}' ({detail}); "
                             "check --model-name (TF Serving: the MODEL_NAME / --model_name it was started with)")
        if status == 400:
            return UserError(f"model '{self.model_name}' refused the inputs of '{signature}' ({detail})")
        return UserError(f"{self.url}: HTTP {status} ({detail})")

    def predict(self, signature, inputs):
        body = {"signature_name": signature, "inputs": {name: value.tolist() for name, value in inputs.items()}}
        outputs = self._request(f"{self.model_url}:predict", body, signature)["outputs"]
        if not isinstance(outputs, dict):  # TF Serving returns a single output bare
            names = self.metadata().get(signature, {}).get("outputs", {})
            if len(names) != 1:
                raise UserError(f"{self.name}: cannot tell which output of '{signature}' the server returned")
            outputs = {next(iter(names)): outputs}
        arrays = {name: np.asarray(value) for name, value in outputs.items()}
        # JSON numbers parse as float64; the signature computed float32 values, which convert exactly.
        return {name: a.astype(np.float32) if a.dtype == np.float64 else a for name, a in arrays.items()}

    def metadata(self):
        if self._metadata is None:
            payload = self._request(f"{self.model_url}/metadata")
            signature_defs = payload.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
            self._metadata = signature_summary(signature_defs)
        return self._metadata
