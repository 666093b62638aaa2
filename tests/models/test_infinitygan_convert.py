"""Official InfinityGAN checkpoints: the converted generator reproduces the official outputs recorded in
``shared/fixtures/official/infinitygan_small.*`` (two neighbouring patches and the whole canvas), every
tensor name and shape is checked, and bad files or configs fail clearly without writing anything.

Reading the .pt needs no torch (tfcoord.torch_pickle)."""

import json
import shutil

import numpy as np
import pytest

from conftest import SHARED, run_module
from tfcoord import cli
from tfcoord import convert as convert_cli
from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.infinitygan import convert
from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan, StyleCentre, generate_canvas

OFFICIAL = SHARED / "fixtures" / "official"
FIXTURE = OFFICIAL / "infinitygan_small"
# The fixture's reduced widths (its json: global 64, local 32, texture convs 32 x 6 and 16 x 2).
FIXTURE_CONFIG = """\
model:
  ts_channels: [32, 32, 32, 16]
  global_latent_dim: 64
  local_latent_dim: 32
"""


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "infinitygan_small.yaml"
    path.write_text(FIXTURE_CONFIG)
    return path


@pytest.fixture(scope="module")
def converted(config_file):
    config = load_config("infinitygan", section_classes("infinitygan"), preset="custom", config_file=config_file,
                         overrides=list(convert.OFFICIAL_COMPAT))
    return convert.convert(FIXTURE.with_suffix(".pt"), config)


@pytest.fixture(scope="module")
def vectors():
    return np.load(FIXTURE.with_suffix(".npz"))


@pytest.mark.parametrize("call", ["patch0", "patch1", "canvas"])
def test_converted_generator_reproduces_the_official_outputs(converted, vectors, call):
    z = vectors["global_latent"][:, 0]  # slot 0 drives both synthesisers in eval mode
    local, coords = nhwc(vectors[f"{call}__local_latent"]), nhwc(vectors[f"{call}__coords"])
    noises = [nhwc(vectors[f"{call}__noise__{i}"]) for i in range(8)]
    for generator in (converted.generator_ema, converted.generator):  # g copied from g_ema (no 'g' in the file)
        structure = np.asarray(generator.structure(z, local, coords))
        np.testing.assert_allclose(structure, nhwc(vectors[f"{call}__structure_latent"]), atol=1e-4, rtol=1e-4)
        rgb = np.asarray(generator(z, local, coords, noises))
        np.testing.assert_allclose(rgb, nhwc(vectors[f"{call}__gen"]), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(converted.generator_ema.texture.map(z)), vectors["w"], atol=1e-5)


def test_infinite_generation_engine_reproduces_the_official_canvas(converted, vectors):
    """The engine's windows (z_l, coordinates, per-layer noise at strides 6 / 12 ... 96) are the official
    InfiniteGenerationManager's: with the fixture's canvases placed in the fields, patch-by-patch generation
    gives the official canvas."""
    z = vectors["global_latent"][:, 0]
    plan = CanvasPlan(converted.geometry, 101, 197)
    for b in range(2):
        latents = CanvasLatents(converted, plan, seed=0)
        latents.local.override(0, 0, nhwc(vectors["canvas__local_latent"])[b])
        for i, field in enumerate(latents.noises):
            field.override(0, 0, nhwc(vectors[f"canvas__noise__{i}"])[b])
        canvas = generate_canvas(converted, 101, 197, latents=latents, styles=[StyleCentre(z[b])], batch_patches=1)
        np.testing.assert_allclose(canvas, nhwc(vectors["canvas__gen"])[b], atol=1e-4, rtol=1e-4)


def test_weight_map_covers_every_official_tensor(converted):
    from tfcoord.torch_pickle import load

    state = load(FIXTURE.with_suffix(".pt"))
    generator = converted.generator_ema
    names = set(convert.generator_weight_map(generator)) | convert.expected_buffers(generator)
    unused = {n for n in state if n.startswith("texture_synthesizer.noises.")}
    assert names | unused == set(state)  # 105 tensors, none left over
    mapped_variables = {id(v) for v, _ in convert.generator_weight_map(converted.generator_ema).values()}
    assert mapped_variables == {id(v) for v in converted.generator_ema.weights}  # every variable is loaded


