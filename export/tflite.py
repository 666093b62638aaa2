"""Export a trained run as a per-patch TFLite (LiteRT) model.

    python -m export.tflite --run runs/NAME --patch P [--quantize none|float16|dynamic-int8|int8]
                            [--batch B] [--report] --out FILE.tflite

The run is first written as a SavedModel holding only ``generate_patch`` with static
shapes (batch ``B``, default 1, or ``--batch 0`` for a batch the app picks at run time;
patch ``P``), then converted from that signature with
builtin ops only (tensorflow.md §13, P6-P8, P11), so the ``.tflite`` keeps the
``generate_patch`` signature with the SavedModel's input names and the ``rgb`` output.
Next to it, ``FILE.json`` holds the model description (how to build the inputs of
tile (i, j)) plus the file's inputs, outputs, op list and size. The same description is
embedded in the ``.tflite`` itself as the model metadata entry ``tfcoord_description``
(JSON; :func:`read_metadata`), so the file alone says how to tile.

``--quantize int8`` is full-integer quantisation of every op TFLite has an int8 kernel
for (weights and activations; the inputs and the output stay float32, so clients do not
change), calibrated on a representative set made by the model's own tile recipe: the
tiles of canvases of several seeds, as a client builds them. Ops without an int8 kernel
stay float (CIPS's Fourier features and embedding lookup: SIN, FLOOR, SQUARE); the
sidecar lists them as ``float_ops``. A model whose spec has ``calibration_inputs`` (GAWWN: the
conditions of its run's own data, the captions through its text encoder, the boxes or parts)
is calibrated on those as well as on random ones, and the geometry of its
``int8_float_inputs`` (GAWWN's box and keypoints) stays float on purpose: the file is then
integer in every learned layer but not integer throughout.

Checks before writing: no ``VAR_HANDLE``/``READ_VARIABLE`` op and a file of at least
half the expected weight bytes (an untracked-variable export is tiny and outputs NaN,
P3). TFLite cannot refuse NaN inputs: the SavedModel's finiteness checks are dropped by
the converter.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tfcoord import cli
from tfcoord.errors import UserError
from tfcoord.models import SPECS, model_spec

QUANTIZATIONS = ("none", "float16", "dynamic-int8", "int8")
BYTES_PER_WEIGHT = {"none": 4, "float16": 2, "dynamic-int8": 1, "int8": 1}
METADATA_NAME = "tfcoord_description"
REPRESENTATIVE_ROWS = 64  # calibration rows for int8 (TFLite's guidance: a few hundred at most)
SIGNATURE = "generate_patch"
# A .tflite is one FlatBuffer, addressable up to 2 GiB; the converter holds the float32 weights (several copies)
# whatever the quantisation: CIPS ffhq1024 (a 2 GiB embedding table) was killed for memory at 22 GB converting
# to float16, after its SavedModel had exported fine.
FLATBUFFER_LIMIT = 2 ** 31
FORBIDDEN_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")
# Where the float geometry of a spec's int8_float_inputs stops: the convolutions that read it as an activation
# (GAWWN keypoint G's maps).
GEOMETRY_STOPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})


def _interpreter(blob: bytes):
    """An interpreter of ``blob``, its tensors' details by index and its ops in execution order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=blob)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return interpreter, tensors, interpreter._get_ops_details()  # private API, pinned version


def geometry_nodes(blob: bytes, inputs) -> list[str]:
    """The output tensor names of the ops of ``blob`` that compute only from the signature inputs ``inputs`` (and
    constants), convolutions excepted: the geometry of a box or of keypoints, up to where it meets features."""
    interpreter, tensors, ops = _interpreter(blob)
    graph_inputs = interpreter.get_signature_runner(SIGNATURE).get_input_details()
    derived = {graph_inputs[name]["index"] for name in inputs if name in graph_inputs}
    computed = {i for op in ops for i in op["outputs"]} | {d["index"] for d in graph_inputs.values()}
    names = []
    for op in ops:
        data = [i for i in op["inputs"] if i in computed]  # constants (weights, shapes) are not data
        if op["op_name"] not in GEOMETRY_STOPS and data and all(i in derived for i in data):
            derived.update(op["outputs"])
            names.extend(tensors[i]["name"] for i in op["outputs"])
    return names


