"""Every command-line entry point checks its arguments before doing work: one line, exit 2, nothing written."""

import pytest

from tiny_run import TINY_ARGS, one_error_line, run_module


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model_type: cocogan\n")
    return tmp_path


@pytest.mark.parametrize("module, args, message", [
    ("tfcoord.train", [*TINY_ARGS, "--out", "{tmp}/a_file/run"], "cannot write to the run directory"),
    ("tfcoord.train", [*TINY_ARGS, "--set", "train.fid_every=2", "--out", "{tmp}/new_run"], "no Inception-v3 weights"),
    ("tfcoord.train", [*TINY_ARGS, "--set", "train.on_nonfinite=retry"], "one of 'stop', 'restore'"),
    ("tfcoord.train", [*TINY_ARGS, "--config", "{tmp}/a_file"], "must be a mapping"),
    ("tfcoord.generate", ["--run", "{tmp}/run", "--num", "0"], "--num must be between 1 and"),
    ("tfcoord.generate", ["--run", "{tmp}/missing"], "not a tfcoord run directory"),
    ("tfcoord.evaluate", ["--run", "{tmp}/run", "--metric", "fid", "--num", "1"], "--num must be between 2 and"),
    ("tfcoord.evaluate", ["--run", "{tmp}/run", "--metric", "pr", "--num", "60000"], "--num (pr)"),
    ("tfcoord.evaluate", ["--run", "{tmp}/run", "--metric", "fdi", "--num", "9"], "did you mean 'fid'"),
    ("tfcoord.evaluate", ["--run", "{tmp}/run", "--metric", "kid", "--num", "9", "--kid-subset-size", "10"],
     "--kid-subset-size must be between 2 and 9"),
    ("tfcoord.evaluate", ["--run", "{tmp}/run", "--metric", "fid", "--num", "9", "--inception-weights",
                          "{tmp}/missing.h5"], "does not exist"),
    ("tfcoord.convert", ["cocogan", "--checkpoint", "{tmp}/missing", "--config", "x", "--out", "{tmp}/o"],
     "does not exist"),
])
def test_bad_arguments_stop_before_any_work(paths, module, args, message):
    args = [a.replace("{tmp}", str(paths)) for a in args]

    def listing():  # Keras creates its (empty, offline) home folder on import: not the command's work
        return sorted(p.relative_to(paths) for p in paths.rglob("*") if p.relative_to(paths).parts[0] != "keras")

    before = listing()
    result = run_module(module, *args, cwd=paths,
                        env={"KERAS_HOME": str(paths / "keras"), "TFCOORD_FEATURE_EXTRACTOR": ""})
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in one_error_line(result)
    assert listing() == before  # nothing was created
