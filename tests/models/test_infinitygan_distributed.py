"""Two replicas equal one device: an InfinityGAN training step (D, lazy R1, G with the diversity loss, lazy
path length, EMA) under MirroredStrategy on 2 logical CPUs, through the real Trainer path."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("infinitygan_mirrored_step.py")


def test_mirrored_step_equals_single_device_step(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Every update of the official loop ran: D, R1, G + diversity, path length.
    assert {"d_loss", "r1", "g_loss", "diversity", "path", "path_length"} <= set(report["loss_keys"]), report
    assert report["loss_diff"] <= 1e-5, report  # relative to max(1, |loss|)
    assert set(report["weight_diff"]) == {"generator", "generator_ema", "discriminator", "coord_head"}, report
    assert max(report["weight_diff"].values()) <= 1e-5, report
    assert report["replica_diff"] <= 1e-6, report
    a, b = report["mean_path_length"]
    assert a > 0 and abs(a - b) <= 1e-7, report  # the all-reduced path-length mean
    assert report["generator_change"] > 1e-5 and report["ema_change"] > 0, report  # the step did train
