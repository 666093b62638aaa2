"""``python -m tfcoord.generate`` on a CIPS run (in-process): modes, canvas equality, clear errors."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcoord import cli
from tfcoord import generate as generate_cli
from tfcoord.config import load_config
from tfcoord.models import section_classes
from tfcoord.models.cips.model import Cips
from tfcoord.runs import load_run
from tfcoord.training.checkpoints import CheckpointKeeper

TINY = ["model.size=16", "model.hidden_size=16", "model.style_dim=16", "model.n_mlp=2",
        "model.width_multiplier=0.03125", "model.d_width_multiplier=0.03125"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A CIPS run directory written the way the trainer writes one (config + checkpoint)."""
    folder = tmp_path_factory.mktemp("cips_run")
    config = load_config("cips", section_classes("cips"), preset="tiny", overrides=TINY)
    model = Cips(config)
    model.build_networks()
    rng = np.random.default_rng(0)
    for v in model.generator_ema.weights:
        if v.path.endswith(("strength", "bias")):
            v.assign(v.numpy() + rng.normal(0.0, 0.3, v.shape).astype("float32"))
    config.save(folder / "config.yaml")
    CheckpointKeeper(folder / "checkpoints", tf.Variable(0, dtype=tf.int64), **model.network_items()).save(1)
    return folder


def generate(*args):
    return cli.run(generate_cli.main, [str(a) for a in args])


def png(path):
    return np.asarray(Image.open(path).convert("RGB"), "float32") / 127.5 - 1.0


def test_modes_write_images_and_a_record(run_dir, tmp_path, capsys):
    model, _ = load_run(run_dir)
    out = tmp_path / "grid"
    assert generate("--run", run_dir, "--num", 2, "--seed", 4, "--out", out) == 0
    expected = np.clip(model.sampler.generate(model.sampler.latents(4, 2)), -1, 1)
    assert np.max(np.abs(png(out / "seed4_0001.png") - expected[1])) <= 1.5 / 127.5
    out = tmp_path / "foveated"
    assert generate("--run", run_dir, "--num", 1, "--foveated", "0.2,0.1", "--fill", "nearest", "--out", out) == 0
    record = json.loads((out / "generation.json").read_text())
    assert record["mode"] == "foveated" and 0 < record["evaluated_pixels"] < record["total_pixels"] == 256
    assert f"evaluated {record['evaluated_pixels']} of 256 pixels" in capsys.readouterr().out
    out = tmp_path / "blend"
    assert generate("--run", run_dir, "--num", 1, "--style-blend", 9, "--resolution", "24x20", "--out", out) == 0
    assert Image.open(out / "seed0_0000.png").size == (20, 24)
    out = tmp_path / "superres"
    assert generate("--run", run_dir, "--num", 1, "--resolution", 32, "--truncation", 0.7, "--out", out) == 0
    assert json.loads((out / "generation.json").read_text())["mode"] == "super_resolution"


def test_canvas_mode_renders_the_same_pixels_as_one_call(run_dir, tmp_path):
    model, _ = load_run(run_dir)
    out = tmp_path / "canvas.png"
    assert generate("--run", run_dir, "--seed", 2, "--width", 40, "--height", 24, "--tile", 8, "--out", out) == 0
    expected = np.clip(model.sampler.generate(model.sampler.latents(2, 1), height=24, width=40), -1, 1)[0]
    assert np.max(np.abs(png(out) - expected)) <= 1.5 / 127.5


@pytest.mark.parametrize("args, words", [
    (["--foveated", "2,0"], "--foveated expects X,Y"),
    (["--resolution", "5000x5000"], "over the limit"),
    (["--resolution", "abc"], "--resolution expects"),
    (["--truncation", "0"], "--truncation must be in"),
    (["--width", "64", "--foveated", "0,0"], "cannot be combined"),
    (["--foveated", "0,0", "--style-blend", "3"], "choose one of"),
    (["--panorama"], "cylindrical"),
])
def test_bad_options_exit_2_with_one_line(run_dir, tmp_path, capsys, args, words):
    assert generate("--run", run_dir, "--out", tmp_path / "x", *args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
