"""Full-integer TFLite (--quantize int8) for every model, and the description embedded in every .tflite."""

import json
import math

import numpy as np
import pytest

from export.example_inputs import patch_size
from export_cases import exported, gawwn_keras  # noqa: F401 (fixture)

PSNR_FLOOR_DB = 25.0  # issue 19: int8 against Keras on the tiny presets
UNBOUNDED_FLOOR_DB = 18.0  # untrained unbounded outputs (measured 20.5 dB CIPS, 30.6 dB InfinityGAN)
# Ops the converter leaves in float32 (no int8 kernel), measured: CIPS's Fourier features (SIN) and
# embedding lookup (FLOOR, SQUARE, and the CONCATENATION of the two); InfinityGAN's SQUARE (the
# demodulation's sum of squared weights). COCO-GAN is integer throughout. GAWWN keeps on purpose every
# op that computes only from the box or the keypoints in float32 (the gawwn spec's int8_float_inputs):
# the box warp's sampling weights and the keypoint map cells, including the fixed 0/+-1 box-to-theta matmul.
BOX_GEOMETRY_OPS = {"ADD", "CAST", "DIV", "FLOOR", "FULLY_CONNECTED", "MAXIMUM", "MUL", "NEG", "PACK", "RESHAPE",
                    "STRIDED_SLICE", "SUB", "TILE"}
KEYPOINT_GEOMETRY_OPS = {"ADD", "CAST", "FLOOR", "MAXIMUM", "MINIMUM", "MUL", "ONE_HOT", "RELU", "RESHAPE",
                         "STRIDED_SLICE", "SUB", "SUM", "TRANSPOSE"}
ALLOWED_FLOAT_OPS = {"cips": {"CONCATENATION", "FLOOR", "SIN", "SQUARE"}, "infinitygan": {"SQUARE"},
                     "gawwn": BOX_GEOMETRY_OPS | KEYPOINT_GEOMETRY_OPS}


