"""The contract every registered model keeps, run over the model registry (keras-hub's ``run_backbone_test``).

For each spec in :data:`tfcoord.models.SPECS`: its presets load and round-trip through a run's
``config.yaml``; its wrapper builds; one step of the real training loop is finite; the reopened
run draws the sample grid the loop logged, and (Capability.IMAGES) its samples are finite images
of its full frame; its capabilities agree with its wrapper; its serving description is JSON a
client parses; where it tiles (Capability.TILES), the tiles of its serving functions equal the
library's full frame for the same seed; its SavedModel equals the model on every signature.
A new registered model gets all of it; a row in :data:`OVERRIDES` (narrower networks) or
:data:`FULL_FRAME` is all it may add.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from tfcoord.models import SPECS, Capability, ModelSpec
from tfcoord.models.base import CoordinateGan

SEED = 3
# Narrower networks than the tiny presets, so that all models together stay within the CI budget
# (``section.key=value`` as for --set). A model without a row runs its default preset as it is.
OVERRIDES = {
    "cocogan": ["model.ngf=8", "model.ndf=8"],
    "cips": ["model.hidden_size=16", "model.style_dim=16", "model.n_mlp=1"],
    "infinitygan": ["model.ts_channels=[16, 16, 8]", "model.global_latent_dim=16", "model.local_latent_dim=8"],
    "gawwn": ["model.image_size=32", "model.ngf=8", "model.ndf=8", "model.text_features=8",
              "model.keypoint_generator_width=8"],
    "text-encoder": ["model.cnn_channels=[8, 8, 8]", "model.embedding_dim=16", "model.image_encoder_width=4"],
}
# One step of batch 2, two samples: the loop also writes a sample grid and a checkpoint.
TRAINING = ["train.steps=1", "train.batch_size=2", "log.num_samples=2", "log.progress_bar=false"]
# The side of the model's full frame when it is not model.image_size(): InfinityGAN samples a canvas
# of 2 x 2 patches, whatever the size of the real images its patches are cut from.
FULL_FRAME = {"infinitygan": lambda model: (model.geometry.canvas_pixels(2),) * 2}


@dataclasses.dataclass
class Case:
    spec: ModelSpec
    overrides: list[str]

    def config(self, preset=None, extra=()):
        from tfcoord.config import load_config

        return load_config(self.spec.name, self.spec.sections, preset=preset or self.spec.default_preset,
                           overrides=[*self.overrides, *extra])

    def full_frame(self, model) -> tuple[int, int]:
        return FULL_FRAME.get(self.spec.name, lambda m: tuple(m.image_size()))(model)


@pytest.fixture(scope="module", params=list(SPECS.values()), ids=lambda spec: spec.name)
def case(request):
    return Case(request.param, OVERRIDES.get(request.param.name, []))


@pytest.fixture(scope="module")
def run(case, tmp_path_factory):
    """The run of one step of ``tfcoord.train``, reopened from its run directory as a user opens it.

    The loop runs its step eagerly: tracing every model's training step would take most of the
    suite's budget on two cores; the traced loop is covered per model (tests/models/*_distributed).
    """
    import tensorflow as tf

    import tfcoord

    values = {key: yaml.safe_load(value) for key, value in (text.split("=", 1) for text in case.overrides + TRAINING)}
    out = tmp_path_factory.mktemp(case.spec.name) / "run"
    tf.config.run_functions_eagerly(True)
    try:
        with warnings.catch_warnings():  # tf.data's functions stay graphs (as they should), and it says so
            warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_functions_eagerly`")
            return tfcoord.train(model=case.spec.name, out=str(out), **values)
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """``(version folder, description)`` of the run exported by export.saved_model."""
    from export.saved_model import export_saved_model

    return export_saved_model(run.path, tmp_path_factory.mktemp("serving") / run.model.name)


def as_json(value):
    return json.loads(json.dumps(value))


class ServingFunctionsBackend:
    """export.client's backend interface over a model's serving functions, run in this process
    (their Python functions, eagerly: the Keras networks themselves, no SavedModel)."""

    name = "serving_functions()"

    def __init__(self, model):
        self.functions = model.serving_functions()

    def metadata(self):
        return {name: {"inputs": {spec.name: spec.shape.as_list() for spec in fn.input_signature}}
                for name, fn in self.functions.items()}

    def predict(self, signature, inputs):
        import tensorflow as tf

        function = self.functions[signature]
        outputs = function.python_function(*[tf.constant(inputs[spec.name]) for spec in function.input_signature])
        return {name: np.asarray(value) for name, value in outputs.items()}


# -- config ------------------------------------------------------------------------------------
def test_every_preset_loads_and_round_trips_through_config_yaml(case, tmp_path):
    from tfcoord.config import load_run_config

    presets = case.spec.presets()
    assert case.spec.default_preset in presets
    for preset in presets:
        config = case.config(preset)
        config.save(tmp_path / "config.yaml")  # what a run writes (tfcoord.training.loop, convert)
        assert load_run_config(tmp_path, lambda name: case.spec.sections) == config, preset


def test_the_config_yaml_of_the_run_reads_back_as_the_config_it_trained_with(case, run):
    assert run.config == case.config(extra=TRAINING)
    assert run.config.to_dict() == yaml.safe_load((run.path / "config.yaml").read_text())


# -- build, train, sample ----------------------------------------------------------------------
def test_the_wrapper_builds(case):
    model = case.spec.model_class()(case.config())
    model.build()
    networks = model.network_items()
    assert networks and sum(len(network.weights) for network in networks.values()), list(networks)
    assert set(networks) <= set(model.checkpoint_items())
    assert all(isinstance(side, int) and side > 0 for side in model.image_size())


def test_one_step_of_the_training_loop_is_finite(run):
    records = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1]
    losses = {key: value for key, value in records[0].items() if key != "step" and isinstance(value, float)}
    assert losses and all(math.isfinite(value) for value in losses.values()), losses
    assert Path(run.checkpoint).name == "ckpt-1"


def test_the_reopened_run_draws_the_samples_the_loop_logged(run):
    """Every model's sample grid (Run.generate, the log): the same for a seed, from a reopened run too."""
    from PIL import Image

    from tfcoord.images import image_grid
    from tfcoord.training.loop import SAMPLE_SEED

    picture = run.model.progress_image(SAMPLE_SEED, 2)  # an image generator's: the grid of sample_images
    if isinstance(run.model, CoordinateGan):
        images = np.asarray(run.model.sample_images(SAMPLE_SEED, 2))
        assert np.isfinite(images).all() and images.min() >= -1.0 and images.max() <= 1.0
        np.testing.assert_array_equal(picture, image_grid(images))
    [logged] = (run.path / "samples").glob("*.png")
    np.testing.assert_array_equal(picture, np.asarray(Image.open(logged).convert("RGB")))


