"""Fault injection, each in its own process: every fault ends as docs/reliability.md says, and no
earlier checkpoint or finished output is lost."""

import json
import resource
import signal
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from tiny_run import (TINY_ARGS, copy_run, fake_extractor_env, odd_image_folder, one_error_line,  # noqa: F401
                      run_module, trained_run)

from tests.support.faults import child_prefix
from tfcoord.training.checkpoints import listed_checkpoints, verify_files

RELIABILITY = Path(__file__).resolve().parent


def checkpoint_steps(run):
    return [int(p.rsplit("-", 1)[1]) for p in listed_checkpoints(Path(run) / "checkpoints")]


def logged_steps(run):
    """Steps whose losses were logged (not metric or event records)."""
    records = [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]
    return [record["step"] for record in records if "d_loss" in record]


def snapshot(run):
    """Bytes of every checkpoint file and finished output of a run."""
    files = [*Path(run, "checkpoints").glob("ckpt-*"), Path(run, "log.jsonl"),
             *Path(run, "samples").glob("*.png"), *Path(run, "checkpoints", "best").glob("*")]
    return {str(p.relative_to(run)): p.read_bytes() for p in files if p.is_file()}


def assert_kept(run, before):
    """Every file of ``before`` still exists with the same bytes (appends to log.jsonl allowed), and the
    run's config.yaml (rewritten on resume with the new train.steps) is still a complete config."""
    for name, data in before.items():
        now = (Path(run) / name).read_bytes()
        assert now[:len(data)] == data if name == "log.jsonl" else now == data, name
    assert yaml.safe_load((Path(run) / "config.yaml").read_text())["model_type"] == "cocogan"


def resume(run, steps, *extra, env=None, **kwargs):
    return run_module("tfcoord.train", *TINY_ARGS, "--steps", steps, "--resume", "--out", run, *extra,
                      env={**fake_extractor_env(Path(run).parent / "cache"), **(env or {})}, **kwargs)


