"""bench.export's choice of what to time: --run (a trained or converted run), --model MODEL:PRESET, and its summary."""

from bench import export as bench_export
from tfcoord import cli


def test_run_and_model_time_only_those_per_patch(tmp_path):
    run_dir = tmp_path / "gawwn-run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model_type: gawwn\npreset: tiny_keypoints\n")
    plan = bench_export.workloads(False, [run_dir], [bench_export.parse_preset("cocogan:celeba64")])
    assert plan["client"] == []
    assert [(w["model_type"], w["preset"], w.get("run")) for w in plan["latency"]] == [
        ("cocogan", "celeba64", None), ("gawwn", "tiny_keypoints", str(run_dir.resolve()))]
    assert bench_export.parse_preset("gawwn:cub_bbox:text.encoder_run=,model.ngf=64") == (
        "gawwn", "cub_bbox", ("text.encoder_run=", "model.ngf=64"))
    default = bench_export.workloads(False)
    assert len(default["latency"]) == len(bench_export.MODELS) and default["client"]


def test_a_wrong_run_or_preset_is_one_line_naming_the_fix(tmp_path, capsys):
    assert cli.run(bench_export.main, ["--model", "gawwn:cub_box"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --model gawwn:cub_box: not a MODEL:PRESET") and "cub_bbox" in error
    assert error.count("\n") == 1
    assert cli.run(bench_export.main, ["--run", str(tmp_path)]) == 2
    assert "is not a run directory (no config.yaml)" in capsys.readouterr().err


def test_the_summary_states_the_int8_goal_per_model_and_names_runs():
    def row(path, ms, psnr):
        return {"path": path, "ms_per_patch": ms, "round_ms": [ms] * 2, "max_abs_diff": 0.1, "psnr_db": psnr,
                "bytes": 1024, "speedup_vs_savedmodel": 10.0 / ms, "round_speedups": [10.0 / ms] * 2}

    rows = [row("SavedModel signature", 10.0, float("inf")), row("TFLite float32", 4.0, 120.0),
            row("TFLite int8", 1.0, 31.0)]
    latency = [{"model_type": "cocogan", "preset": "celeba64", "patch": 32, "rows": rows},
               {"model_type": "gawwn", "preset": "tiny", "patch": 64, "run": "/runs/final/gawwn",
                "rows": [dict(r, psnr_db=20.0) if r["path"] == "TFLite int8" else r for r in rows]}]
    machine = {"cpu": "x", "cores": 2, "tensorflow": "2.21", "load_average_start": 1.0, "load_average_end": 1.0}
    text = bench_export.summarize(latency, [], machine)
    assert ("cocogan celeba64: TFLite float32 2.5x faster" in text
            and "int8 10.0x at 31.0 dB (untrained weights; 8x with 30 dB: met)" in text)
    assert "gawwn tiny (gawwn): TFLite float32 2.5x" in text
    assert "int8 10.0x at 20.0 dB (8x with 30 dB: not met)" in text
