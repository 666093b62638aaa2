"""The canvas engine: tiles equal the one-call image, renders resume byte-identically, memory stays flat."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import run_module
from tfcoord.errors import UserError
from tfcoord.generation.canvas import render_canvas
from tfcoord.generation.tiles import plan_bands
from tfcoord.runs import load_run


@pytest.fixture(scope="module")
def cocogan(tiny_cocogan_run):
    model, checkpoint = load_run(tiny_cocogan_run)
    return model, str(checkpoint)


def assemble(renderer, width, height, tile, batch):
    """Float pixels of a canvas rendered with the given tile size and batch size."""
    canvas = np.zeros((height, width, 3), "float32")
    tiles = [t for band in plan_bands(width, height, tile) for t in band]
    for start in range(0, len(tiles), batch):
        chunk = tiles[start:start + batch]
        for t, pixels in zip(chunk, renderer.render(chunk)):
            canvas[t.top:t.top + t.height, t.left:t.left + t.width] = pixels
    return canvas


def test_cocogan_tiles_equal_the_full_image(cocogan):
    model, checkpoint = cocogan
    renderer = model.canvas_renderer(32, 32, seed=3, checkpoint=checkpoint)
    full = model.sampler.generate_full(model.latents(3, 1))[0]
    for tile, batch in ((8, 1), (16, 3), (32, 2)):
        np.testing.assert_allclose(assemble(renderer, 32, 32, tile, batch), full, atol=1e-5)


def test_cocogan_canvas_extends_beyond_the_boundary(cocogan):
    model, checkpoint = cocogan
    renderer = model.canvas_renderer(48, 48, seed=3, checkpoint=checkpoint)
    extrapolated = model.sampler.generate_full(model.latents(3, 1), extrapolation_steps=1)[0]
    np.testing.assert_allclose(assemble(renderer, 48, 48, 16, 4), extrapolated, atol=1e-5)


def test_panorama_last_column_continues_into_the_first(tiny_panorama_run, cocogan):
    model, checkpoint = load_run(tiny_panorama_run)
    height, width = model.image_size()
    wide = assemble(model.canvas_renderer(2 * width, height, seed=0, panorama=True), 2 * width, height, 16, 4)
    np.testing.assert_allclose(wide[:, width:], wide[:, :width], atol=1e-5)  # 720 degrees repeat exactly
    with pytest.raises(UserError, match="cylindrical"):
        cocogan[0].canvas_renderer(32, 32, seed=0, panorama=True)


class ArrayRenderer:
    """A renderer over a fixed array (writers and resumption do not depend on the model)."""

    tile_quantum, default_tile = 1, 16

    def __init__(self, image, fail_after_band=None):
        self.image, self.calls, self.fail_after_band = image, 0, fail_after_band

    def describe(self):
        return {"array": float(self.image.sum())}

    def render(self, tiles):
        self.calls += 1
        if self.fail_after_band is not None and tiles[0].top // 16 > self.fail_after_band:
            raise KeyboardInterrupt  # a kill between bands
        return [self.image[t.top:t.top + t.height, t.left:t.left + t.width] for t in tiles]


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (70, 531, 3)) / 127.5 - 1.0).astype("float32")


def expected_uint8(image):
    return np.clip(np.rint((image + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_png_and_tiff_writers_round_trip(tmp_path, image):
    png = render_canvas(ArrayRenderer(image), tmp_path / "a.png", 531, 70, tile=16, batch=5, progress=False)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), expected_uint8(image))
    tif = render_canvas(ArrayRenderer(image), tmp_path / "a.tif", 531, 70, tile=16, fmt="tiff", progress=False)
    with tifffile.TiffFile(tif) as handle:
        assert handle.is_bigtiff and handle.pages[0].is_tiled
        np.testing.assert_array_equal(handle.asarray(), expected_uint8(image))
    assert not (tmp_path / "a.png.parts").exists()


def test_dzi_pyramid(tmp_path, image):
    dzi = render_canvas(ArrayRenderer(image), tmp_path / "a.dzi", 531, 70, tile=16, fmt="dzi", progress=False)
    assert 'Width="531" Height="70"' in dzi.read_text()
    files = tmp_path / "a_files"
    top = files / "10"  # ceil(log2(531)) = 10
    tile_00 = np.asarray(Image.open(top / "0_0.png"))
    np.testing.assert_array_equal(tile_00, expected_uint8(image)[:70, :255])  # 254 + 1 overlap column
    tile_10 = np.asarray(Image.open(top / "1_0.png"))
    np.testing.assert_array_equal(tile_10, expected_uint8(image)[:70, 253:509])
    assert sorted(int(p.name) for p in files.iterdir()) == list(range(11))
    assert np.asarray(Image.open(files / "0" / "0_0.png")).shape == (1, 1, 3)


def test_interrupted_render_resumes_to_an_identical_file(tmp_path, image):
    reference = render_canvas(ArrayRenderer(image), tmp_path / "ref.png", 531, 70, tile=16, progress=False)
    out = tmp_path / "resumed.png"
    with pytest.raises(KeyboardInterrupt):
        render_canvas(ArrayRenderer(image, fail_after_band=2), out, 531, 70, tile=16, progress=False)
    manifest = json.loads((tmp_path / "resumed.png.parts" / "manifest.json").read_text())
    assert manifest["bands_done"] == [0, 1, 2] and not out.exists()
    second = ArrayRenderer(image)
    render_canvas(second, out, 531, 70, tile=16, batch=100, progress=False)
    assert second.calls == 2  # only bands 3 and 4 were rendered again
    assert out.read_bytes() == reference.read_bytes()


def test_other_options_do_not_reuse_parts(tmp_path, image):
    out = tmp_path / "x.png"
    with pytest.raises(KeyboardInterrupt):
        render_canvas(ArrayRenderer(image, fail_after_band=0), out, 531, 70, tile=16, progress=False)
    with pytest.raises(UserError, match="other options"):
        render_canvas(ArrayRenderer(image * 0.5), out, 531, 70, tile=16, progress=False)


def test_write_failure_keeps_the_finished_bands(tmp_path, image, monkeypatch):
    import tfcoord.generation.canvas as canvas

    def full_disk(path, width, height, bands):
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(canvas.WRITERS, "png", full_disk)
    out = tmp_path / "x.png"
    with pytest.raises(UserError, match="No space left on device.*5 finished bands"):
        render_canvas(ArrayRenderer(image), out, 531, 70, tile=16, progress=False)
    monkeypatch.undo()
    again = ArrayRenderer(image)
    render_canvas(again, out, 531, 70, tile=16, progress=False)
    assert again.calls == 0  # everything came from the kept bands
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected_uint8(image))


def test_limits_and_disk_space(tmp_path, image, monkeypatch):
    with pytest.raises(UserError, match="--format tiff"):
        render_canvas(ArrayRenderer(image), tmp_path / "big.png", 40_000, 10, progress=False)
    with pytest.raises(UserError, match="multiple of 8"):
        class Quantum(ArrayRenderer):
            tile_quantum = 8
        render_canvas(Quantum(image), tmp_path / "q.png", 531, 70, tile=12, progress=False)
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(UserError, match="GB free"):
        render_canvas(ArrayRenderer(image), tmp_path / "d.png", 531, 70, progress=False)


def test_cli_render_killed_and_restarted_is_byte_identical(tmp_path, tiny_cocogan_run):
    args = ["--run", tiny_cocogan_run, "--width", "1024", "--height", "512", "--tile", "32", "--batch", "2",
            "--seed", "5"]
    reference = tmp_path / "reference.png"
    assert run_module("tfcoord.generate", *args, "--out", reference).returncode == 0
    out = tmp_path / "killed.png"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "-m", "tfcoord.generate", *map(str, args), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    manifest = tmp_path / "killed.png.parts" / "manifest.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if manifest.exists() and len(json.loads(manifest.read_text())["bands_done"]) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads(manifest.read_text())["bands_done"]
    assert 2 <= len(done) < 16 and not out.exists()
    result = run_module("tfcoord.generate", *args, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes() == reference.read_bytes()


MEMORY_PROBE = """
import resource, sys
from tfcoord.runs import load_run
from tfcoord.generation.canvas import render_canvas
model, checkpoint = load_run(sys.argv[1])
side = int(sys.argv[2])
render_canvas(model.canvas_renderer(side, side, seed=0), sys.argv[3], side, side, tile=64, batch=4, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

# Peak RSS may grow by the band buffer (tile x width x 3 bytes: 0.4 MB at 2048 px) and
# allocator noise; 64 MB leaves room for that noise while a canvas held in memory (12 MB of
# uint8 plus 50 MB as float32 at 2048 x 2048) would exceed it.
MEMORY_GROWTH_LIMIT_KB = 64 * 1024


def test_peak_memory_does_not_grow_with_the_canvas(tmp_path, tiny_cocogan_run):
    peaks = []
    for side in (256, 2048):
        result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tiny_cocogan_run), str(side),
                                 str(tmp_path / f"m{side}.png")], capture_output=True, text=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        peaks.append(int(result.stdout.split()[-1]))
    assert peaks[1] - peaks[0] < MEMORY_GROWTH_LIMIT_KB, peaks


