"""Two replicas equal one device for SNConv2D -> ConditionalBatchNorm -> SNDense.

`mirrored_equivalence.py` runs in a subprocess because logical CPU devices must be
configured before TensorFlow initialises (tensorflow.md §2, §8.5).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import tfcoord

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute is TensorFlow-only"
)

TOLERANCE = 1e-5
STATE = ("conv/u", "dense/u", "cbn/moving_mean", "cbn/moving_variance")


@pytest.fixture(scope="module")
def report():
    script = Path(__file__).with_name("mirrored_equivalence.py")
    package_root = str(Path(tfcoord.__file__).resolve().parents[1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runs_on_two_logical_cpus(report):
    assert report["num_replicas"] == 2
    devices = [d.rsplit(":", 2)[-2:] for d in report["replica_devices"]]
    assert devices == [["CPU", "0"], ["CPU", "1"]]
    # The replicas' halves of the batch have different moments, so per-replica BN would show.
    assert report["input_mean_local_vs_global"] > 0.5


def test_losses_and_gradients_equal_one_device(report):
    assert report["loss_diff"] < TOLERANCE, (report["single_losses"], report["mirrored_losses"])
    assert report["grad_diff"] < TOLERANCE


def test_every_weight_and_state_equals_one_device(report):
    assert set(STATE) <= set(report["weight_diff"])
    assert {path: diff for path, diff in report["weight_diff"].items() if diff >= TOLERANCE} == {}
    # The state really moved, so equality is not that of untouched initial values.
    assert all(report["weight_change"][path] > 1e-3 for path in STATE)


def test_replicas_hold_identical_copies(report):
    assert {path: gap for path, gap in report["replica_gap"].items() if gap != 0.0} == {}


def test_checkpoint_from_replicas_reloads_on_one_device(report):
    assert report["reload_diff"] < TOLERANCE
