"""``python -m tfcoord.evaluate`` end to end on a tiny run, with the tiny stand-in feature extractor."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from tiny_run import fake_extractor_env, odd_image_folder, one_error_line, run_module, trained_run  # noqa: E402,F401


def test_fid_of_a_run_against_a_folder_then_again_from_the_cache(trained_run, tmp_path):
    folder = odd_image_folder(tmp_path / "real")
    env = fake_extractor_env(tmp_path / "cache")
    args = ["--run", trained_run, "--metric", "fid", "--real", f"folder:{folder}", "--num", "24", "--batch", "8",
            "--quiet"]
    first = run_module("tfcoord.evaluate", *args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.splitlines()[-1].startswith("fid: fid = ")
    assert "24 generated vs 11 real images" in first.stdout  # 14 files, 3 of them unreadable
    assert "holds only 11 images" in first.stderr
    second = run_module("tfcoord.evaluate", *args, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["real_statistics_cached"] for r in records[-2:]] == [False, True]
    assert records[-1]["fid"] == records[-2]["fid"] > 0
    assert records[-1]["checkpoint"].endswith("ckpt-4") and records[-1]["features"] == "tiny-test-features-v1"


def test_a_metric_the_model_cannot_serve_is_one_clear_line(trained_run, tmp_path):
    result = run_module("tfcoord.evaluate", "--run", trained_run, "--metric", "scaleinv-fid", "--num", "4",
                        env=fake_extractor_env(tmp_path / "cache"))
    assert result.returncode == 2
    assert "sample_images_at" in one_error_line(result)


def test_scaleinv_fid_of_an_infinitygan_run_generates_larger_canvases(tmp_path):
    from conftest import make_run

    run = make_run(tmp_path / "infinitygan", "infinitygan",
                   overrides=["model.ts_channels=[16,16,8]", "model.global_latent_dim=16",
                              "model.local_latent_dim=8", "model.n_mlp=2", "train.batch_size=2"], train_steps=0)
    result = run_module("tfcoord.evaluate", "--run", run, "--metric", "scaleinv-fid", "--num", "4", "--batch", "2",
                        "--quiet", env=fake_extractor_env(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    # tiny preset: real images 85 px, field of view 1, default scale 2 -> 170 px canvases
    assert record["view"]["generated_size"] == [170, 170] and record["view"]["real_size"] == [85, 85]
    assert record["num_generated"] == 4 and record["metric"] == "scaleinv-fid" and record["fid"] > 0
