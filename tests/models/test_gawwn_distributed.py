"""Two replicas equal one device: a GAWWN training step under MirroredStrategy on 2 logical CPUs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("gawwn_mirrored_step.py")


@pytest.mark.parametrize("configuration", ["box", "keypoints"])
def test_mirrored_step_equals_single_device_step(tmp_path, configuration):
    # One process per configuration: a second MirroredStrategy in the same process reuses the
    # collective instance keys of the first with other shapes, which the runtime refuses.
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), configuration], capture_output=True,
                            text=True, timeout=1500, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = [json.loads(line) for line in result.stdout.strip().splitlines() if line.startswith("{")]
    assert report["configuration"] == configuration
    assert report["loss_diff"] <= 1e-5, report  # relative to max(1, |loss|)
    # trainable weights and the synchronised batch-norm statistics
    assert set(report["weight_diff"]) >= {"trainable", "moving_mean", "moving_variance"}, report
    assert max(report["weight_diff"].values()) <= 1e-5, report
    assert report["replica_diff"] <= 1e-6, report
    assert report["generator_change"] > 1e-5, report  # the step did train
    # the box run trains the keypoint generator too; the keypoint run the text encoder (all-gathers)
    assert ("keypoint_g_loss" if configuration == "box" else "text_loss") in report["losses"]