def test_sigkill_during_a_checkpoint_write_keeps_the_earlier_checkpoints(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    before = snapshot(run)
    killed = resume(run, 6, python_prefix=child_prefix("kill_while_writing_checkpoint(6)"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert Path(run, "checkpoints", "ckpt-6.index").exists()  # the bundle was written ...
    assert checkpoint_steps(run) == [2, 4]  # ... but never listed: no half-written checkpoint is visible
    assert_kept(run, before)

    again = resume(run, 6)
    assert again.returncode == 0, again.stderr[-3000:]
    assert checkpoint_steps(run) == [2, 4, 6]
    assert all(verify_files(run / "checkpoints" / f"ckpt-{s}") for s in (2, 4, 6))
    assert logged_steps(run)[-2:] == [5, 6]


def test_write_failure_in_the_kernel_stops_the_run_and_keeps_the_checkpoints(trained_run, tmp_path):
    """RLIMIT_FSIZE: the kernel refuses TensorFlow's C++ checkpoint write (EFBIG) mid-file."""
    run = copy_run(trained_run, tmp_path / "run")
    before = snapshot(run)
    limit = (run / "checkpoints" / "ckpt-4.data-00000-of-00001").stat().st_size // 2
    failed = resume(run, 6, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert failed.returncode == 2, failed.stderr[-3000:]
    error = one_error_line(failed)
    assert "could not write checkpoint step 6" in error and "File too large" in error, error
    assert "newest: step 4" in error and "--resume" in error
    assert checkpoint_steps(run) == [2, 4]
    assert not list((run / "checkpoints").glob("ckpt-6*"))  # partial files are removed
    assert_kept(run, before)
    assert all(verify_files(run / "checkpoints" / f"ckpt-{s}") for s in (2, 4))


def test_full_disk_in_python_writes_stops_the_run_and_keeps_the_checkpoints(trained_run, tmp_path):
    """ENOSPC from every write to log.jsonl (checkpoint writes: the RLIMIT test above and
    test_checkpoint_files.py::test_a_failed_write_leaves_the_list_and_files_untouched)."""
    run = copy_run(trained_run, tmp_path / "run")
    before = snapshot(run)
    shim = f"import sys; sys.path.insert(0, {str(RELIABILITY)!r}); import fault_shim; fault_shim.install(['*/log.jsonl'])"
    failed = resume(run, 6, python_prefix=shim)
    assert failed.returncode == 2, failed.stderr[-3000:]
    error = one_error_line(failed)
    assert "could not write log.jsonl" in error and "No space left on device" in error, error
    assert "free disk space" in error and "newest: step 4" in error, error
    assert checkpoint_steps(run) == [2, 4]
    assert not list((run / "checkpoints").glob("ckpt-6*"))
    assert_kept(run, before)


def flip_a_byte(path, offset=200):
    data = bytearray(Path(path).read_bytes())
    data[offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def test_corrupt_latest_checkpoint_falls_back_for_generation_and_resume(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    flip_a_byte(run / "checkpoints" / "ckpt-4.data-00000-of-00001")
    generated = run_module("tfcoord.generate", "--run", run, "--num", "2", "--out", tmp_path / "images")
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert "ckpt-4 is damaged" in generated.stderr and "SHA-256" in generated.stderr
    assert "ckpt-2" in generated.stdout.splitlines()[-1]
    assert checkpoint_steps(run) == [2, 4]  # a reader leaves the run as it is

    resumed = resume(run, 5)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "moved it to" in resumed.stderr
    assert sorted(p.name for p in (run / "checkpoints" / "corrupt").iterdir()) == [
        "ckpt-4.data-00000-of-00001", "ckpt-4.index", "ckpt-4.manifest.json"]
    assert logged_steps(run)[-3:] == [3, 4, 5]  # continued from step 2
    assert checkpoint_steps(run) == [2, 4, 5]  # a new, intact step 4
    assert verify_files(run / "checkpoints" / "ckpt-4")


def test_truncated_checkpoint_without_manifests_falls_back(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    for manifest in (run / "checkpoints").glob("*.manifest.json"):
        manifest.unlink()  # checkpoints of older tfcoord versions: TensorFlow's own checks must catch it
    index = run / "checkpoints" / "ckpt-4.index"
    index.write_bytes(index.read_bytes()[:100])
    generated = run_module("tfcoord.generate", "--run", run, "--num", "1", "--out", tmp_path / "images")
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert "ckpt-4 is damaged" in generated.stderr and "ckpt-2" in generated.stdout
    # Every checkpoint damaged: test_checkpoint_files.py::test_every_checkpoint_damaged_is_a_user_error


def test_nan_with_restore_reloads_the_last_checkpoint_and_halves_the_learning_rates(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    result = resume(run, 7, "--set", "train.on_nonfinite=restore", python_prefix=child_prefix("nan_images_at_step(6)"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "non-finite loss at step 6" in result.stderr and "restored the checkpoint of step 4" in result.stderr
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if "event" in line]
    assert len(events) == 1 and events[0]["restored_step"] == 4 and events[0]["step"] == 6
    assert logged_steps(run)[-4:] == [5, 5, 6, 7]  # step 5 again after the restore, then onwards
    assert checkpoint_steps(run)[-1] == 7
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / "ckpt-7"))
    names = [n for n, _ in tf.train.list_variables(str(run / "checkpoints" / "ckpt-7"))]
    optim = yaml.safe_load((run / "config.yaml").read_text())["optim"]
    for optimizer, rate in {"g_optimizer": optim["lr_g"], "d_optimizer": optim["lr_d"]}.items():
        name = next(n for n in names if n.startswith(f"{optimizer}.") and n.split("/")[0].endswith(".1"))
        assert reader.get_tensor(name) == pytest.approx(rate * 0.5, rel=1e-6), name
    for name in names:
        if name.startswith("generator."):
            assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_corrupt_and_odd_mode_images_in_a_folder_train(tmp_path):
    data = odd_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    result = run_module("tfcoord.train", *TINY_ARGS, "--steps", "2", "--set", "train.checkpoint_every=2",
                        "--set", "log.samples_every=2", "--data", f"folder:{data}", "--out", run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping 3 unreadable or corrupt image file(s)" in result.stderr
    assert checkpoint_steps(run) == [2]
    grid = np.asarray(Image.open(run / "samples" / "step_00000002.png"))
    assert grid.ndim == 3 and grid.shape[-1] == 3
