"""The files TF Serving reads besides the SavedModel: the batching parameters and the model
config parse as the server's protos, say what the export holds, and bad input is one error line."""

import functools
import shutil

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from conftest import run_module
from export.server_files import BATCHING_FILE, CLIENT_REQUEST_TILES, WARMUP_FILE, batching_parameters_text, \
    model_server_config_text, tile_batch
from export_cases import EXPORT_CASES, exported  # noqa: F401 (fixture)


@functools.cache  # one message class: messages of two classes never compare equal
def batching_parameters_message():
    """``tensorflow.serving.BatchingParameters`` of upstream's session_bundle_config.proto (fields 1-7).

    The tensorflow-serving-api wheel ships no session_bundle_config_pb2; this is the message
    as tensorflow/serving declares it (names, numbers, wrapper types), so a misspelt or
    mistyped field fails to parse as it would in the server.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    wrapped = [("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
               ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
               ("thread_pool_name", "StringValue")]
    for number, (name, wrapper) in enumerate(wrapped, start=1):
        message.field.add(name=name, number=number, label=field.LABEL_OPTIONAL, type=field.TYPE_MESSAGE,
                          type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def parse_batching(text):
    return text_format.Parse(text, batching_parameters_message()())


def test_batching_parameters_parse_and_fit_the_tile_batch(exported):
    parameters = parse_batching(batching_parameters_text(exported.description))
    allowed = list(parameters.allowed_batch_sizes)
    batch = tile_batch(exported.description)
    assert allowed[0] == 1 and batch in allowed  # one image's tiles run unpadded
    assert all(a < b <= 2 * a for a, b in zip(allowed, allowed[1:]))  # padding costs < the rows it completes
    assert allowed[-1] == parameters.max_batch_size.value  # BatchingSession requires it
    assert parameters.max_batch_size.value >= 2 * max(batch, CLIENT_REQUEST_TILES)  # a default request is never refused
    assert parameters.num_batch_threads.value >= 1 and 0 < parameters.batch_timeout_micros.value <= 10_000


@pytest.mark.parametrize("exported", EXPORT_CASES[:1], indirect=True, ids=lambda case: case.name)  # model-agnostic
def test_cli_writes_batching_warmup_and_a_models_config_that_parse_as_tf_serving_protos(exported, tmp_path):
    serving = tmp_path / "serving"
    written = run_module("export.saved_model", "--run", exported.run_dir, "--out", serving / "coco", "--batching")
    assert written.returncode == 0, written.stderr[-2000:]
    batching_file = serving / "coco" / BATCHING_FILE
    assert BATCHING_FILE in written.stdout and (serving / "coco" / "1" / WARMUP_FILE).is_file()
    assert parse_batching(batching_file.read_text()) == parse_batching(batching_parameters_text(exported.description))

    shutil.copytree(serving / "coco" / "1", serving / "coco" / "2")  # a newer export of the same model
    shutil.copytree(exported.serving_dir, serving / "other")  # a second model (version 1)
    (serving / "coco" / "3-draft").mkdir()  # not a version: TF Serving ignores it, so must the config
    config_file = tmp_path / "models.config"
    made = run_module("export.models_config", "coco=" + str(serving / "coco"), "other=" + str(serving / "other"),
                      "--server-root", "/models", "--keep", "2", "--out", config_file)
    assert made.returncode == 0, made.stderr[-2000:]
    config = text_format.Parse(config_file.read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert list(entries) == ["coco", "other"]
    coco, other = entries["coco"], entries["other"]
    assert (coco.base_path, other.base_path) == ("/models/coco", "/models/other")
    assert coco.model_platform == other.model_platform == "tensorflow"
    # Labels name served versions only (TF Serving refuses others): canary the newest, stable the one before.
    assert list(coco.model_version_policy.specific.versions) == [1, 2]
    assert dict(coco.version_labels) == {"stable": 1, "canary": 2}
    assert list(other.model_version_policy.specific.versions) == [1]
    assert dict(other.version_labels) == {"stable": 1}


def test_models_config_defaults_to_absolute_paths_and_the_newest_version(tmp_path):
    for version in (1, 4):
        (tmp_path / "cips" / str(version)).mkdir(parents=True)
        (tmp_path / "cips" / str(version) / "saved_model.pb").write_bytes(b"")
    text = model_server_config_text({"cips": tmp_path / "cips"})
    (entry,) = text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config
    assert entry.base_path == str((tmp_path / "cips").resolve())
    assert list(entry.model_version_policy.specific.versions) == [4] and dict(entry.version_labels) == {"stable": 4}


def test_models_config_refuses_bad_input_with_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "model" / "1").mkdir(parents=True)
    (tmp_path / "model" / "1" / "saved_model.pb").write_bytes(b"")
    cases = {
        "no version": ([f"empty={tmp_path / 'empty'}"], ["no numbered version folder", "python -m export.saved_model"]),
        "a version folder": ([f"m={tmp_path / 'model' / '1'}"], ["pass its parent", f"m={tmp_path / 'model'}"]),
        "missing folder": ([f"m={tmp_path / 'nope'}"], ["no such folder"]),
        "not NAME=DIR": ([str(tmp_path / "model")], ["expected NAME=DIR"]),
        "repeated name": ([f"m={tmp_path / 'model'}", f"m={tmp_path / 'model'}"], ["given twice"]),
        "bad name": ([f"a/b={tmp_path / 'model'}"], ["/v1/models/NAME"]),
        "keep 0": ([f"m={tmp_path / 'model'}", "--keep", "0"], ["--keep must be at least 1"]),
    }
    for what, (args, fragments) in cases.items():
        refused = run_module("export.models_config", *args, "--out", tmp_path / "models.config")
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
        assert refused.returncode == 2 and len(errors) == 1, (what, refused.stderr[-2000:])
        assert all(fragment in errors[0] for fragment in fragments), (what, errors[0])
    assert not (tmp_path / "models.config").exists()
