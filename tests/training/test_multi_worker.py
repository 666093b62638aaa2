"""Multi-worker training: two worker processes on 127.0.0.1 (one logical CPU each) under TF_CONFIG.

They must train exactly as one process mirroring over two logical CPUs on the same global batch,
only the chief may leave files, a killed worker stops the job with one line, and --resume on every
worker continues from the chief's last checkpoint.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module

REPO = Path(__file__).resolve().parents[2]
# Widths as in the mirrored-step scripts (tests/models/*_mirrored_step.py), Adam epsilon 1e-4 for the
# reason given in mirrored_harness.py; global batch 8 = 2 replicas x 4.
MODEL_ARGS = {
    "cocogan": ["--set", "model.ngf=8", "--set", "model.ndf=8", "--set", "optim.epsilon=1e-4"],
    "cips": ["--set", "model.size=16", "--set", "model.hidden_size=16", "--set", "model.style_dim=16",
             "--set", "model.n_mlp=2", "--set", "model.width_multiplier=0.03125",
             "--set", "model.d_width_multiplier=0.03125", "--set", "optim.epsilon=1e-4"],
}
COMMON = ["--batch-size", "8", "--set", "log.progress_bar=false", "--set", "log.num_samples=4"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(model, out, extra, tmp_path, quiet=True):
    """Two workers of one job; returns their Popen objects (stdout/stderr to files under tmp_path)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
        if quiet:
            env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        env.update(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                   TFCOORD_LOGICAL_CPUS="1", PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir(exist_ok=True)
        log = tmp_path / f"worker{index}"
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tfcoord.train", "--model", model, "--strategy", "multi_worker", "--out", str(out),
             *COMMON, *MODEL_ARGS[model], *extra],
            stdout=open(f"{log}.out", "w"), stderr=open(f"{log}.err", "w"), env=env, cwd=REPO))
    return workers


def finish(workers, tmp_path, timeout=600):
    codes = [w.wait(timeout=timeout) for w in workers]
    logs = [((tmp_path / f"worker{i}.out").read_text(), (tmp_path / f"worker{i}.err").read_text()) for i in range(2)]
    return codes, logs


def checkpoint_values(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    names = [name for name, _ in tf.train.list_variables(str(prefix)) if "OBJECT_GRAPH" not in name]
    return {name: reader.get_tensor(name) for name in names}


def logged(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["cocogan", "cips"])
def test_two_workers_train_as_one_mirrored_process(tmp_path, model):
    steps = ["--steps", "3", "--set", "log.scalars_every=1"]
    workers = start_workers(model, tmp_path / "workers", steps, tmp_path)
    mirrored = run_module("tfcoord.train", "--model", model, "--strategy", "mirrored", "--out", tmp_path / "mirrored",
                          *COMMON, *MODEL_ARGS[model], *steps, env={"TFCOORD_LOGICAL_CPUS": "2"})
    codes, logs = finish(workers, tmp_path)
    assert codes == [0, 0], logs
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    assert "as worker 0 of 2 workers" in logs[0][0] and "the chief wrote" in logs[1][0], logs

    # Same losses at every step (relative to max(1, |loss|), as the mirrored-step tests) ...
    one, two = logged(tmp_path / "mirrored"), logged(tmp_path / "workers")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(one, two):
        for key in a:
            if key.endswith("per_second") or key == "step":
                continue
            assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(a[key])), (key, a, b)
    # ... and every checkpointed variable (weights, EMA, optimizer slots, step) after them.
    single, multi = (checkpoint_values(tmp_path / run / "checkpoints" / "ckpt-3") for run in ("mirrored", "workers"))
    assert single.keys() == multi.keys() and len(single) > 50
    worst = max((float(np.max(np.abs(single[n].astype(np.float64) - multi[n]))) if single[n].size else 0.0, n)
                for n in single if single[n].dtype.kind in "fiu")
    assert worst[0] <= 1e-5, worst

    # Only the chief's folder holds the run; worker 1's temporary folder is gone.
    assert sorted(p.name for p in (tmp_path / "workers").iterdir()) == sorted(
        p.name for p in (tmp_path / "mirrored").iterdir())
    assert list((tmp_path / "tmp").glob("tfcoord-*")) == []


def test_killed_worker_stops_the_job_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    extra = ["--steps", "400", "--set", "train.checkpoint_every=4", "--set", "log.scalars_every=1"]
    workers = start_workers("cocogan", out, extra, tmp_path, quiet=False)  # the user's default environment
    deadline = time.time() + 300
    while not (out / "checkpoints" / "ckpt-8.manifest.json").exists():
        assert time.time() < deadline and all(w.poll() is None for w in workers), finish(workers, tmp_path, 5)
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGKILL)
    codes, logs = finish(workers, tmp_path, timeout=180)
    assert codes[0] == 2, logs
    lines = logs[0][1].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: worker 0: the multi-worker job stopped"), logs[0][1]
    assert "worker 1 stopped responding" in lines[0] and "--resume" in lines[0], lines
    stopped = max(int(p.name.split("-")[1].split(".")[0]) for p in (out / "checkpoints").glob("ckpt-*.index"))
    assert stopped >= 8 and f"newest checkpoint is step {stopped}" in lines[0], (stopped, lines)

    resumed = start_workers("cocogan", out, ["--steps", str(stopped + 2), "--set", "train.checkpoint_every=4",
                                             "--set", "log.scalars_every=1", "--resume"], tmp_path)
    codes, logs = finish(resumed, tmp_path)
    assert codes == [0, 0], logs
    steps = [record["step"] for record in logged(out)]
    assert steps[-2:] == [stopped + 1, stopped + 2], steps  # continued at the right step
    final = checkpoint_values(out / "checkpoints" / f"ckpt-{stopped + 2}")
    assert int(final["step/.ATTRIBUTES/VARIABLE_VALUE"]) == stopped + 2
    # The killed worker's temporary folder was cleared by its restart, which removed its own at the end.
    assert list((tmp_path / "tmp").glob("tfcoord-*")) == []


@pytest.mark.parametrize("tf_config, says", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster: worker}", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1 is outside"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "ps tasks"),
])
def test_malformed_tf_config_is_one_line(tmp_path, tf_config, says):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    result = subprocess.run([sys.executable, "-m", "tfcoord.train", "--model", "cocogan", "--strategy", "multi_worker",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert "TF_CONFIG='{" in lines[0]  # the example to copy
    assert not (tmp_path / "run").exists()
