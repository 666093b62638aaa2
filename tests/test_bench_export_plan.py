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


def test_every_preset_times_each_distinct_generator_once_and_covers_every_preset():
    from tfcoord.config import list_presets
    from tfcoord.models import SPECS, Capability

    chosen = bench_export.every_preset()
    covered = sorted((m, p) for m, first, _, same in chosen for p in (first, *same))
    assert covered == sorted((m, p) for m in SPECS if SPECS[m].can(Capability.IMAGES) for p in list_presets(m))
    by_first = {(m, p): (overrides, same) for m, p, overrides, same in chosen}
    # Equal model sections share a generator: the four CIPSskip 256 presets, COCO-GAN's 64 px N2M2.
    assert by_first[("cips", "churches256")][1] == ("ffhq256", "satellite_buildings256", "satellite_landscapes256")
    assert by_first[("cocogan", "celeba64")][1] == ("lsun64",)
    assert ("cips", "landscapes256") in by_first and ("cips", "ffhq1024") in by_first  # CIPSres, 1024: their own
    # A preset that loads a text-encoder run is timed without it.
    assert by_first[("gawwn", "cub_bbox")] == (("text.encoder_run=",), ())
    assert by_first[("gawwn", "tiny")][0] == ()
    plan = bench_export.workloads(True, (), chosen, calls=40)
    assert plan["client"] == [] and all(w["runs"] == 40 for w in plan["latency"])
    assert next(w for w in plan["latency"] if w["preset"] == "celeba64")["same_generator"] == ["lsun64"]
    assert "same_generator" not in next(w for w in plan["latency"] if w["preset"] == "tiny")


def test_the_summary_names_shared_generators_and_the_every_preset_goal():
    def row(path, ms):
        return {"path": path, "ms_per_patch": ms, "round_ms": [ms], "max_abs_diff": 0.1, "psnr_db": 40.0,
                "bytes": 1024, "speedup_vs_savedmodel": 10.0 / ms, "round_speedups": [10.0 / ms]}

    latency = [{"model_type": "cips", "preset": "churches256", "patch": 64, "same_generator": ["ffhq256"],
                "rows": [row("SavedModel signature", 10.0), row("TFLite float32", 8.0), row("TFLite int8", 2.0)]}]
    machine = {"cpu": "x", "cores": 2, "tensorflow": "2.21", "load_average_start": 1.0, "load_average_end": 1.0}
    text = bench_export.summarize(latency, [], machine)
    assert "cips churches256 (same generator: ffhq256): TFLite float32 1.2x" in text
    assert "1.5x on every preset: NOT met" in text


def test_calls_must_be_positive(capsys):
    assert cli.run(bench_export.main, ["--every-preset", "--calls", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --calls must be at least 1, got 0") and error.count("\n") == 1
