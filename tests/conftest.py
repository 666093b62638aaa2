import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_module(module, *args, env=None, cwd=None, timeout=600):
    """Run ``python -m module args`` in a fresh process; returns the CompletedProcess."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture
def tiny_train_args():
    """Arguments that make the tiny COCO-GAN preset train in seconds."""
    return ["--model", "cocogan", "--batch-size", "4", "--set", "model.ngf=8", "--set", "model.ndf=8",
            "--set", "log.progress_bar=false", "--set", "log.num_samples=4"]
