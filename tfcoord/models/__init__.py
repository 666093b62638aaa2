"""The registry of models. Each model is a subclass of :class:`tfcoord.models.base.CoordinateGan`.

Models are imported lazily so that listing them (and validating a command line)
does not import TensorFlow.
"""

import importlib

from tfcoord.config import closest
from tfcoord.errors import UserError

MODELS = {
    "cocogan": "tfcoord.models.cocogan.model:CocoGan",
    "gawwn": "tfcoord.models.gawwn.model:Gawwn",
    "text-encoder": "tfcoord.models.text_encoder.model:TextEncoderModel",
    "cips": "tfcoord.models.cips.model:Cips",
    "infinitygan": "tfcoord.models.infinitygan.model:InfinityGan",
}


def model_names() -> list[str]:
    return sorted(MODELS)


def check_model_name(name: str) -> str:
    if name not in MODELS:
        raise UserError(f"unknown model '{name}'{closest(name, MODELS)}; available models: {', '.join(model_names())}")
    return name


def model_class(name: str):
    """The model class registered under ``name``."""
    module_name, class_name = MODELS[check_model_name(name)].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _config_module(name: str):
    """The model's config module (dataclasses only; importing it does not import TensorFlow)."""
    return importlib.import_module(MODELS[check_model_name(name)].split(":")[0].rsplit(".", 1)[0] + ".config")


def section_classes(name: str) -> dict:
    """The model's own config sections, e.g. ``{"model": ..., "loss": ..., "optim": ...}``."""
    return _config_module(name).SECTIONS


def default_preset(name: str) -> str:
    """The preset ``python -m tfcoord.train --model NAME`` uses: small enough for a CPU."""
    return _config_module(name).DEFAULT_PRESET
