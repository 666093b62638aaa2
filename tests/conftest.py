import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_module(module, *args, env=None, cwd=None, timeout=600, python_prefix=None, preexec_fn=None):
    """Run ``python -m module args`` in a fresh process; returns the CompletedProcess.

    ``python_prefix`` is Python code run first in that process (e.g. installing a fault from
    tests/support/faults.py).
    """
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    if python_prefix:
        code = f"{python_prefix}\nimport runpy, sys\nsys.argv = {[module, *map(str, args)]!r}\n" \
               f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout,
                          preexec_fn=preexec_fn)


@pytest.fixture
def tiny_train_args():
    """Arguments that make the tiny COCO-GAN preset train in seconds."""
    return ["--model", "cocogan", "--batch-size", "4", "--set", "model.ngf=8", "--set", "model.ndf=8",
            "--set", "log.progress_bar=false", "--set", "log.num_samples=4"]


def make_run(run_dir, model_type="cocogan", preset="tiny", overrides=(), train_steps=1):
    """A run directory (config.yaml + checkpoint) of a freshly built model after ``train_steps`` steps."""
    import tensorflow as tf

    from tests.support.serving import write_run
    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    config = load_config(model_type, section_classes(model_type), preset=preset, overrides=list(overrides))
    model = model_class(model_type)(config)
    model.build()
    batch = config.train.batch_size
    height, width = model.image_size()
    for step in range(train_steps):
        images = tf.random.stateless_uniform([batch, height, width, 3], [step, 7], -1.0, 1.0)
        model.train_step({"image": images, **model.step_inputs(step, batch)}, batch)
    return write_run(model, run_dir, step=train_steps)


@pytest.fixture(scope="session")
def tiny_cocogan_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "cocogan-tiny",
                    overrides=["model.ngf=8", "model.ndf=8", "train.batch_size=4"])


@pytest.fixture(scope="session")
def tiny_panorama_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "cocogan-panorama",
                    preset="panorama_tiny", overrides=["train.batch_size=4"])


@pytest.fixture(scope="session")
def quality_cache(tmp_path_factory):
    """A cache folder (the TFCOORD_CACHE_DIR layout) for the quality evaluator's feature networks."""
    return tmp_path_factory.mktemp("tfcoord-cache")


@pytest.fixture(scope="session")
def quality_network(quality_cache):
    """``quality_network(domain)``: the quick feature network of an embedded source, trained once into quality_cache."""
    from tfcoord.metrics.quality.network import Recipe, load_or_train

    networks = {}

    def network(domain):
        if domain not in networks:
            networks[domain] = load_or_train(domain, Recipe.for_domain(domain, quick=True),
                                             folder=quality_cache / "quality")
        return networks[domain]

    return network
