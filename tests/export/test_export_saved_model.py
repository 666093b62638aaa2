"""SavedModel export: what TF Serving loads equals the Keras model, and refuses bad input."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export.saved_model import DESCRIPTION_ASSET
from conftest import run_module
from export_cases import EXPORT_CASES, example_inputs, exported  # noqa: F401 (fixture)

TOLERANCE = 1e-5


def image_signatures(description):
    return [name for name in description["signatures"] if name != "describe"]


@contextlib.contextmanager
def like_model_server(export_dir):
    """The TF1 graph/session loader, what the C++ model server does (tensorflow.md §12);
    yields ``run(signature, feeds) -> {output: array}``."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))

        def run(signature, feeds):
            signature_def = meta_graph.signature_def[signature]
            fetches = {name: info.name for name, info in signature_def.outputs.items()}
            return session.run(fetches, {signature_def.inputs[name].name: value for name, value in feeds.items()})

        yield run


def test_signatures_equal_keras_through_the_tf2_loader(exported):
    signatures = tf.saved_model.load(str(exported.version_dir)).signatures
    assert {"generate_patch", "serving_default", "describe"} <= set(signatures)
    for name in image_signatures(exported.description) + ["serving_default"]:
        inputs = example_inputs(exported, name if name != "serving_default" else "generate_patch", 2)
        served = signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        expected = exported.case.keras_outputs(exported.model, "generate_patch" if name == "serving_default" else name,
                                               inputs)
        assert set(served) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(served[key].numpy(), value, atol=TOLERANCE, rtol=0, err_msg=f"{name}.{key}")


def test_signatures_equal_keras_through_the_session_loader_of_tf_serving(exported):
    inputs = {name: example_inputs(exported, name, 2, seed=1) for name in image_signatures(exported.description)}
    with like_model_server(exported.version_dir) as run:  # a graph context: Keras runs after it
        served = {name: run(name, feeds) for name, feeds in inputs.items()}
        described = run("describe", {"request": np.zeros([1], np.int32)})
    for name, feeds in inputs.items():
        for key, value in exported.case.keras_outputs(exported.model, name, feeds).items():
            np.testing.assert_allclose(served[name][key], value, atol=TOLERANCE, rtol=0, err_msg=f"{name}.{key}")
    assert json.loads(described["description"][0]) == exported.description


def test_the_asset_and_the_describe_signature_carry_the_tiling_recipe(exported):
    asset = json.loads((exported.version_dir / "assets" / DESCRIPTION_ASSET).read_text())
    assert asset == exported.description
    described = tf.saved_model.load(str(exported.version_dir)).signatures["describe"](request=tf.zeros([2], tf.int32))
    assert [json.loads(text) for text in described["description"].numpy()] == [asset, asset]
    if "tiling" not in asset:  # a model that draws whole images (GAWWN)
        return
    tiling = asset["tiling"]
    assert tiling["signature"] in asset["signatures"]
    assert set(tiling["inputs"]) == set(asset["signatures"][tiling["signature"]]["inputs"])
    patch = asset["signatures"][tiling["signature"]]["outputs"]["rgb"]["shape"]
    assert patch[0] == -1 and patch[3] == 3
    assert patch[1:3] in (tiling["tile_size"], [-1, -1])  # the tile, or any size (e.g. CIPS)


def test_variables_are_stored_once_and_only_those_the_signatures_read(exported):
    data = sum(f.stat().st_size for f in (exported.version_dir / "variables").glob("variables.data-*"))
    stored = exported.description["parameters"]["stored"]
    assert 4 * stored <= data < 4 * stored * 1.05 + 64 * 1024  # float32, once (P4)



