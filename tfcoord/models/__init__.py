"""The registry of models: each package listed in :data:`PACKAGES` registers one
:class:`~tfcoord.models.spec.ModelSpec` as ``SPEC`` in its ``__init__.py``.

Specs import no TensorFlow, so listing models (and validating a command line) stays fast;
the wrapper classes are imported when asked for.
"""

import importlib

from tfcoord.config import closest
from tfcoord.errors import UserError
from tfcoord.models.spec import Capability, ModelSpec

# Adding a model: a new folder tfcoord/models/<package>/ with its SPEC, and its package here.
PACKAGES = ("cocogan", "gawwn", "text_encoder", "cips", "infinitygan")
SPECS: dict[str, ModelSpec] = {}
for _package in PACKAGES:
    _spec = importlib.import_module(f"{__name__}.{_package}").SPEC
    SPECS[_spec.name] = _spec


def model_names() -> list[str]:
    return sorted(SPECS)


def check_model_name(name: str) -> str:
    if name not in SPECS:
        raise UserError(f"unknown model '{name}'{closest(name, SPECS)}; available models: {', '.join(model_names())}")
    return name


def model_spec(name: str) -> ModelSpec:
    return SPECS[check_model_name(name)]


def model_class(name: str):
    return model_spec(name).model_class()


def section_classes(name: str) -> dict:
    """The model's own config sections, e.g. ``{"model": ..., "loss": ..., "optim": ...}``."""
    return model_spec(name).sections


def default_preset(name: str) -> str:
    """The preset ``python -m tfcoord.train --model NAME`` uses: small enough for a CPU."""
    return model_spec(name).default_preset
