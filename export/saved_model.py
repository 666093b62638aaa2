"""Export a trained run as a SavedModel for TF Serving.

    python -m export.saved_model --run runs/NAME --out serving/NAME [--model-version N] [--overwrite] [--batching]

writes ``serving/NAME/<version>/`` (``saved_model.pb``, ``variables/``,
``assets/tfcoord_model.json``, ``assets.extra/tf_serving_warmup_requests``), the layout
TF Serving polls: it serves the highest integer version of ``--model_base_path``, and
replays the warmup requests (one per signature, export/server_files.py) before it
serves a version. The version is written to a hidden folder first and renamed into
place, so a server never sees half of it. ``--batching`` also writes
``serving/NAME/batching_parameters.txt`` for ``--enable_batching``; ``python -m
export.models_config`` writes a ``models.config``. Signatures:

* the model's :meth:`~tfcoord.models.base.TrainableModel.serving_functions`
  (an image generator's ``generate_patch`` and its others), named TensorSpecs, dynamic batch;
* ``serving_default``: the same as the model's ``default_signature`` (``generate_patch``;
  ``encode_text`` for the text encoder);
* ``describe(request int32 (-1,)) -> {"description": string (-1,)}``: the JSON of the
  asset, so a client of a remote server can tile without the export folder.

The module holds only the raw ``tf.Variable``\\ s the traced functions read (not the
Keras objects): the TF1 session loader used by TF Serving finds them, and they are
stored once (tensorflow.md P2, P4). Spectrally normalised layers (COCO-GAN) are traced
with W/σ(W) computed once at export (:func:`frozen_spectral_norm`), so a request does
no power iteration and the SavedModel stores W/σ in place of ``w`` and ``u``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from export.server_files import BATCHING_FILE, WARMUP_FILE, batching_parameters_text, write_warmup_requests
from tfcoord import cli
from tfcoord.config import PRECISIONS
from tfcoord.errors import UserError
from tfcoord.serving import FORMAT

DESCRIPTION_ASSET = "tfcoord_model.json"
DESCRIBE = "describe"


def _shape(tensor_spec) -> list[int]:
    return [-1 if dim is None else int(dim) for dim in tensor_spec.shape]


def signature_specs(concrete_function) -> dict:
    """Input and output names, shapes (-1 = dynamic) and dtypes of a traced signature function."""
    args, kwargs = concrete_function.structured_input_signature
    inputs = {**{spec.name: spec for spec in args}, **kwargs}  # signatures take named TensorSpecs
    outputs = concrete_function.structured_outputs
    return {"inputs": {name: {"shape": _shape(spec), "dtype": spec.dtype.name} for name, spec in inputs.items()},
            "outputs": {name: {"shape": _shape(t), "dtype": t.dtype.name} for name, t in outputs.items()}}


def with_fixed_batch(function, batch_size: int):
    """The same tf.function traced with axis 0 of every input fixed (TFLite: static shapes)."""
    import tensorflow as tf

    specs = [tf.TensorSpec([batch_size, *spec.shape[1:]], spec.dtype, name=spec.name)
             for spec in function.input_signature]
    return tf.function(function.python_function, input_signature=specs)


@contextlib.contextmanager
def frozen_spectral_norm(networks):
    """Within the block, eval-mode calls of every spectrally normalised layer of ``networks``
    read W/σ(W) from a variable computed once on entry.

    Functions traced inside the block capture those variables instead of ``w`` and ``u``:
    the served graph skips the power iteration and the division, which read every kernel
    four times per call (COCO-GAN CelebA 64: 21 -> 10 ms per patch on 2 CPU cores), and
    gives the same numbers (W/σ is what an eval-mode call computes; ``u`` does not change
    outside training). The variables are trainable, like the kernels they stand for. On
    exit the layers run the power iteration again; the block yields the new variables,
    which the caller must keep referenced as long as it uses the traced functions.
    """
    import tensorflow as tf

    from tfcoord.layers.spectral_norm import spectral_norm_layers

    layers = [layer for network in networks for layer in spectral_norm_layers(network)]
    kernels = []  # traced functions hold variables weakly: the caller keeps these alive
    try:
        for layer in layers:
            kernels.append(tf.Variable(layer.normalized_kernel(), name=f"{layer.kernel.path}_normalized"))
            layer.use_inference_kernel(kernels[-1])
        yield kernels
    finally:
        for layer in layers:
            layer.use_inference_kernel(None)


def serving_module(model, description: dict, *, patch_size=None, batch_size=None, names=None):
    """A ``tf.Module`` holding the raw variables, the concrete signature functions to save with it,
    and the description.

    Returns ``(module, signatures, description)``; the description gains the traced
    shapes of every signature and the parameter counts. ``names`` restricts the exported
    signatures (``describe`` included only when named or when ``names`` is None).
    """
    import tensorflow as tf

    functions = model.serving_functions() if patch_size is None else model.serving_functions(patch_size=patch_size)
    default = model.default_signature
    if default not in functions:
        raise ValueError(f"{type(model).__name__}.serving_functions() must return its {default!r} function")
    if names is not None:
        missing = sorted(set(names) - set(functions) - {DESCRIBE})
        if missing:
            raise UserError(f"the {model.name} model has no {', '.join(missing)} signature")
        functions = {name: fn for name, fn in functions.items() if name in names}
    if batch_size is not None:
        functions = {name: with_fixed_batch(fn, batch_size) for name, fn in functions.items()}
    with frozen_spectral_norm(model.network_items().values()):
        concrete = {name: fn.get_concrete_function() for name, fn in functions.items()}
        # Raw variables, each once, in a stable order: what the C++ loader restores (P2, P4).
        variables = list({id(v): v for cf in concrete.values() for v in cf.variables}.values())
    with_describe = names is None or DESCRIBE in names

    description = json.loads(json.dumps(description))  # a copy, and proof that it is JSON
    documented = description.get("signatures", {})
    description["format"] = FORMAT  # the version of the description's schema (tfcoord.serving.SCHEMA)
    description["signatures"] = {name: {**documented.get(name, {}), **signature_specs(cf)}
                                 for name, cf in concrete.items()}
    if with_describe:
        description["signatures"][DESCRIBE] = {
            "doc": "this description as JSON, one copy per element of request",
            "inputs": {"request": {"shape": [-1], "dtype": "int32"}},
            "outputs": {"description": {"shape": [-1], "dtype": "string"}}}
    description["serving_default"] = default
    description["parameters"] = {"trainable": sum(v.shape.num_elements() for v in variables if v.trainable),
                                 "stored": sum(v.shape.num_elements() for v in variables)}
    text = json.dumps(description, indent=1)

    module = tf.Module()
    module.model_variables = variables  # signatures only: attached tf.functions would be stored twice
    signatures = dict(concrete, serving_default=concrete[default])
    if with_describe:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="request")])
        def describe(request):
            return {"description": tf.fill(tf.shape(request), tf.constant(text))}

        signatures[DESCRIBE] = describe.get_concrete_function()
    return module, signatures, description


def save_serving_module(model, export_dir, description: dict, **options) -> dict:
    """Write the SavedModel of ``model`` to ``export_dir``; returns the stored description."""
    import tensorflow as tf

    module, signatures, description = serving_module(model, description, **options)
    with tempfile.TemporaryDirectory() as scratch:
        asset = Path(scratch) / DESCRIPTION_ASSET
        asset.write_text(json.dumps(description, indent=1) + "\n")
        module.description_asset = tf.saved_model.Asset(str(asset))
        tf.saved_model.save(module, str(export_dir), signatures=signatures)
    return description


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def run_description(model, run_dir, checkpoint) -> dict:
    import tfcoord

    description = model.serving_description()
    description["source"] = {"run": Path(run_dir).name, "checkpoint": Path(checkpoint).name,
                             "tfcoord_version": tfcoord.__version__}
    return description


def check_out(out: Path, version, overwrite: bool) -> tuple[Path, int]:
    """The version folder to write, or a UserError (``out`` is a file, a bad or existing version)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder (the model base path TF Serving serves)")
    version = next_version(out) if version is None else version
    if version < 1:
        raise UserError(f"--model-version must be a positive integer (TF Serving versions are 1, 2, ...), "
                        f"got {version}")
    target = out / str(version)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; pass --overwrite to replace it, or omit --model-version to write "
                        f"version {next_version(out)}")
    return target, version


