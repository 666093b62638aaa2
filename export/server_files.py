"""The files ``tensorflow_model_server`` reads besides the SavedModel: warmup requests, batching
parameters and a model config.

* ``<version>/assets.extra/tf_serving_warmup_requests``: a TFRecord of ``PredictionLog``
  protos, one ``PredictRequest`` per exported signature at the model's tile batch. The
  server replays them while it loads a version, before marking it AVAILABLE, so the first
  real request does not pay for graph optimisation and buffer allocation. A request that
  fails makes the version fail to load: the inputs are valid ones
  (:func:`export.example_inputs.example_inputs`).
* ``batching_parameters.txt`` (``--batching_parameters_file`` with ``--enable_batching``):
  a text ``BatchingParameters`` proto chosen from the tile batch (:func:`batching_parameters`).
* ``models.config`` (``--model_config_file``): a text ``ModelServerConfig`` with one
  ``model_config_list`` entry per model base folder (:func:`model_server_config`,
  ``python -m export.models_config``).

The tensorflow-serving-api wheel (a dependency of tfcoord) has the PredictionLog and
ModelServerConfig protos but not ``session_bundle_config.proto``; the batching file is
written as text, and tests/export/test_export_server_files.py parses it with upstream's
message definition.
"""

from __future__ import annotations

import re
from pathlib import Path

from tfcoord.errors import UserError

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"  # the path TF Serving looks for
BATCHING_FILE = "batching_parameters.txt"
CLIENT_REQUEST_TILES = 16  # export.client's default --batch: tiles a tiling client sends per request
WHOLE_IMAGE_BATCH = 4  # models that draw whole images (GAWWN): a few images per request
BATCH_THREADS = 4
BATCH_TIMEOUT_MICROS = 1000
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # part of every REST URL: /v1/models/NAME


def tile_batch(description: dict) -> int:
    """Rows of a typical request: the tiles of one image at the trained size, at most the client's
    default request (export.client sends that many at once); a few images for models that draw
    whole images."""
    tiling = description.get("tiling")
    if not tiling:
        return WHOLE_IMAGE_BATCH
    rows, cols = tiling["native_tiles"]
    return max(1, min(rows * cols, CLIENT_REQUEST_TILES))


def warmup_signatures(description: dict) -> dict:
    """``{signature key: signature whose inputs it takes}`` for every exported key (serving_default too)."""
    return {**{name: name for name in description["signatures"]}, "serving_default": description["serving_default"]}


