"""tfcoord: coordinate-conditioned image generation in TensorFlow 2 / Keras 3.

The public API (see :mod:`tfcoord.api`)::

    tfcoord.train(model=, preset=, **overrides) -> Run
    tfcoord.load_run(path) -> Run               # run.generate(seed=, num=), run.render(width=, height=, out=)
    tfcoord.export_saved_model(run_dir, out)    # TF Serving
    tfcoord.export_tflite(run_dir, out, patch=) # LiteRT

Importing ``tfcoord`` loads nothing heavy: TensorFlow is imported by the first call that needs it,
so the generator modules stay importable where only Keras on JAX is installed.
"""

__version__ = "0.1.0"
__all__ = ["Run", "UserError", "export_saved_model", "export_tflite", "load_run", "train", "__version__"]


# Public names and where they live, imported on first use.
_LAZY = {"Run": "tfcoord.api", "load_run": "tfcoord.api", "UserError": "tfcoord.errors",
         "export_saved_model": "export.saved_model", "export_tflite": "export.tflite"}


def __getattr__(name):
    import importlib

    if name == "train":  # the module of python -m tfcoord.train, callable as the API function (see there)
        return importlib.import_module("tfcoord.train")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfcoord' has no attribute {name!r}")
