"""Exporters of trained tfcoord runs and a tiled client.

* :mod:`export.saved_model` -- ``python -m export.saved_model``: TF Serving SavedModels;
* :mod:`export.tflite` -- ``python -m export.tflite``: per-patch TFLite (LiteRT) files;
* :mod:`export.client` -- ``python -m export.client``: any-size images from a served model;
* :mod:`export.backends`, :mod:`export.tiling` -- what the client talks to, and its tile plan.

The in-process stand-ins for TF Serving that the tests and ``bench.export`` use live in
``tests/support/serving.py``, outside the installed packages.
"""