def test_int8_is_integer_throughout_close_to_keras_and_carries_its_description(exported, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from export.tflite import METADATA_NAME, export_tflite, read_metadata, representative_inputs

    path, description = export_tflite(exported.run_dir, tmp_path / "int8.tflite", patch_size(exported.description),
                                      "int8", report=True)
    # Every op of every model is one the TFLite GPU delegate runs (GAWWN's box warp avoids UNPACK for it).
    assert description["tflite"]["gpu_delegate"]["unsupported_ops"] == {}
    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    float_math = {op["op_name"] for op in interpreter._get_ops_details()
                  if op["op_name"] != "DEQUANTIZE" and any(tensors[i]["dtype"] is np.float32 for i in op["outputs"])}
    # The learned layers all run in int8 (a float FULLY_CONNECTED is GAWWN's fixed 4 x 6 box-to-theta matrix);
    # what stays float is listed in the sidecar.
    assert not float_math & {"CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL", "TRANSPOSE_CONV"}
    assert all(tensors[op["inputs"][1]]["shape"].tolist() == [6, 4] for op in interpreter._get_ops_details()
               if op["op_name"] == "FULLY_CONNECTED" and tensors[op["outputs"][0]]["dtype"] is np.float32)
    assert float_math == set(description["tflite"]["float_ops"]), float_math
    assert float_math <= ALLOWED_FLOAT_OPS.get(exported.case.model_type, set()), float_math
    runner = interpreter.get_signature_runner("generate_patch")
    errors, signal = [], []
    for inputs in representative_inputs(exported.model, description, 1, rows=8, first_seed=1000)():
        expected = exported.case.keras_outputs(exported.model, "generate_patch", inputs)["rgb"]
        errors.append(np.mean((runner(**inputs)["rgb"] - expected) ** 2))
        signal.append(np.ptp(expected))
    # [-1, 1] outputs: peak-to-peak 2. The runs here have at most one training step; untrained CIPS and
    # InfinityGAN draw unbounded values (|x| up to ~20), judged against their own range with a lower floor.
    # Trained tiny runs (python -m bench.int8) are judged against 2 throughout.
    peak = max(2.0, max(signal))
    psnr = 10 * math.log10(peak ** 2 / float(np.mean(errors)))
    print(f"{exported.case.name}: int8 PSNR {psnr:.1f} dB (peak {peak:.2f}) over 8 held-out tiles")
    assert psnr >= (PSNR_FLOOR_DB if peak == 2.0 else UNBOUNDED_FLOOR_DB), psnr

    embedded = json.loads(read_metadata(path)[METADATA_NAME])
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert embedded == {key: value for key, value in sidecar.items() if key != "tflite"}
    assert embedded["signatures"]["generate_patch"] and embedded["model_type"] == exported.case.model_type
    assert sidecar["tflite"]["quantize"] == "int8" and sidecar["tflite"]["bytes"] == path.stat().st_size


def variance_preserving_gawwn_run(run_dir, conditioning: str):
    """A tiny GAWWN run whose sampling generator has He-initialised kernels (seed 0) and a to-RGB kernel 3 x
    larger: its images vary with the conditions over most of [-1, 1], as a trained run's do, which the official
    N(0, 0.02) initialisation (near-constant images) does not show."""
    from tests.support.serving import write_run
    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    config = load_config("gawwn", section_classes("gawwn"), preset="tiny",
                         overrides=[f"model.conditioning={conditioning}"])
    model = model_class("gawwn")(config)
    model.build()
    rng = np.random.default_rng(0)
    for weight in model.sampling_generator.weights:
        if weight.path.endswith("kernel"):
            gain = 3.0 if "to_rgb" in weight.path else 1.0
            std = gain * math.sqrt(2.0 / np.prod(weight.shape[:-1]))
            weight.assign(rng.normal(0.0, std, weight.shape).astype("float32"))
    return write_run(model, run_dir)


@pytest.mark.parametrize("conditioning", ["box", "keypoints"])
def test_gawwn_int8_keeps_its_where_geometry_float_and_stays_close_to_keras(conditioning, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from export.tflite import export_tflite, representative_inputs
    from tfcoord.runs import load_run

    run_dir = variance_preserving_gawwn_run(tmp_path / "run", conditioning)
    model, _ = load_run(run_dir)
    path, description = export_tflite(run_dir, tmp_path / "int8.tflite", model.image_size()[0], "int8")
    runner = Interpreter(model_path=str(path)).get_signature_runner("generate_patch")
    errors, spread = [], []
    for inputs in representative_inputs(model, description, 1, rows=4, first_seed=1000)():  # 4 data, 4 random
        expected = gawwn_keras(model, "generate_patch", inputs)["rgb"]
        errors.append(np.mean((runner(**inputs)["rgb"] - expected) ** 2))
        spread.append(np.std(expected))
    psnr = 10 * math.log10(4.0 / float(np.mean(errors)))
    print(f"gawwn {conditioning}: int8 PSNR {psnr:.1f} dB, image std {np.mean(spread):.2f}")
    # Measured 41.4 dB (box) and 33.0 dB (keypoints); with the geometry in int8, 21.0 and 10.0 dB.
    assert np.mean(spread) > 0.2 and psnr >= PSNR_FLOOR_DB, psnr
    assert set(description["tflite"]["float_ops"]) == (BOX_GEOMETRY_OPS if conditioning == "box"
                                                       else KEYPOINT_GEOMETRY_OPS)
    assert description["tflite"]["calibration"].startswith("64 batches with the conditions of synthetic-birds")


def test_gawwn_calibration_without_its_data_says_it_used_random_conditions(tmp_path):
    from export.tflite import representative_inputs
    from tfcoord.models.gawwn.inputs import data_conditions
    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    overrides = [f"data.source=annotations:{tmp_path / 'missing.jsonl'}"]
    model = model_class("gawwn")(load_config("gawwn", section_classes("gawwn"), preset="tiny", overrides=overrides))
    model.build()
    assert data_conditions(model, 1, 2, 0)[0] == []
    description = model.serving_description()
    description["signatures"]["generate_patch"] = {"inputs": {
        "z": {"shape": [-1, 100], "dtype": "float32"}, "text_embedding": {"shape": [-1, 128], "dtype": "float32"},
        "box": {"shape": [-1, 4], "dtype": "float32"}}}
    tiles = representative_inputs(model, description, 1, rows=3)
    assert "could not be read" in tiles.source and len(list(tiles())) == 3


def test_the_gpu_delegate_report_names_what_the_delegate_leaves_to_the_cpu():
    import tensorflow as tf

    from export.tflite import gpu_delegate_report

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32), tf.TensorSpec([16], tf.int32)])
    def model(x, labels):
        top, _ = tf.math.top_k(x, 4)  # TOPK_V2: not in the delegate's list
        unique = tf.unique(labels)[0]  # UNIQUE: neither
        five_d = tf.reshape(x, [1, 2, 2, 2, 2])[:, :, :, :, :1]  # STRIDED_SLICE on a 5-D input
        return top + tf.reduce_sum(five_d), unique

    blob = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model).convert()
    left = gpu_delegate_report(blob)["unsupported_ops"]
    assert left == {"TOPK_V2 (not in the delegate's op list)": 1, "UNIQUE (not in the delegate's op list)": 1,
                    "STRIDED_SLICE (5-D input (3-D or 4-D only))": 1}, left

