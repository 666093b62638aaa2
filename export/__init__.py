"""Exporters of trained tfcoord runs: SavedModel for TF Serving, TFLite per-patch models, a tiled client."""
