"""python -m bench.quality: the end-to-end smoke run and the docs captions."""

import json

from conftest import run_module


def test_quick_run_trains_and_evaluates_end_to_end(quality_cache, quality_network, tmp_path):
    quality_network("synthetic-landscapes")  # trained here once, then loaded from the cache by the run
    out = tmp_path / "quality.json"
    proc = run_module("bench.quality", "--quick", "--model", "cocogan", "--out", out,
                      env={"TFCOORD_CACHE_DIR": str(quality_cache)}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())["models"]["cocogan"]
    assert [row["checkpoint"] for row in result["rows"]] == ["real", "step 0", "step 2", "step 4"]
    assert result["feature_network"]["cached"]  # the session's quick network, not a new one
    for row in result["rows"]:
        assert {"precision", "recall", "kid", "single_horizon", "seam_ratio"} <= set(row)
    assert "| cocogan | step 4" in proc.stdout


def test_docs_captions_merge_models(tmp_path, monkeypatch):
    import bench.quality as quality

    monkeypatch.setattr(quality, "DOCS", tmp_path)
    row = {"precision": 0.5, "recall": 0.25, "kid": 1.0, "seam_ratio": 2.0}
    for name in ("cocogan", "cips"):
        result = {"docs": {"samples": f"quality_{name}_samples.png", "samples_caption": "real, then generated",
                           "extra": f"quality_{name}_canvas.png", "extra_factor": 4,
                           "generate_command": "python -m tfcoord.generate --run RUN"},
                  "train_command": ["python", "-m", "tfcoord.train", "--model", name, "--out", "/x/run"],
                  "run": "/x/run", "date": "today",
                  "rows": [{"checkpoint": checkpoint, **row} for checkpoint in ("real", "step 0", "step 9")]}
        quality.write_docs_captions({name: result}, quick=False)
    text = (tmp_path / "README.md").read_text()
    assert "## cocogan" in text and "## cips" in text  # the second call kept the first model
    assert "`python -m tfcoord.train --model cips --out RUN`" in text
    assert "| step 9 | 0.500 | 0.250 | 1.0000 | 2.000 |" in text