def test_samples_are_images_of_the_full_frame(case, run):
    if not case.spec.can(Capability.IMAGES):
        pytest.skip(f"{case.spec.name} draws no images")
    for num in (2, 1):
        images = np.asarray(run.model.sample_images(SEED, num))
        assert images.shape == (num, *case.full_frame(run.model), 3)
        assert np.isfinite(images).all() and images.min() >= -1.0 and images.max() <= 1.0


# -- capabilities and the serving description --------------------------------------------------
def test_capabilities_agree_with_the_wrapper(case, run):
    from tfcoord.metrics.views import HasPatchSize, SamplesAnySize

    cls, description = type(run.model), run.model.serving_description()
    assert case.spec.model_class() is cls
    assert case.spec.can(Capability.CANVAS) == callable(getattr(cls, "canvas_renderer", None))
    patches = isinstance(run.model, HasPatchSize) and isinstance(run.model, SamplesAnySize)
    assert case.spec.can(Capability.PATCHES) == patches
    assert case.spec.can(Capability.TILES) == ("tiling" in description)


def test_the_serving_description_is_json_a_client_parses(case, run):
    from tfcoord.serving import FORMAT as DESCRIPTION_FORMAT
    from export.tiling import check_description

    description = run.model.serving_description()
    assert as_json(description) == description  # plain JSON types: the asset and describe() carry it as is
    assert description["model_type"] == case.spec.name
    functions = run.model.serving_functions()
    assert run.model.default_signature in functions and set(description["signatures"]) <= set(functions)
    if not case.spec.can(Capability.TILES):
        return
    check_description({**description, "format": DESCRIPTION_FORMAT})  # the exporter adds the format
    tiling = description["tiling"]
    served = {spec.name for spec in functions[tiling["signature"]].input_signature}
    assert set(tiling["inputs"]) == served
    for name, recipe in tiling["inputs"].items():
        if recipe["source"] == "tile_coordinates":
            assert recipe["system"] in case.spec.tile_coordinates, name
            assert set(case.spec.tile_recipe_keys.get(recipe["system"], ())) <= set(recipe), name


# -- tiles and export --------------------------------------------------------------------------
def test_tiles_equal_the_full_frame(case, run):
    """The client's tile plan over the serving functions draws the canvas the library draws in one
    tile (the canvas engine: ``generate --width W --height H``) for the same seed."""
    from export.client import render
    from tfcoord.serving import FORMAT as DESCRIPTION_FORMAT
    from export.tiling import TilePlan
    from tfcoord.generation.tiles import plan_bands

    if not case.spec.can(Capability.TILES):
        pytest.skip(f"{case.spec.name} draws whole images: nothing to tile")
    assert case.spec.can(Capability.CANVAS), "a tiled model's canvas must equal the library's canvas_renderer"
    height, width = case.full_frame(run.model)
    plan = TilePlan({**run.model.serving_description(), "format": DESCRIPTION_FORMAT}, width, height, seed=SEED)
    tiles = render(ServingFunctionsBackend(run.model), plan, batch_size=3, max_in_flight=1, progress=False)

    renderer = run.model.canvas_renderer(width, height, SEED)
    side = renderer.tile_quantum * math.ceil(max(height, width) / renderer.tile_quantum)
    [[whole]] = plan_bands(width, height, side)
    full = np.asarray(renderer.render([whole])[0])
    assert tiles.shape == full.shape == (height, width, 3)
    np.testing.assert_allclose(tiles, full, atol=1e-4, rtol=0)


def test_the_saved_model_equals_the_model_on_every_signature(case, run, exported):
    from export.backends import SavedModelBackend
    from export.example_inputs import example_inputs

    version_dir, description = exported
    backend = SavedModelBackend(version_dir)
    assert backend.description() == description
    assert as_json(description) == description
    model = ServingFunctionsBackend(run.model)
    for name in [*model.functions, "serving_default"]:
        same_as = run.model.default_signature if name == "serving_default" else name
        inputs = example_inputs(run.model, description, same_as, 2)
        served, expected = backend.predict(name, inputs), model.predict(same_as, inputs)
        assert set(served) == set(expected), name
        for key, value in expected.items():
            np.testing.assert_allclose(served[key], value, atol=1e-5, rtol=0, err_msg=f"{name}.{key}")