def convert(saved_model_dir, quantize: str, representative=None, float_inputs=()) -> bytes:
    """The ``.tflite`` bytes of the SavedModel's ``generate_patch``; ``representative`` (a callable yielding
    input dicts) calibrates ``int8``; ``float_inputs``: signature inputs whose geometry (:func:`geometry_nodes`)
    ``int8`` leaves in float32."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fail rather than need Flex (P11)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = representative
        # Only int8 kernels: conversion fails rather than leave float ops inside (the inputs and the
        # output stay float32, so the tile recipe and the clients do not change).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        if quantize != "int8" or not float_inputs:
            return converter.convert()
        # Selective float fallback, as tf.lite.experimental.QuantizationDebugger does it (denylisted_nodes):
        # calibrate, pick the geometry ops of the calibrated float graph, quantise all the others.
        from tensorflow.lite.python import convert as lite_convert

        converter.experimental_mlir_quantizer = True
        converter._experimental_calibrate_only = True  # private option, pinned version (as the debugger uses it)
        calibrated = converter.convert()
        return lite_convert.mlir_quantize(calibrated, denylisted_nodes=geometry_nodes(calibrated, float_inputs))
    except Exception as err:  # ConverterError and friends: show the first line, keep the cause
        raise RuntimeError(f"TFLite conversion failed: {str(err).splitlines()[0][:500]}") from err


def inspect(blob: bytes) -> dict:
    """Op names, signatures and tensor shapes of a TFLite model (read with ai_edge_litert)."""
    interpreter, _, ops = _interpreter(blob)
    runner = interpreter.get_signature_runner(SIGNATURE)

    def shapes(details):
        return {name: {"shape": [int(d) for d in info["shape_signature"]], "dtype": info["dtype"].__name__}
                for name, info in details.items()}

    return {"ops": sorted({op["op_name"] for op in ops}),
            "signatures": sorted(interpreter.get_signature_list()),
            "inputs": shapes(runner.get_input_details()), "outputs": shapes(runner.get_output_details())}


def representative_inputs(model, description: dict, batch: int, rows: int = REPRESENTATIVE_ROWS,
                          first_seed: int = 0):
    """A callable yielding ``rows`` input dicts of ``batch`` tiles, made as a client makes them: the tiles of
    native-size canvases of seeds ``first_seed``, ``first_seed + 1``, ... (models without a tile recipe: their
    example inputs). Calibration takes seeds from 0; accuracy checks take others.

    A model whose spec has ``calibration_inputs`` (GAWWN's data conditions): first ``rows`` more dicts from that
    hook (elements from ``first_seed * batch`` on), then the random ones; the callable's ``source`` says which were
    used.
    """
    from export.example_inputs import example_inputs
    from export.tiling import TilePlan

    conditioned, source = [], "random inputs of the signature"
    registered = SPECS.get(description.get("model_type"))
    if registered is not None and registered.calibration_inputs is not None:
        conditioned, source = registered.calibration_inputs.load()(model, batch, rows, first_seed * batch)

    def random_tiles():
        for seed in range(first_seed, first_seed + rows):
            if "tiling" not in description:
                yield example_inputs(model, description, SIGNATURE, batch, seed=seed)
                continue
            height, width = model.image_size()
            plan = TilePlan(description, width, height, seed=seed, signature=SIGNATURE)
            yield from (plan.inputs(group) for group in plan.batches(batch) if len(group) == batch)

    def tiles():
        yield from conditioned
        yield from itertools.islice(random_tiles(), rows)

    tiles.source = source
    return tiles


def float_ops(blob: bytes) -> list[str]:
    """The ops of a quantised model that still compute in float32 (DEQUANTIZE, which makes the output, excepted)."""
    _, tensors, ops = _interpreter(blob)
    return sorted({op["op_name"] for op in ops
                   if op["op_name"] != "DEQUANTIZE" and any(tensors[i]["dtype"] is np.float32 for i in op["outputs"])})


# Builtin ops the TFLite GPU delegate accepts, by name: the cases of CheckGpuDelegateCompatibility in
# tensorflow/lite/tools/versioning/gpu_compatibility.cc (tensorflow/tensorflow 03a5e4e). TensorFlow's own
# Analyzer(gpu_compatibility=True) was tried first; in TF 2.21 it calls models with UNIQUE and TOPK_V2
# compatible, which that file rejects, so the list is applied here.
GPU_DELEGATE_OPS = frozenset("""
    ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY
    DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR
    FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL
    LOG LOGICAL_AND LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD
    PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
    SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV""".split())


def gpu_delegate_report(blob: bytes) -> dict:
    """The ops of ``blob`` the TFLite GPU delegate would leave to the CPU, with counts and reasons.

    Checked: the op's name against :data:`GPU_DELEGATE_OPS`, and the conditions of that file that depend only
    on tensor ranks and types (SLICE / STRIDED_SLICE take 3-D or 4-D inputs; GATHER no int32 data; CAST only
    between float32, int32 and bool). Not checked: options (strided-slice masks, activations) and broadcast
    shapes, so a clean report is necessary, not sufficient.
    """
    _, tensors, ops = _interpreter(blob)
    unsupported = {}
    for op in ops:
        name, inputs = op["op_name"], [tensors[i] for i in op["inputs"] if i >= 0]
        reason = None
        if name not in GPU_DELEGATE_OPS:
            reason = "not in the delegate's op list"
        elif name in ("SLICE", "STRIDED_SLICE") and len(inputs[0]["shape"]) not in (3, 4):
            reason = f"{len(inputs[0]['shape'])}-D input (3-D or 4-D only)"
        elif name == "GATHER" and inputs[0]["dtype"] is np.int32:
            reason = "int32 data"
        elif name == "CAST":
            kinds = {np.dtype(t["dtype"]).name for t in (inputs[0], tensors[op["outputs"][0]])}
            if not kinds <= {"float32", "int32", "bool"}:
                reason = "cast between " + " and ".join(sorted(kinds))
        if reason:
            key = f"{name} ({reason})"
            unsupported[key] = unsupported.get(key, 0) + 1
    return {"unsupported_ops": unsupported, "checked_against": "tensorflow/lite/tools/versioning/gpu_compatibility.cc "
            "(tensorflow/tensorflow 03a5e4e): op names, input ranks and types"}


def with_metadata(blob: bytes, name: str, text: str) -> bytes:
    """``blob`` with a model metadata entry ``name`` holding ``text`` (UTF-8), replacing one of that name."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != name]
    buffer = schema.BufferT()
    buffer.data = list(text.encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path_or_blob) -> dict:
    """The metadata entries of a ``.tflite`` (name -> text); tfcoord's description is under ``tfcoord_description``."""
    from tensorflow.lite.python import schema_py_generated as schema

    blob = Path(path_or_blob).read_bytes() if isinstance(path_or_blob, (str, Path)) else bytes(path_or_blob)
    model = schema.Model.GetRootAs(blob, 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        entries[entry.Name().decode()] = bytes(data).decode(errors="replace") if not isinstance(data, int) else ""
    return entries


def check_blob(info: dict, size: int, weights: int, quantize: str) -> None:
    """Refuse a model that still reads variables or is far too small for its weights (P3)."""
    if SIGNATURE not in info["signatures"]:
        raise RuntimeError(f"the TFLite model lost its '{SIGNATURE}' signature (P6/P7)")
    leftover = sorted(set(info["ops"]) & set(FORBIDDEN_OPS))
    if leftover:
        raise RuntimeError(f"the TFLite model still has variable ops {leftover}: untracked variables (P3)")
    if size < 0.5 * BYTES_PER_WEIGHT[quantize] * weights:
        raise RuntimeError(f"the TFLite model has {size} bytes for {weights} weights: weights are missing (P3)")


def check_convertible(description: dict, model_type: str) -> None:
    """Refuse, before converting, a generator whose float32 weights alone fill a FlatBuffer."""
    stored = description["parameters"]["stored"]
    float32_bytes = BYTES_PER_WEIGHT["none"] * stored
    if float32_bytes >= FLATBUFFER_LIMIT:
        raise UserError(f"the {model_type} generator stores {stored:,} weights ({float32_bytes / 2 ** 30:.2f} GiB in "
                        f"float32), more than a .tflite file can hold (2 GiB; the converter works on the float32 "
                        f"weights whatever --quantize); serve it with the SavedModel: python -m export.saved_model")


def export_tflite(run_dir, out, patch: int, quantize: str = "none", batch: int = 1,
                  report: bool = False) -> tuple[Path, dict]:
    """Convert the newest checkpoint of ``run_dir`` to ``out``; returns (path, sidecar description).

    ``batch`` 0: a dynamic batch (the interpreter resizes the inputs to the batch it is given); COCO-GAN's
    generator loses its feature-map height under a dynamic batch and cannot be converted so. ``report``:
    add :func:`gpu_delegate_report` as ``tflite.gpu_delegate``.
    """
    from export.backends import sidecar_path
    from export.saved_model import run_description, save_serving_module
    from tfcoord.runs import load_run

    model, checkpoint = load_run(run_dir)
    with tempfile.TemporaryDirectory() as scratch:
        description = save_serving_module(model, Path(scratch) / "saved_model", run_description(model, run_dir, checkpoint),
                                          patch_size=patch, batch_size=batch or None, names=(SIGNATURE,))
        weights = description["parameters"]["trainable"]
        check_convertible(description, model.config.model_type)
        float_inputs = model_spec(model.config.model_type).int8_float_inputs
        representative = representative_inputs(model, description, batch or 1) if quantize == "int8" else None
        try:
            blob = convert(Path(scratch) / "saved_model", quantize, representative, float_inputs=float_inputs)
        except RuntimeError as err:
            if batch:
                raise
            raise UserError(f"the {model.config.model_type} generator cannot be converted with a dynamic batch "
                            f"({str(err)[:160]}); pass a fixed --batch B") from None
    info = inspect(blob)
    check_blob(info, len(blob), weights, quantize)
    out = Path(out)
    description["tflite"] = {"file": out.name, "quantize": quantize, "bytes": len(blob), "trainable_weights": weights,
                             "signature": SIGNATURE, **info}
    if quantize == "int8":
        description["tflite"]["float_ops"] = float_ops(blob)
        description["tflite"]["calibration"] = representative.source
        if float_inputs:
            description["tflite"]["float_geometry"] = (
                f"the ops computing only from {' and '.join(float_inputs)} stay float32 (int8 positions are too "
                "coarse for map cells and sampling weights); every learned layer is int8")
    if report:
        description["tflite"]["gpu_delegate"] = gpu_delegate_report(blob)
    # The description travels inside the file too (the sidecar's "tflite" section describes the file itself).
    embedded = {key: value for key, value in description.items() if key != "tflite"}
    blob = with_metadata(blob, METADATA_NAME, json.dumps(embedded))
    description["tflite"]["bytes"] = len(blob)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    sidecar_path(out).write_text(json.dumps(description, indent=1) + "\n")
    return out, description


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m export.tflite", description="Export a run as a per-patch TFLite model.")
    parser.add_argument("--run", required=True, help="run directory written by tfcoord.train")
    parser.add_argument("--patch", type=int, required=True, help="patch size in pixels (COCO-GAN: its micro size)")
    parser.add_argument("--quantize", default="none", choices=QUANTIZATIONS,
                        help="none (float32), float16 (weights), dynamic-int8 (int8 weights, float math) or int8 "
                             "(full-integer: int8 weights and activations, calibrated on the model's own tiles)")
    parser.add_argument("--batch", type=int, default=1,
                        help="patches per invocation, fixed (default 1); 0: dynamic, chosen by the app at run time")
    parser.add_argument("--out", required=True, help="the .tflite file to write (FILE.json is written next to it)")
    parser.add_argument("--report", action="store_true",
                        help="list the ops the TFLite GPU delegate would leave to the CPU (also kept in FILE.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    if not Path(args.run).is_dir():
        raise UserError(f"--run {args.run} does not exist; pass the --out folder of a training run")
    if not 1 <= args.patch <= 4096:
        raise UserError(f"--patch must be between 1 and 4096 pixels, got {args.patch}")
    if not 0 <= args.batch <= 1024:
        raise UserError(f"--batch must be between 1 and 1024, or 0 for a dynamic batch, got {args.batch}")
    out = Path(args.out)
    if out.suffix != ".tflite":
        raise UserError(f"--out {out} must end in .tflite (the description goes to {out.with_suffix('.json').name})")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it")
    return args


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow()
    out, description = export_tflite(args.run, args.out, args.patch, args.quantize, args.batch,
                                     report=args.report)
    info = description["tflite"]
    inputs = ", ".join(f"{name} {spec['shape']}" for name, spec in info["inputs"].items())
    outputs = ", ".join(f"{name} {spec['shape']}" for name, spec in info["outputs"].items())
    print(f"wrote {out} ({info['bytes'] / 1024:.1f} KiB, {args.quantize}; {SIGNATURE}: {inputs} -> {outputs}) "
          f"and {out.with_suffix('.json')}")
    if args.report:
        left = info["gpu_delegate"]["unsupported_ops"]
        print("GPU delegate: every op is on its list (ranks and types checked; options and broadcasts are not)"
              if not left else "GPU delegate would leave to the CPU: "
              + ", ".join(f"{op} x{count}" for op, count in sorted(left.items())))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