TINY_NETWORKS = {
    "cips": ["model.size=16", "model.hidden_size=16", "model.style_dim=16", "model.n_mlp=2",
             "model.width_multiplier=0.03125"],
    "infinitygan": ["model.ts_channels=[16,16,8]", "model.global_latent_dim=16", "model.local_latent_dim=8",
                    "model.n_mlp=2"],
}


@pytest.mark.parametrize("model_type", ["cips", "infinitygan"])
def test_xla_tiles_equal_the_plain_tiles(model_type, cocogan):
    import keras

    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    config = load_config(model_type, section_classes(model_type), preset="tiny", overrides=TINY_NETWORKS[model_type])
    keras.utils.set_random_seed(0)
    model = model_class(model_type)(config)
    model.build_networks()
    width, height = 150, 110
    plain = assemble(model.canvas_renderer(width, height, seed=5), width, height, 96, 2)
    compiled = assemble(model.canvas_renderer(width, height, seed=5, xla=True), width, height, 96, 2)
    # XLA fuses and reorders float32 operations: equal up to round-off (the untrained networks'
    # outputs reach |12|: 5e-5 is 4e-6 of their range).
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=5e-5)
    # COCO-GAN's micro patches too
    cocogan_model, _ = cocogan
    np.testing.assert_allclose(assemble(cocogan_model.canvas_renderer(48, 40, seed=1, xla=True), 48, 40, 16, 3),
                               assemble(cocogan_model.canvas_renderer(48, 40, seed=1), 48, 40, 16, 3), atol=1e-5)


def test_xla_without_a_canvas_is_refused(tiny_cocogan_run):
    from tfcoord.generate import parse_args

    with pytest.raises(UserError, match="--xla applies to canvas rendering"):
        parse_args(["--run", str(tiny_cocogan_run), "--xla"])