def test_missing_and_mis_shaped_tensors_are_reported_by_name(converted):
    from tfcoord.torch_pickle import load

    state = dict(load(FIXTURE.with_suffix(".pt")))
    del state["texture_synthesizer.convs.3.noise.weight"]
    state["texture_synthesizer.to_rgbs.0.bias"] = np.zeros((1, 4, 1, 1), "float32")
    state["texture_synthesizer.extra.weight"] = np.zeros(3, "float32")
    generator = converted.generator_ema
    before = [w.numpy().copy() for w in generator.weights]
    with pytest.raises(UserError) as error:
        convert.check_and_assign(state, convert.generator_weight_map(generator), convert.expected_buffers(generator),
                                 "generator", "test.pt")
    message = str(error.value)
    for name in ("convs.3.noise.weight", "to_rgbs.0.bias", "texture_synthesizer.extra.weight"):
        assert name in message
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, generator.weights))  # nothing assigned


def run_convert(capsys, *args):
    code = cli.run(convert_cli.main, ["infinitygan", *map(str, args)])
    return code, capsys.readouterr().err


def test_corrupt_and_truncated_checkpoints_fail_without_writing(tmp_path, config_file, capsys):
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(FIXTURE.with_suffix(".pt").read_bytes()[:200_000])
    garbage = tmp_path / "garbage.pth.tar"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    for bad in (truncated, garbage):
        out = tmp_path / f"run-{bad.stem}"
        code, err = run_convert(capsys, "--checkpoint", bad, "--config", config_file, "--out", out)
        assert code == 2 and "corrupt" in err and "Traceback" not in err, err
        assert not out.exists()


def test_checkpoint_of_another_model_is_refused(tmp_path, config_file, capsys):
    out = tmp_path / "run"
    code, err = run_convert(capsys, "--checkpoint", OFFICIAL / "cips_skip_s8.pt", "--config", config_file, "--out", out)
    assert code == 2 and "not an InfinityGAN generator checkpoint" in err, err
    assert not out.exists()


def test_mismatching_config_names_the_tensors(tmp_path, capsys):
    paper = tmp_path / "paper.yaml"
    paper.write_text("model:\n  local_latent_dim: 256\n")  # the fixture has 32 local channels
    out = tmp_path / "run"
    code, err = run_convert(capsys, "--checkpoint", FIXTURE.with_suffix(".pt"), "--config", paper, "--out", out)
    assert code == 2 and "does not match the configuration" in err, err
    assert "structure_synthesizer.implicit_model.conv_stack.0.conv.conv.weight" in err
    assert not out.exists()


def test_convert_then_generate_command_lines(tmp_path, config_file):
    out = tmp_path / "converted"
    result = run_module("tfcoord.convert", "infinitygan", "--checkpoint", FIXTURE.with_suffix(".pt"),
                        "--config", config_file, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((out / "converted_from.json").read_text())
    assert record["model"] == "infinitygan" and "loss.diversity_distance=official_angular" in record["compat_overrides"]
    assert (out / "config.yaml").read_text().count("official_per_channel") == 1
    # A plain canvas goes through the shared canvas engine (tiles of 96 px multiples).
    result = run_module("tfcoord.generate", "--run", out, "--height", 150, "--width", 230, "--tile", 192,
                        "--out", tmp_path / "canvas.png")
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    assert Image.open(tmp_path / "canvas.png").size == (230, 150)
    # InfinityGAN's own modes (here: without noise) render and describe the patch grid themselves.
    result = run_module("tfcoord.generate", "--run", out, "--height", 150, "--width", 230, "--num", 1,
                        "--no-noise", "--batch", 2, "--out", tmp_path / "images")
    assert result.returncode == 0, result.stderr[-2000:]
    layout = json.loads((tmp_path / "images" / "layout.json").read_text())
    assert layout["patches"] == 2 * 3 and layout["covered"] == [197, 293] and layout["crop_offset"] == [23, 31]
    assert Image.open(tmp_path / "images" / "seed0_150x230.png").size == (230, 150)
    shutil.rmtree(out)
