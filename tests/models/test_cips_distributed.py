"""Two replicas equal one device: CIPS training steps (lazy R1 included) under MirroredStrategy on 2 logical CPUs."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("cips_mirrored_step.py")


def test_mirrored_steps_with_r1_equal_single_device_steps(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
                            timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "r1" in report["variants"][0] and "r1" not in report["variants"][1], report  # step 1 has R1
    assert report["loss_diff"] <= 1e-5, report
    assert max(report["weight_diff"].values()) <= 1e-5, report
    assert report["replica_diff"] <= 1e-6, report
    assert min(report["change"].values()) > 1e-5, report  # G, D and the EMA all moved
    # D: 2 updates at step 1 (adversarial + lazy R1) and 1 at step 2; G: one per step.
    assert report["d_optimizer_iterations"] == [3, 3] and report["g_optimizer_iterations"] == [2, 2], report