def export_saved_model(run_dir, out, version=None, overwrite=False, precision="float32") -> tuple[Path, dict]:
    """Export the newest checkpoint of ``run_dir`` to ``out/<version>``, warmup requests included
    (model name: the folder name of ``out``); returns (path, description).

    ``precision``: the generator's compute dtype policy in the exported graph (float32 variables and
    float32 images in every case; see tfcoord.training.precision)."""
    from tfcoord.runs import load_run

    out = Path(out)
    target, version = check_out(out, version, overwrite)
    model, checkpoint = load_run(run_dir, precision=precision)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".tmp-{version}-{os.getpid()}"  # TF Serving ignores non-integer folders
    try:
        description = save_serving_module(model, staging, run_description(model, run_dir, checkpoint))
        write_warmup_requests(staging, model, description, model_name=out.resolve().name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, description


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m export.saved_model",
                                description="Export a trained run as a SavedModel for TF Serving.")
    parser.add_argument("--run", required=True, help="run directory written by tfcoord.train")
    parser.add_argument("--out", required=True, help="model base folder, e.g. serving/NAME")
    parser.add_argument("--model-version", type=int, help="version folder to write (default: the next integer)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    parser.add_argument("--batching", action="store_true",
                        help=f"also write OUT/{BATCHING_FILE} (TF Serving --batching_parameters_file), "
                             "chosen from the model's tile batch")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="compute dtype policy of the exported generator (variables and images stay float32; "
                             "for TFLite use python -m export.tflite --quantize float16)")
    args = parser.parse_args(argv)
    if not Path(args.run).is_dir():
        raise UserError(f"--run {args.run} does not exist; pass the --out folder of a training run")
    check_out(Path(args.out), args.model_version, args.overwrite)
    return args


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow()
    target, description = export_saved_model(args.run, args.out, args.model_version, args.overwrite,
                                             precision=args.precision)
    signatures = ", ".join(sorted(description["signatures"]))
    print(f"wrote {target} ({description['model_type']}; signatures: {signatures}, serving_default; "
          f"warmup requests in {WARMUP_FILE})")
    if args.batching:
        path = Path(args.out) / BATCHING_FILE
        path.write_text(batching_parameters_text(description))
        print(f"wrote {path} (tensorflow_model_server --enable_batching --batching_parameters_file={path})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