def warmup_requests(model, description: dict, model_name: str) -> list:
    """One ``PredictionLog`` per exported signature, with valid inputs for :func:`tile_batch` rows."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from export.saved_model import DESCRIBE
    from export.example_inputs import example_inputs

    batch = tile_batch(description)
    logs = []
    for key, signature in sorted(warmup_signatures(description).items()):
        inputs = ({"request": np.zeros([batch], np.int32)} if signature == DESCRIBE
                  else example_inputs(model, description, signature, batch))
        log = prediction_log_pb2.PredictionLog()
        request = log.predict_log.request
        request.model_spec.name = model_name
        request.model_spec.signature_name = key
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        logs.append(log)
    return logs


def write_warmup_requests(version_dir, model, description: dict, model_name: str) -> Path:
    """Write ``version_dir/assets.extra/tf_serving_warmup_requests``; returns its path."""
    import tensorflow as tf

    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(model, description, model_name):
            writer.write(log.SerializeToString())
    return path


def batching_parameters(description: dict) -> dict:
    """``BatchingParameters`` fields for the model's tile batch B.

    * ``max_batch_size``: the power of two at or above twice the larger of B and the
      client's default request (16 tiles). BatchingSession refuses a request larger than
      max_batch_size, and two concurrent requests can share one Session::Run, which is
      where batching pays on CPU too (tensorflow.md §16: 3.3 ms per patch alone, 1.0 ms
      per patch at batch 64);
    * ``allowed_batch_sizes``: the powers of two up to it, and B: the server pads a batch
      up to the next allowed size, so one image's tiles run unpadded, padding never costs
      more than the rows it completes, and the server sees a handful of shapes;
    * ``batch_timeout_micros`` 1 ms: the batching guide's "slightly above zero" for low
      request rates, small next to one patch's 3-20 ms on CPU;
    * ``num_batch_threads`` 4: each batch thread blocks in one Session::Run, which already
      spreads over every core; a few let the next batch start while one finishes on a small
      CPU server (the guide: about the number of cores; raise it for a GPU or a big host).
    """
    batch = tile_batch(description)
    largest = 1 << (2 * max(batch, CLIENT_REQUEST_TILES) - 1).bit_length()
    allowed = sorted({1 << k for k in range(largest.bit_length())} | {batch})
    return {"max_batch_size": largest, "batch_timeout_micros": BATCH_TIMEOUT_MICROS,
            "num_batch_threads": BATCH_THREADS, "allowed_batch_sizes": allowed}


def batching_parameters_text(description: dict) -> str:
    """The text proto of :func:`batching_parameters`, with a header saying where the numbers come from."""
    fields = batching_parameters(description)
    model = description.get("model_type", "model")
    lines = [f"# TF Serving BatchingParameters for the {model} export (python -m export.saved_model --batching):",
             f"# tile batch {tile_batch(description)} (rows of a typical request); batches are padded up to the next",
             "# allowed size; requests larger than max_batch_size are refused. Edit num_batch_threads for the host."]
    lines += [f"{name} {{ value: {fields[name]} }}" for name in ("max_batch_size", "batch_timeout_micros",
                                                                 "num_batch_threads")]
    lines += [f"allowed_batch_sizes: {size}" for size in fields["allowed_batch_sizes"]]
    return "\n".join(lines) + "\n"


def served_versions(base) -> list[int]:
    """Integer version folders of a model base folder holding a SavedModel, ascending."""
    base = Path(base)
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()) \
        if base.is_dir() else []


def model_server_config(models: dict, server_root=None, keep: int = 1):
    """A ``ModelServerConfig`` serving ``models`` (``{name: model base folder}``).

    Each model serves its newest ``keep`` versions by number (a ``specific`` policy: labels
    may only name versions the server has loaded, and a ``latest`` policy would move on when
    a new version appears while the labels stayed). Labels: ``stable`` the newest; with
    ``keep`` >= 2, the TF Serving guide's canary rollout: ``canary`` the newest and
    ``stable`` the one before (unlabelled requests still get the newest). ``base_path`` is
    the folder as the server sees it: ``server_root/<folder name>`` (e.g. a docker mount),
    or its absolute path here. Bad input raises UserError.
    """
    if keep < 1:
        raise UserError(f"--keep must be at least 1 (versions served per model), got {keep}")
    if not models:
        raise UserError("no model given; pass NAME=DIR, e.g. faces=serving/faces (the --out folder of "
                        "python -m export.saved_model)")
    served, folders = {}, {}
    for name, base in models.items():  # every check before the serving protos import TensorFlow
        base = Path(base)
        if not MODEL_NAME.match(name):
            raise UserError(f"model name {name!r} cannot be part of a URL /v1/models/NAME; use letters, digits, "
                            "'.', '_' and '-'")
        if not base.is_dir():
            raise UserError(f"{name}={base}: no such folder; pass the --out folder of python -m export.saved_model")
        versions = served_versions(base)
        if not versions:
            hint = (f"it is a version folder itself: pass its parent, {name}={base.parent}"
                    if (base / "saved_model.pb").is_file() else
                    f"export one with python -m export.saved_model --run RUN --out {base}")
            raise UserError(f"{name}={base} has no numbered version folder (<folder>/1/saved_model.pb) for TF "
                            f"Serving to load; {hint}")
        if server_root is not None and base.name in folders:
            raise UserError(f"{name}={base} and {folders[base.name]} would both be {server_root}/{base.name} on "
                            "the server; give the model folders distinct names")
        folders[base.name] = f"{name}={base}"
        served[name] = (base, versions[-keep:])

    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name, (base, versions) in served.items():
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{str(server_root).rstrip('/')}/{base.name}" if server_root is not None \
            else str(base.resolve())
        entry.model_platform = "tensorflow"
        entry.model_version_policy.specific.versions.extend(versions)
        labels = {"stable": versions[-1]} if len(versions) == 1 else {"stable": versions[-2], "canary": versions[-1]}
        entry.version_labels.update(labels)
    return config


def model_server_config_text(models: dict, server_root=None, keep: int = 1) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(model_server_config(models, server_root, keep))
