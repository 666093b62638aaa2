"""In-process stand-ins for ``tensorflow_model_server`` (tests and benchmarks only; tensorflow.md §14).

The real server cannot be installed here, so these run the SavedModel's signatures
behind the same two APIs and error conventions:

* gRPC: a ``PredictionServiceServicer`` of tensorflow-serving-api (``Predict`` and
  ``GetModelMetadata``); unknown model -> NOT_FOUND, unknown signature ->
  FAILED_PRECONDITION, refused inputs -> INVALID_ARGUMENT;
* REST: ``POST /v1/models/NAME[/versions/N]:predict`` (row ``instances`` and columnar
  ``inputs`` formats), ``GET /v1/models/NAME[/metadata]``; errors as ``{"error": ...}``
  with 404 / 400.

``Failures(every=k)`` makes every k-th predict request fail transiently
(UNAVAILABLE / HTTP 503), as an overloaded or restarting server does.
:func:`write_run` saves a built model as the run directory tfcoord.train leaves (valid inputs for
any signature: :mod:`export.example_inputs`).

Example::

    store = ModelStore({"cocogan": "serving/cocogan"})
    with grpc_server(store) as target:
        ...  # python -m export.client --grpc target --model-name cocogan ...
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from export.backends import resolve_version_dir

HTTP_STATUS = {"NOT_FOUND": 404, "FAILED_PRECONDITION": 400, "INVALID_ARGUMENT": 400, "UNAVAILABLE": 503}


def write_run(model, run_dir, step: int = 1):
    """Save a built model (``model.build()``) as a run: ``config.yaml`` + ``checkpoints/ckpt-<step>``."""
    from tfcoord.training.checkpoints import CheckpointKeeper

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.config.save(run_dir / "config.yaml")
    counter = tf.Variable(step, dtype=tf.int64)
    CheckpointKeeper(run_dir / "checkpoints", counter, **model.checkpoint_items()).save(step)
    return run_dir


class ServingError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Failures:
    """Every ``every``-th predict request fails with UNAVAILABLE (0: never)."""

    def __init__(self, every: int = 0):
        self.every, self.count, self.failed = every, 0, 0
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            self.count += 1
            fail = self.every and self.count % self.every == 0
            self.failed += bool(fail)
        if fail:
            raise ServingError("UNAVAILABLE", "stand-in server: simulated transient failure, try again")


class ModelStore:
    """SavedModels by model name: their loaded signatures and their SignatureDefs."""

    def __init__(self, models: dict, failures: Failures | None = None):
        self.failures = failures or Failures()
        self.signatures, self.signature_defs, self.versions = {}, {}, {}
        for name, path in models.items():
            version_dir = resolve_version_dir(path)
            self.signatures[name] = tf.saved_model.load(str(version_dir)).signatures
            saved_model = saved_model_pb2.SavedModel()
            saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
            self.signature_defs[name] = saved_model.meta_graphs[0].signature_def
            self.versions[name] = int(version_dir.name) if version_dir.name.isdigit() else 1

    def _check_model(self, name):
        if name not in self.signatures:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")

    def predict(self, name: str, signature: str, inputs: dict, json_inputs: bool = False) -> dict:
        """Run a signature; ``json_inputs`` converts lists to the signature's dtypes (as the REST API does)."""
        self._check_model(name)
        self.failures.check()
        signature = signature or "serving_default"
        if signature not in self.signatures[name]:
            raise ServingError("FAILED_PRECONDITION", f'Serving signature name: "{signature}" not found in signature def')
        function = self.signatures[name][signature]
        try:
            if json_inputs:
                specs = function.structured_input_signature[1]
                inputs = {k: np.asarray(v, specs[k].dtype.as_numpy_dtype) if k in specs else v
                          for k, v in inputs.items()}
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as err:
            raise ServingError("INVALID_ARGUMENT", str(err).splitlines()[0][:500]) from None
        return {k: v.numpy() for k, v in outputs.items()}

    def signature_def_map(self, name: str):
        self._check_model(name)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs[name].items():
            signature_map.signature_def[key].CopyFrom(value)
        return signature_map


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, store: ModelStore):
        self.store = store

    def Predict(self, request, context):
        try:
            outputs = self.store.predict(request.model_spec.name, request.model_spec.signature_name,
                                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except ServingError as err:
            context.abort(getattr(grpc.StatusCode, err.code), err.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.version.value = self.store.versions[request.model_spec.name]
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            signature_map = self.store.signature_def_map(request.model_spec.name)
        except ServingError as err:
            context.abort(getattr(grpc.StatusCode, err.code), err.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = self.store.versions[request.model_spec.name]
        response.metadata["signature_def"].Pack(signature_map)
        return response


@contextlib.contextmanager
def grpc_server(store: ModelStore, workers: int = 4):
    """A PredictionService on 127.0.0.1 (a free port); yields ``"127.0.0.1:PORT"``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def _json_value(array):
    array = np.asarray(array)
    if array.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])(array).tolist()
    return array.tolist()


def _rest_handler(store: ModelStore):
    route = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(:predict|/metadata)?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def _reply(self, status, payload):
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self, method):
            match = route.match(self.path)
            if not match or (method == "POST") != (match.group(3) == ":predict"):
                self._reply(404, {"error": f"Malformed request: {method} {self.path}"})
                return None
            return match.group(1), match.group(3)

        def do_GET(self):
            routed = self._route("GET")
            if routed is None:
                return
            name, action = routed
            try:
                signature_map = store.signature_def_map(name)
            except ServingError as err:
                return self._reply(HTTP_STATUS[err.code], {"error": err.message})
            if action == "/metadata":
                metadata = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
                return self._reply(200, {"model_spec": {"name": name, "signature_name": "",
                                                        "version": str(store.versions[name])},
                                         "metadata": {"signature_def": metadata}})
            return self._reply(200, {"model_version_status": [{"version": str(store.versions[name]),
                                                               "state": "AVAILABLE",
                                                               "status": {"error_code": "OK", "error_message": ""}}]})

        def do_POST(self):
            routed = self._route("POST")
            if routed is None:
                return
            name, _ = routed
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                signature = body.get("signature_name", "")
                if "inputs" in body:
                    outputs = store.predict(name, signature, body["inputs"], json_inputs=True)
                    payload = {"outputs": _json_value(next(iter(outputs.values()))) if len(outputs) == 1
                               else {k: _json_value(v) for k, v in outputs.items()}}
                else:
                    instances = body["instances"]
                    inputs = ({k: [row[k] for row in instances] for k in instances[0]}
                              if isinstance(instances[0], dict) else {"inputs": instances})
                    outputs = {k: _json_value(v) for k, v in store.predict(name, signature, inputs, True).items()}
                    rows = len(next(iter(outputs.values())))
                    payload = {"predictions": [next(iter(outputs.values()))[i] if len(outputs) == 1
                                               else {k: v[i] for k, v in outputs.items()} for i in range(rows)]}
            except ServingError as err:
                return self._reply(HTTP_STATUS[err.code], {"error": err.message})
            except (ValueError, KeyError, IndexError, TypeError) as err:
                return self._reply(400, {"error": f"JSON request is malformed: {err}"})
            self._reply(200, payload)

    return Handler


@contextlib.contextmanager
def rest_server(store: ModelStore):
    """TF Serving's REST API on 127.0.0.1 (a free port); yields ``"http://127.0.0.1:PORT"``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(store))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
