"""Exporters of trained tfcoord runs and a tiled client.

* :mod:`export.saved_model` -- ``python -m export.saved_model``: TF Serving SavedModels;
* :mod:`export.tflite` -- ``python -m export.tflite``: per-patch TFLite (LiteRT) files;
* :mod:`export.client` -- ``python -m export.client``: any-size images from a served model;
* :mod:`export.backends`, :mod:`export.tiling` -- what the client talks to, and its tile plan;
* :mod:`export.testing` -- in-process stand-ins for TF Serving (gRPC and REST).
"""
