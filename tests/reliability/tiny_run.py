"""One tiny trained COCO-GAN run shared by the metric and reliability tests (trained once per session).

Steps 1-4, checkpoints at steps 2 and 4, periodic FID every 2 steps with the tiny test
feature extractor, so the run also holds ``checkpoints/best/``. Tests copy it before
damaging anything.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_module  # the reliability tests import it from here too

TESTS = Path(__file__).resolve().parents[1]
METRICS_TESTS = TESTS / "metrics"
TINY_ARGS = ["--model", "cocogan", "--batch-size", "4", "--set", "model.ngf=8", "--set", "model.ndf=8",
             "--set", "log.progress_bar=false", "--set", "log.num_samples=4"]


def one_error_line(result) -> str:
    """The single ``error: ...`` line of a failed CLI (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def fake_extractor_env(cache_dir) -> dict:
    """Environment that makes every tfcoord process use the tiny test features and a private cache."""
    return {"TFCOORD_FEATURE_EXTRACTOR": "fake_inception:make", "PYTHONPATH": str(METRICS_TESTS),
            "TFCOORD_CACHE_DIR": str(cache_dir)}


def tiny_trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.getbasetemp() / "tiny_trained_run"
    if (run / "checkpoints" / "checkpoint").exists():
        return run
    result = run_module("tfcoord.train", *TINY_ARGS, "--steps", "4", "--set", "train.checkpoint_every=2",
                        "--set", "log.scalars_every=1", "--set", "log.samples_every=1000",
                        "--set", "train.fid_every=2", "--set", "train.fid_num=16", "--out", run,
                        env=fake_extractor_env(tmp_path_factory.getbasetemp() / "stats_cache"))
    assert result.returncode == 0, result.stderr[-4000:]
    return run


def copy_run(run, destination) -> Path:
    shutil.copytree(run, destination)
    return Path(destination)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished tiny run (steps 1-4, checkpoints 2 and 4, best/); copy it before changing it."""
    return tiny_trained_run(tmp_path_factory)


def odd_image_folder(root):
    """Images of every size and mode plus broken files and an empty shard (sub-folder)."""
    rng = np.random.default_rng(0)
    root.mkdir()
    rgb = rng.integers(0, 255, (40, 50, 3), np.uint8)
    Image.fromarray(rgb).save(root / "rgb.jpg")
    Image.fromarray(rgb[..., 0]).save(root / "grey.png")  # L
    Image.fromarray(rgb[..., 0]).convert("LA").save(root / "grey_alpha.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(root / "rgba.png")
    Image.fromarray(rgb).convert("P").save(root / "palette.png", transparency=3)
    Image.fromarray((rng.integers(0, 65535, (33, 47))).astype(np.uint16)).save(root / "sixteen_bit.png")  # I;16
    Image.fromarray(rgb[..., 0] > 128).save(root / "one_bit.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(rgb[:1, :1]).save(root / "one_pixel.png")
    Image.fromarray(rng.integers(0, 255, (3, 300, 3), np.uint8)).save(root / "panorama_strip.PNG")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    truncated = root / "truncated.png"
    Image.fromarray(rgb).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    (root / "empty_shard").mkdir()
    (root / "shard_1").mkdir()
    Image.fromarray(rgb[::-1]).save(root / "shard_1" / "flipped.webp")
    return root
