"""``python -m bench.gpu --quick`` on CPU under JAX, with TensorFlow made unimportable and no official repositories:
it says the official side is absent, still times tfcoord's four generators in every precision, prints the table
and writes the JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfcoord.errors import UserError

pytest.importorskip("jax", reason="JAX comes with the test extras: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[1]


def test_quick_run_times_every_generator_without_tensorflow_or_official_code(tmp_path):
    hidden = tmp_path / "hidden"
    (hidden / "tensorflow").mkdir(parents=True)
    (hidden / "tensorflow" / "__init__.py").write_text("raise ImportError('tensorflow hidden by the test')\n")
    out = tmp_path / "gpu.json"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0",
               PYTHONPATH=os.pathsep.join([str(hidden), str(REPO)]))
    proc = subprocess.run([sys.executable, "-m", "bench.gpu", "--quick", "--official-root", str(tmp_path / "none"),
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    assert "Official PyTorch generators: not run (official repositories absent" in proc.stdout
    assert "| workload" in proc.stdout and "tfcoord, Keras-JAX" in proc.stdout

    payload = json.loads(out.read_text())
    generators = [r for r in payload["rows"] if r["kind"] == "generator"]
    assert {(r["model"], r["precision"]) for r in generators} == {
        (m, p) for m in ("cips", "infinitygan", "cocogan", "gawwn") for p in ("float32", "tf32", "bf16")}
    for row in generators:
        assert "error" not in row, row
        assert row["side"] == "tfcoord" and row["s_per_call"] > 0 and row["output_finite"], row
        # bf16 computes in bfloat16 and, as every tfcoord generator under mixed precision, returns float32 images.
        assert row["compute_dtype"] == ("bfloat16" if row["precision"] == "bf16" else "float32"), row
        assert row["output_dtype"] == "float32", row
    assert {r["precision"] for r in payload["rows"] if r["kind"] == "matmul"} == {"float32", "tf32", "bf16"}
    assert [r["kind"] for r in payload["rows"]].count("profile") == 1
    assert all(r["implementation"] == "tfcoord, Keras-JAX" and r["per_s"] > 0 for r in payload["table"])
    assert payload["goals"] == {}  # the goals are for the paper sizes, not the tiny presets


@pytest.mark.parametrize("argv, message", [(["--models", "cips,stylegan"], "--models: unknown stylegan"),
                                           (["--precisions", "fp8"], "--precisions: unknown fp8")])
def test_unknown_models_and_precisions_are_user_errors(argv, message):
    from bench import gpu

    with pytest.raises(UserError, match=message):
        gpu.main(argv)