def test_spectral_norm_is_computed_at_export_not_per_request(exported):
    """COCO-GAN's served graph reads W/σ(W) stored at export: no u, no power iteration per call."""
    from export.saved_model import serving_module
    from tfcoord.layers.spectral_norm import spectral_norm_layers

    stored = [v.name for v in tf.saved_model.load(str(exported.version_dir)).model_variables]
    normalized = [name for name in stored if name.endswith("_normalized:0")]
    assert not [name for name in stored if name.endswith("/u:0")]
    networks = exported.model.network_items()
    generator_layers = spectral_norm_layers(networks["generator"]) if "generator" in networks else []
    assert len(normalized) == len(generator_layers)  # every SN layer of G; none of D
    assert generator_layers or exported.case.model_type != "cocogan"
    layers = [layer for network in networks.values() for layer in spectral_norm_layers(network)]
    if layers:  # the Keras model is left as it was: eval calls run the power iteration again
        serving_module(exported.model, exported.description, names=("generate_patch",))
        assert all(layer._inference_kernel is None for layer in layers)

def test_saved_model_cli_lists_the_documented_signatures(exported):
    shown = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all",
                            "--dir", str(exported.version_dir)], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name, spec in exported.description["signatures"].items():
        assert f"signature_def['{name}']" in shown.stdout
        for input_name, tensor in spec["inputs"].items():
            shape = "(" + ", ".join(str(d) for d in tensor["shape"]) + ")"
            assert f"inputs['{input_name}'] tensor_info:" in shown.stdout
            assert shape in shown.stdout, f"{name}.{input_name} {shape}"
    assert "signature_def['serving_default']" in shown.stdout
    assert "outputs['rgb'] tensor_info:" in shown.stdout
    assert "Method name is: tensorflow/serving/predict" in shown.stdout


@pytest.mark.parametrize("loader", ["tf2", "session"])
def test_bad_inputs_are_refused(exported, loader):
    specs = exported.description["signatures"]["generate_patch"]["inputs"]
    good = example_inputs(exported, "generate_patch", 2)
    latent = next(name for name, spec in specs.items() if len(spec["shape"]) == 2 and spec["shape"][1] > 0)
    coords = next(name for name in good if name != latent)
    nan = dict(good, **{latent: np.where(np.arange(good[latent].size).reshape(good[latent].shape) == 3, np.nan,
                                         good[latent]).astype("float32")})
    inf = dict(good, **{coords: np.full_like(good[coords], np.inf)})
    bad = {
        "wrong rank": dict(good, **{latent: good[latent][None]}),
        "wrong latent size": dict(good, **{latent: good[latent][:, :-1]}),
        "NaN latent": nan,
        "infinite coordinates": inf,
        "batch mismatch": dict(good, **{coords: good[coords][:1]}),
    }
    with contextlib.ExitStack() as stack:
        if loader == "tf2":
            generate_patch = tf.saved_model.load(str(exported.version_dir)).signatures["generate_patch"]
            call = lambda feeds: generate_patch(**{k: tf.constant(v) for k, v in feeds.items()})  # noqa: E731
        else:
            run = stack.enter_context(like_model_server(exported.version_dir))
            call = lambda feeds: run("generate_patch", feeds)  # noqa: E731
        call(good)
        messages = {}
        for what, feeds in bad.items():
            with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)) as refused:
                call(feeds)
            messages[what] = str(refused.value)
    assert "must be finite" in messages["NaN latent"] and "must be finite" in messages["infinite coordinates"]


@pytest.mark.parametrize("exported", EXPORT_CASES[:1], indirect=True, ids=lambda case: case.name)  # model-agnostic
def test_cli_writes_the_next_version_and_refuses_to_clobber(exported, tmp_path):
    out = tmp_path / "serving" / "model"
    (out / "3").mkdir(parents=True)  # an older version, e.g. copied from elsewhere
    missing = run_module("export.saved_model", "--run", tmp_path / "nope", "--out", out)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    clobber = run_module("export.saved_model", "--run", exported.run_dir, "--out", out, "--model-version", "3")
    assert clobber.returncode == 2 and "already exists" in clobber.stderr and "--overwrite" in clobber.stderr
    written = run_module("export.saved_model", "--run", exported.run_dir, "--out", out)
    assert written.returncode == 0, written.stderr[-2000:]
    assert "generate_patch" in written.stdout
    assert (out / "4" / "saved_model.pb").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["3", "4"]  # no staging folder left behind
