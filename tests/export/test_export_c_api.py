"""Loaded the way TF Serving loads it: the C API's TF_LoadSessionFromSavedModel (tag serve) and
TF_SessionRun on the SignatureDef's tensor names equal Keras, and so do the warmup requests."""

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2, prediction_service_pb2_grpc

from tests.support import c_api
from tests.support.c_api import CApiError, SavedModelSession
from export.server_files import WARMUP_FILE, tile_batch, warmup_signatures
from export_cases import example_inputs, exported  # noqa: F401 (fixture)
from tests.support.serving import ModelStore, grpc_server

TOLERANCE = 1e-5
# Plus a few float32 ULPs of the value: CIPS's rgb is not squashed, and the tiny runs reach |x| = 16.6 after one
# step, where float32's spacing is 1.9e-6; the C API's graph session (Grappler-rewritten) may round 8 ULPs
# apart from Keras there (seen once: 1.5e-5 absolute, 9e-7 relative).
RELATIVE = 1e-6


@pytest.fixture(scope="module")
def session(exported):
    """The exported version loaded through the C API, once per model; closed after the module."""
    with SavedModelSession(exported.version_dir) as loaded:
        yield loaded


def test_the_installed_tensorflow_exports_the_c_api_loader():
    """No skip: a wheel without the C API must fail here, with the library and symbol named."""
    lib = c_api.library()  # raises CApiUnavailable naming the missing function and the libraries searched
    assert lib.TF_Version().decode() == tf.__version__  # the C API of this TensorFlow, not another copy


def test_every_signature_through_the_c_api_session_equals_keras(exported, session):
    default, patch = session.signature_defs["serving_default"], session.signature_defs["generate_patch"]
    assert sorted(default.inputs) == sorted(patch.inputs) and sorted(default.outputs) == sorted(patch.outputs)
    for key, signature in warmup_signatures(exported.description).items():
        if key == "describe":
            continue
        feeds = example_inputs(exported, signature, 2, seed=3)
        assert set(feeds) == set(session.signature_defs[key].inputs)
        served = session.run(key, feeds)
        expected = exported.case.keras_outputs(exported.model, signature, feeds)
        assert set(served) == set(expected)
        for name, value in expected.items():
            assert served[name].dtype == np.float32
            np.testing.assert_allclose(served[name], value, atol=TOLERANCE, rtol=RELATIVE, err_msg=f"{key}.{name}")


def test_the_describe_signature_returns_the_description_as_a_string_tensor(exported, session):
    described = session.run("describe", {"request": np.zeros([2], np.int32)})["description"]
    assert described.shape == (2,)
    assert [json.loads(text) for text in described] == [exported.description] * 2


def test_a_refused_input_is_a_status_error_not_a_crash(exported, session):
    feeds = example_inputs(exported, "generate_patch", 1)
    latent = next(name for name, value in feeds.items() if value.ndim == 2)
    feeds[latent] = np.full_like(feeds[latent], np.nan)
    with pytest.raises(CApiError) as refused:
        session.run("generate_patch", feeds)
    assert refused.value.code_name == "INVALID_ARGUMENT" and "must be finite" in refused.value.message
    with pytest.raises(ValueError, match="takes inputs"):
        session.run("generate_patch", {latent: feeds[latent]})


def test_loading_a_folder_without_a_saved_model_reports_the_status(tmp_path):
    with pytest.raises(CApiError) as missing:
        SavedModelSession(tmp_path)
    assert missing.value.code_name == "NOT_FOUND" and str(tmp_path) in missing.value.message


def warmup_requests(version_dir):
    records = tf.data.TFRecordDataset(str(version_dir / WARMUP_FILE))
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request for record in records]


def test_warmup_requests_run_on_the_c_api_session_and_the_stand_in_server(exported, session):
    """One valid PredictRequest per exported signature, at the tile batch; both servers answer it alike."""
    requests = warmup_requests(exported.version_dir)
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(warmup_signatures(exported.description))
    name = exported.serving_dir.name
    assert {r.model_spec.name for r in requests} == {name}
    batch = tile_batch(exported.description)
    with grpc_server(ModelStore({name: exported.serving_dir})) as target, grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request in requests:
            key = request.model_spec.signature_name
            feeds = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            assert {value.shape[0] for value in feeds.values()} == {batch}, key
            by_server = {k: tf.make_ndarray(v) for k, v in stub.Predict(request, timeout=120).outputs.items()}
            by_c_api = session.run(key, feeds)
            assert set(by_server) == set(by_c_api) == set(session.signature_defs[key].outputs), key
            for output, value in by_c_api.items():
                assert value.shape[0] == batch, f"{key}.{output}"
                if value.dtype == object:  # describe: the JSON description
                    assert list(value) == list(by_server[output]), f"{key}.{output}"
                else:
                    assert np.isfinite(value).all(), f"{key}.{output}"
                    np.testing.assert_allclose(value, by_server[output], atol=TOLERANCE, rtol=RELATIVE,
                                               err_msg=f"{key}.{output}")
