"""Per-patch InfinityGAN from the .tflite alone (issue 19, item 3): docs/clients/infinitygan_tflite_client.py reads
the embedded description, draws every input with the documented portable recipe and runs generate_patch, with
tfcoord and export unimportable; its canvas is the one ``python -m tfcoord.generate`` draws for the same seed."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, make_run, run_module

CLIENT = REPO / "docs" / "clients" / "infinitygan_tflite_client.py"

# Runs the client as __main__ with the repository off sys.path and a finder that refuses tfcoord and export.
ISOLATED = """
import importlib.abc, runpy, sys
repo = sys.argv[1]
sys.path[:] = [p for p in sys.path if p not in ("", ".", repo) and not p.startswith(repo + "/")]

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tfcoord", "export"):
            raise ImportError(f"{name} must not be imported by a stand-alone client")
        return None

sys.meta_path.insert(0, Refuse())
for name in ("tfcoord", "export"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable: the isolation does not hold")
sys.argv = sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as done:
    if done.code not in (0, None):
        raise
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tfcoord", "export"))
assert not leaked, leaked
print("isolated: no tfcoord or export module loaded")
"""


@pytest.fixture(scope="module")
def exported_tflite(tmp_path_factory):
    """A freshly initialised tiny InfinityGAN run and its per-patch TFLite file (batch 1, as a phone runs it)."""
    from export.tflite import export_tflite
    from tfcoord.runs import load_run

    root = tmp_path_factory.mktemp("ig-tflite")
    run_dir = make_run(root / "run", "infinitygan", "tiny", train_steps=0)
    model, _ = load_run(run_dir)
    path, _ = export_tflite(run_dir, root / "ig.tflite", model.geometry.patch_size)
    return model, run_dir, path


def run_isolated_client(tflite, width, height, seed, out, client=CLIENT):
    command = [sys.executable, "-c", ISOLATED, str(REPO), str(client), "--tflite", str(tflite), "--width", str(width),
               "--height", str(height), "--seed", str(seed), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=out.parent, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(out.parent)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "isolated: no tfcoord or export module loaded" in result.stdout
    return np.load(out)


def test_tflite_only_client_draws_the_canvas_of_generate(exported_tflite, tmp_path):
    from tfcoord.images import to_uint8
    from tfcoord.models.infinitygan.infinite import generate_canvas

    model, run_dir, tflite = exported_tflite
    g = model.geometry
    width, height, seed = g.canvas_pixels(3) + 7, g.canvas_pixels(2) - 5, 5  # 4 x 2 patches, centre-cropped
    canvas = run_isolated_client(tflite, width, height, seed, tmp_path / "client.npy")
    library = generate_canvas(model, height, width, seed=seed)  # what generate's canvas renderer draws
    assert canvas.shape == (height, width, 3)
    np.testing.assert_allclose(canvas, library, atol=1e-4, rtol=0)
    assert np.abs(library - generate_canvas(model, height, width, seed=seed + 1)).max() > 0.1  # the seed matters

    # The command itself (canvas engine, 8-bit PNG): equal wherever 1e-4 cannot cross a rounding boundary.
    png = tmp_path / "generate.png"
    result = run_module("tfcoord.generate", "--run", run_dir, "--width", width, "--height", height, "--seed", seed,
                        "--out", png)
    assert result.returncode == 0, result.stderr[-3000:]
    written = np.asarray(Image.open(png)).astype(int)
    client_bytes = to_uint8(canvas).astype(int)
    assert np.abs(written - client_bytes).max() <= 1
    scaled = (np.clip(library, -1, 1) + 1.0) * 127.5
    clear = np.abs(scaled - np.floor(scaled) - 0.5) > 0.02  # 1e-4 in [-1, 1] is 0.013 of a level
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(written[clear], client_bytes[clear])


def test_tflite_only_client_reads_the_description_embedded_in_the_file(exported_tflite, tmp_path):
    """The sidecar JSON removed, the file alone says how to tile (the client reads the FlatBuffer's metadata)."""
    import shutil

    model, _, tflite = exported_tflite
    alone = tmp_path / "alone.tflite"
    shutil.copy(tflite, alone)
    assert not alone.with_suffix(".json").exists()
    g = model.geometry
    canvas = run_isolated_client(alone, g.canvas_pixels(2), g.patch_size, 2, tmp_path / "alone.npy")
    sidecar = json.loads(tflite.with_suffix(".json").read_text())
    assert sidecar["tiling"]["inputs"]["local_latent"]["generator"] == "splitmix64-boxmuller/1"
    from tfcoord.models.infinitygan.infinite import generate_canvas

    np.testing.assert_allclose(canvas, generate_canvas(model, g.patch_size, g.canvas_pixels(2), seed=2), atol=1e-4,
                               rtol=0)


def test_generate_seeding_legacy_draws_the_images_of_old_seeds(exported_tflite, tmp_path):
    """``--seeding legacy``: NumPy's fields, as before the portable recipe (their values: the seeding tests)."""
    from tfcoord.generate import main
    from tfcoord.images import to_uint8
    from tfcoord.models.infinitygan.infinite import generate_canvas

    model, run_dir, _ = exported_tflite
    g = model.geometry
    width, height = g.canvas_pixels(2) + 3, g.patch_size
    main(["--run", str(run_dir), "--width", str(width), "--height", str(height), "--seed", "4", "--num", "1",
          "--seeding", "legacy", "--out", str(tmp_path)])
    written = np.asarray(Image.open(tmp_path / f"seed4_{height}x{width}.png")).astype(int)
    legacy = to_uint8(generate_canvas(model, height, width, seed=4, seeding="legacy")).astype(int)
    portable = to_uint8(generate_canvas(model, height, width, seed=4)).astype(int)
    assert np.abs(written - legacy).max() <= 1 and np.mean(written == legacy) > 0.99
    assert np.mean(written != portable) > 0.3
