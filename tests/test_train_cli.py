"""The training command end to end: runs, resumes after SIGKILL, stops cleanly, refuses bad input."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import run_module
from tests.support.faults import child_prefix


def logged_steps(run_dir):
    return [json.loads(line)["step"] for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


def checkpoint_steps(run_dir):
    state = tf.train.get_checkpoint_state(str(Path(run_dir) / "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


def generator_weights(run_dir, step=None):
    prefix = str(Path(run_dir) / "checkpoints" / f"ckpt-{step}") if step else \
        tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(n for n, _ in tf.train.list_variables(prefix) if n.startswith("generator.") and "OPTIMIZER" not in n)
    return {n: reader.get_tensor(n) for n in names}


def test_train_then_generate(tmp_path, tiny_train_args):
    run = tmp_path / "run"
    result = run_module("tfcoord.train", *tiny_train_args, "--steps", "6", "--set", "train.checkpoint_every=3",
                        "--set", "log.samples_every=3", "--set", "log.scalars_every=1", "--out", run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint_steps(run) == [3, 6]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_00000003.png", "step_00000006.png"]
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6]
    assert "model_type: cocogan" in (run / "config.yaml").read_text()
    assert any((run / "tensorboard").iterdir())

    out = tmp_path / "images"
    result = run_module("tfcoord.generate", "--run", run, "--num", "3", "--seed", "7", "--extrapolate", "1",
                        "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    image = np.asarray(Image.open(out / "seed7_0002.png"))
    assert image.shape == (48, 48, 3)  # 32 + one micro patch (8) on each side
    layout = json.loads((out / "layout.json").read_text())
    assert (layout["rows"], layout["cols"]) == (6, 6)
    assert layout["micro_coords"][0][0] == pytest.approx([-5 / 3, -5 / 3], abs=1e-5)

    again = run_module("tfcoord.generate", "--run", run, "--num", "3", "--seed", "7", "--extrapolate", "1",
                       "--out", tmp_path / "again")
    assert again.returncode == 0
    assert np.array_equal(image, np.asarray(Image.open(tmp_path / "again" / "seed7_0002.png")))

    refused = run_module("tfcoord.generate", "--run", run, "--panorama")
    assert refused.returncode == 2 and "cylindrical" in refused.stderr


def wait_for(predicate, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_training(run, args, steps):
    import os

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "tfcoord.train", *args, "--steps", str(steps),
                             "--set", "train.checkpoint_every=1", "--set", "log.scalars_every=1",
                             "--set", "log.samples_every=1000", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigkill_then_resume_continues_with_the_right_step_and_weights(tmp_path, tiny_train_args):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    process = start_training(killed, tiny_train_args, 40)
    wait_for(lambda: len(checkpoint_steps(killed)) and max(checkpoint_steps(killed)) >= 8, what="8 checkpoints")
    process.send_signal(signal.SIGKILL)  # checkpoint_every=1: likely in the middle of a write
    process.wait()
    saved = checkpoint_steps(killed)
    for step in saved:  # no checkpoint is ever half-written
        assert generator_weights(killed, step)
    last = max(saved)
    target = last + 3
    resumed = run_module("tfcoord.train", *tiny_train_args, "--steps", target, "--resume", "--out", killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = logged_steps(killed)
    assert steps[-3:] == [last + 1, last + 2, last + 3]
    assert max(checkpoint_steps(killed)) == target

    uninterrupted = run_module("tfcoord.train", *tiny_train_args, "--steps", target, "--out", straight)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    a, b = generator_weights(killed), generator_weights(straight)
    assert a.keys() == b.keys() and len(a) > 10
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    assert worst <= 1e-5, worst


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path, tiny_train_args):
    run = tmp_path / "run"
    process = start_training(run, tiny_train_args + ["--set", "train.checkpoint_every=1000"], 10_000)
    wait_for(lambda: (run / "log.jsonl").exists() and len(logged_steps(run)) >= 3, what="3 steps")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    assert checkpoint_steps(run)[-1] == logged_steps(run)[-1]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_train_args):
    run = tmp_path / "run"
    result = run_module("tfcoord.train", *tiny_train_args, "--steps", "8", "--set", "train.checkpoint_every=3",
                        "--out", run, python_prefix=child_prefix("nan_images_at_step(5)"))
    assert result.returncode == 2
    assert "non-finite loss at step 5" in result.stderr and "step 3" in result.stderr
    assert "Traceback" not in result.stderr
    assert checkpoint_steps(run) == [3]
    assert all(np.all(np.isfinite(w)) for w in generator_weights(run).values())


def corrupt_folder(root):
    root.mkdir()
    (root / "a.jpg").write_bytes(b"not a jpeg")
    (root / "b.png").write_bytes(b"\x89PNG broken")
    return root


@pytest.mark.parametrize("args, message", [
    (["--model", "cocogn"], "unknown model 'cocogn' (did you mean 'cocogan'?)"),
    (["--model", "cocogan", "--set", "model.micro_sise=8"], "did you mean 'micro_size'"),
    (["--model", "cocogan", "--set", "train.steps=many"], "train.steps must be an integer"),
    (["--model", "cocogan", "--set", "model.macro_size=20"], "must divide model.macro_size"),
    (["--model", "cocogan", "--steps", "x"], "invalid int value"),
    (["--model", "cocogan", "--data", "folder:{tmp}/empty"], "empty"),
    (["--model", "cocogan", "--data", "folder:{tmp}/corrupt"], "corrupt"),
    (["--model", "cocogan", "--data", "tfds:celeb_a"], "tfds"),
    (["--model", "cocogan", "--data", "imagenet"], "synthetic-landscapes"),
])
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    corrupt_folder(tmp_path / "corrupt")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_module("tfcoord.train", *args, "--out", tmp_path / "run", cwd=tmp_path,
                        env={"TFDS_DATA_DIR": str(tmp_path / "no_tfds")})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr
    assert message.lower() in error_lines[0].lower(), error_lines[0]


def test_mirrored_strategy_from_the_command_line(tmp_path, tiny_train_args):
    run = tmp_path / "run"
    result = run_module("tfcoord.train", *tiny_train_args, "--steps", "2", "--strategy", "mirrored", "--out", run,
                        env={"TFCOORD_LOGICAL_CPUS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint_steps(run) == [2]
    odd = run_module("tfcoord.train", *tiny_train_args, "--steps", "2", "--strategy", "mirrored",
                     "--batch-size", "3", "--out", tmp_path / "odd", env={"TFCOORD_LOGICAL_CPUS": "2"})
    assert odd.returncode == 2 and "divisible by the number of replicas (2)" in odd.stderr
