"""Every command line: --version, and no TensorFlow start-up lines on stderr unless the user asks for them."""

import os
import re
import subprocess
import sys

import pytest

from conftest import make_run
from tfcoord import __version__
from tfcoord.cli import STARTUP_LINE

CLIS = ("tfcoord.train", "tfcoord.generate", "tfcoord.evaluate", "tfcoord.convert", "export.saved_model",
        "export.tflite", "export.client", "export.models_config", "bench.canvas", "bench.cips", "bench.cocogan",
        "bench.export", "bench.gawwn", "bench.gpu", "bench.infinitygan", "bench.int8", "bench.metrics", "bench.quality",
        "bench.text_encoder")
# TensorFlow's C++ log lines (glog format: severity letter, date, time, thread, file:line]).
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]")


def _run(module, *args, env):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.parametrize("module", CLIS)
def test_every_cli_has_version(module):
    proc = _run(module, "--version", env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"python -m {module} (tfcoord {__version__})"


def test_tensorflow_startup_lines_reach_the_user_only_when_asked(tmp_path):
    run = make_run(tmp_path / "run")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
    quiet = _run("tfcoord.generate", "--run", run, "--num", "1", "--out", tmp_path / "quiet", env=env)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert [line for line in quiet.stderr.splitlines() if STARTUP_LINE.match(line)] == []
    assert "oneDNN" not in quiet.stderr and "cuda" not in quiet.stderr.lower()
    assert "wrote 2 files" in quiet.stdout
    # The same command with --verbose (or TF_CPP_MIN_LOG_LEVEL set by the user) shows TensorFlow's own lines:
    # they exist, so the quiet run above hid them.
    verbose = _run("tfcoord.generate", "--run", run, "--num", "1", "--out", tmp_path / "verbose", "--verbose", env=env)
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert any(STARTUP_LINE.match(line) for line in verbose.stderr.splitlines()), verbose.stderr[-2000:]
    asked = _run("tfcoord.generate", "--run", run, "--num", "1", "--out", tmp_path / "asked",
                 env=dict(env, TF_CPP_MIN_LOG_LEVEL="0"))
    assert any(STARTUP_LINE.match(line) for line in asked.stderr.splitlines()), asked.stderr[-2000:]


def test_training_prints_no_tensorflow_log_line_by_default(tmp_path, tiny_train_args):
    """Not at start-up, and not while training either: TensorFlow logs notices such as oneDNN's int64 fallback
    (seen under MirroredStrategy) at ERROR level."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    proc = _run("tfcoord.train", *tiny_train_args, "--steps", "2", "--strategy", "mirrored", "--out", tmp_path / "run",
                env=dict(env, TFCOORD_LOGICAL_CPUS="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stderr.splitlines() if CPP_LOG_LINE.match(line)] == [], proc.stderr[-2000:]

