"""Exportable runs: one tiny trained run per model, exported once per test session.

To cover a new model, add one ``ExportCase`` to ``EXPORT_CASES``: its run (a fixture of
tests/conftest.py, or overrides of its tiny preset) and the Keras call each of its
signatures must equal (inputs come from :func:`export.example_inputs.example_inputs`).

Test modules import the ``exported`` fixture from here (a conftest.py in this folder would
shadow ``from conftest import run_module`` of the root conftest for later test modules);
the run is built once per session whichever module asks first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import pytest


def cocogan_keras(model, signature, inputs):
    """What COCO-GAN's signatures compute, through the Keras model."""
    if signature == "generate_patch":
        return {"rgb": np.asarray(model.sampler.micro_patches(inputs["z"], inputs["micro_coords"]))}
    if signature == "generate_full":
        return {"rgb": model.sampler.generate_full(inputs["z"])}
    raise KeyError(signature)


def cips_keras(model, signature, inputs):
    """What CIPS's signatures compute, through the model's rendering API (eval mode, no noise)."""
    if signature == "map_latent":
        return {"style": model.sampler.styles(inputs["z"])}
    style = inputs["style"] if signature == "synthesize" else model.sampler.styles(inputs["z"])
    return {"rgb": model.sampler.render(style, inputs["coords"])}


def infinitygan_keras(model, signature, inputs):
    """What InfinityGAN's signatures compute, through the Keras generator (eval mode)."""
    generator = model.sampler.generator
    if signature == "map_latent":
        return {"style": np.asarray(generator.texture.map(inputs["global_latent"]))}
    noises = [inputs[name] for name in sorted(inputs) if name.startswith("noise_")]
    rgb = generator(inputs["global_latent"], inputs["local_latent"], inputs["coords"], noises or None)
    return {"rgb": np.asarray(rgb)}


def gawwn_keras(model, signature, inputs):
    """What GAWWN's signatures compute, through the model's generation API (eval mode)."""
    sampler = model.sampler
    if signature == "complete_keypoints":
        return {"keypoints": sampler.complete_keypoints(inputs["z"], inputs["text_embedding"], inputs["keypoints"])}
    if signature == "encode_text":
        return {"text_embedding": sampler.encode_tokens(inputs["tokens"])}
    condition = inputs.get("box", inputs.get("keypoints"))
    generate = sampler.generate_from_box if "box" in inputs else sampler.generate_from_keypoints
    return {"rgb": generate(inputs["z"], inputs["text_embedding"], condition)}


@dataclasses.dataclass(frozen=True)
class ExportCase:
    name: str
    model_type: str
    keras_outputs: Callable  # (model, signature, inputs) -> {output: array}
    # A session fixture of tests/conftest.py returning a run directory, or the tiny run to build.
    run_fixture: str | None = None
    preset: str | None = None  # default: the model's default (tiny) preset
    overrides: tuple[str, ...] = ()
    train_steps: int = 1  # eager training steps before the checkpoint (non-trivial BN statistics)
    untileable: str = ""  # why export.client cannot render it tile by tile (empty: it can)


EXPORT_CASES = [
    ExportCase("cocogan", "cocogan", cocogan_keras, run_fixture="tiny_cocogan_run"),
    ExportCase("cocogan-panorama", "cocogan", cocogan_keras, run_fixture="tiny_panorama_run"),
    ExportCase("cips", "cips", cips_keras, train_steps=0),
    ExportCase("infinitygan", "infinitygan", infinitygan_keras, train_steps=0),
    ExportCase("gawwn", "gawwn", gawwn_keras, train_steps=0,
               untileable="GAWWN draws whole images from (z, text, box or keypoints): nothing to tile"),
]


@dataclasses.dataclass
class Exported:
    case: ExportCase
    run_dir: Path
    model: object  # the run's model restored from its checkpoint (Keras networks in memory)
    serving_dir: Path  # the model base folder; version 1 inside
    version_dir: Path
    description: dict


_EXPORTED = {}


@pytest.fixture(scope="session", params=EXPORT_CASES, ids=lambda case: case.name)
def exported(request, tmp_path_factory):
    """A tiny run of each model, exported by export.saved_model to ``serving/<name>/1``."""
    case = request.param
    if case.name not in _EXPORTED:
        from conftest import make_run
        from export.saved_model import export_saved_model
        from tfcoord.models import default_preset
        from tfcoord.runs import load_run

        root = tmp_path_factory.mktemp(case.name)
        if case.run_fixture:
            run_dir = request.getfixturevalue(case.run_fixture)
        else:
            run_dir = make_run(root / "runs" / case.name, case.model_type,
                               case.preset or default_preset(case.model_type), case.overrides, case.train_steps)
        model, _ = load_run(run_dir)
        version_dir, description = export_saved_model(run_dir, root / "serving" / case.name)
        _EXPORTED[case.name] = Exported(case, run_dir, model, root / "serving" / case.name, version_dir, description)
    return _EXPORTED[case.name]


def example_inputs(exported: Exported, signature: str, batch: int, seed: int = 0, description=None) -> dict:
    """Inputs of ``signature`` for ``batch`` rows (``description``: e.g. a TFLite sidecar's; default the export's)."""
    from export.example_inputs import example_inputs as valid_inputs

    return valid_inputs(exported.model, description or exported.description, signature, batch, seed)
