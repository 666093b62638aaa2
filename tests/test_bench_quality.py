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
    # The README's generate command ran on the trained run and was scored.
    [demo] = result["demos"]
    assert demo["command"] == "python -m tfcoord.generate --run RUN --num 16" and demo["images"] == 16
    assert {"single_horizon", "seam_ratio"} <= set(demo)
    assert "| cocogan | python -m tfcoord.generate --run RUN --num 16 | 16" in proc.stdout


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


def _fake_generate(images, boxes, caption):
    """A stand-in for tfcoord.generate.main that writes ``images`` and their boxes as a GAWWN run's call would."""
    from pathlib import Path

    from PIL import Image

    def main(argv):
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        record = {"caption": caption.split(), "images": []}  # --caption's words, as argparse leaves them
        for i, (image, (ymin, xmin, ymax, xmax)) in enumerate(zip(images, boxes)):
            Image.fromarray(image).save(out / f"move_seed0_{i:04d}.png")
            record["images"].append({"file": f"move_seed0_{i:04d}.png",
                                     "bbox_xywh": [float(xmin), float(ymin), float(xmax - xmin), float(ymax - ymin)]})
        Image.fromarray(images[0]).save(out / "move_seed0_grid.png")
        (out / "move_conditions.json").write_text(json.dumps(record))
        return 0

    return main


def test_readme_demo_scores_follow_the_boxes(quality_network, monkeypatch):
    """The README-command check reads what generate wrote: birds in their boxes score high, the same birds
    against boxes elsewhere low; the caption's colours are scored against the drawn parts."""
    import numpy as np

    import bench.quality as quality
    from tfcoord import generate
    from tfcoord.data.synthetic_birds import caption_colours
    from tfcoord.metrics.quality.evaluator import QualityEvaluator

    evaluator = QualityEvaluator("synthetic-birds", 8, network=quality_network("synthetic-birds"))
    truth = evaluator.domain.render("second", 6)
    boxes = truth.extras["boxes"]
    caption = next(c for c in truth.extras["captions"][0] if caption_colours(c))
    entry = quality.ENTRIES["gawwn"]
    scores = {}
    for name, given in (("own", boxes), ("elsewhere", 1.0 - boxes[:, [2, 3, 0, 1]])):  # mirrored boxes
        monkeypatch.setattr(generate, "main", _fake_generate(truth.images, given, caption))
        scores[name] = quality.readme_demo_scores(entry, entry.demos[1], "RUN", None, evaluator, (64, 64))
    assert scores["own"]["images"] == 6 and scores["own"]["command"].startswith("python -m tfcoord.generate --run RUN")
    assert scores["own"]["box_fraction"] > 0.8
    assert scores["elsewhere"]["box_fraction"] < scores["own"]["box_fraction"] - 0.3
    # Bird 0 drawn six times is the caption's own species: the colours it names are there.
    monkeypatch.setattr(generate, "main", _fake_generate(np.repeat(truth.images[:1], 6, 0),
                                                         np.repeat(boxes[:1], 6, 0), caption))
    same = quality.readme_demo_scores(entry, entry.demos[1], "RUN", None, evaluator, (64, 64))
    assert same["colour_match"] > 0.6 and same["box_fraction"] > 0.8


def test_steps_trains_past_the_preset_and_keeps_a_checkpoint_every_tenth():
    """``--steps N``: the README's command with N steps, a checkpoint every N / 10 steps, all of them kept."""
    import bench.quality as quality
    from tfcoord.train import parse_args, resolve

    command = quality.train_command(quality.ENTRIES["gawwn"], "/x/run", quick=False, steps=2000)
    assert command[:5] == ["python", "-m", "tfcoord.train", "--model", "gawwn"]
    assert quality.train_command(quality.ENTRIES["gawwn"], "/x/run", quick=False) == command[:7]
    config, run = resolve(parse_args(command[3:]))
    assert str(run) == "/x/run"
    assert (config.train.steps, config.train.checkpoint_every, config.train.keep_checkpoints) == (2000, 200, 11)
    assert config.preset == "tiny"  # the default preset, nothing else changed


def test_steps_refuses_bad_values_in_one_line(tmp_path):
    for args, message in ((["--steps", "0"], "--steps must be at least 1"),
                          (["--steps", "10", "--quick"], "drop --steps"),
                          (["--steps", "10", "--write-docs"], "drop --steps")):
        proc = run_module("bench.quality", "--model", "cocogan", *args, "--out", tmp_path / "q.json", timeout=120)
        assert proc.returncode == 2, proc.stderr
        [line] = [line for line in proc.stderr.splitlines() if line.strip()]
        assert line.startswith("error: ") and message in line
        assert not (tmp_path / "q.json").exists()
