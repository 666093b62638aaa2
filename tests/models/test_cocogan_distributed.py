"""Two replicas equal one device: a COCO-GAN training step under MirroredStrategy on 2 logical CPUs."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("cocogan_mirrored_step.py")


def test_mirrored_step_equals_single_device_step(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
                            timeout=900, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loss_diff"] <= 1e-5, report  # relative to max(1, |loss|)
    # trainable weights, SN u, BN moving statistics and CBN recorders
    assert set(report["weight_diff"]) >= {"trainable", "u", "moving_mean", "moving_variance"}, report
    assert max(report["weight_diff"].values()) <= 1e-5, report
    assert report["replica_diff"] <= 1e-6, report
    assert report["generator_change"] > 1e-5, report  # the step did train
