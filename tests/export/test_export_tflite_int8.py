"""Full-integer TFLite (--quantize int8) for every model, and the description embedded in every .tflite."""

import json
import math

import numpy as np

from export.example_inputs import patch_size
from export_cases import exported  # noqa: F401 (fixture)

PSNR_FLOOR_DB = 25.0  # issue 19: int8 against Keras on the tiny presets
UNBOUNDED_FLOOR_DB = 18.0  # untrained unbounded outputs (measured 20.5 dB CIPS, 30.6 dB InfinityGAN)
# Ops the converter leaves in float32 (no int8 kernel), measured: CIPS's Fourier features (SIN) and
# embedding lookup (FLOOR, SQUARE, and the CONCATENATION of the two); InfinityGAN's SQUARE (the
# demodulation's sum of squared weights); GAWWN's box-warp interpolation indices (FLOOR, CAST, NEG,
# STRIDED_SLICE). COCO-GAN is integer throughout.
ALLOWED_FLOAT_OPS = {"cips": {"CONCATENATION", "FLOOR", "SIN", "SQUARE"}, "infinitygan": {"SQUARE"},
                     "gawwn": {"CAST", "FLOOR", "NEG", "STRIDED_SLICE"}}


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
    # The weighted layers all run in int8; what stays float (no int8 kernel) is listed in the sidecar.
    assert not float_math & {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL", "TRANSPOSE_CONV"}
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

