"""The benchmarks' shared parent loop (bench/common.py): plan structure, progress, failures."""

import pytest

from bench.common import markdown_table, run_plan


def fake_runner(calls):
    def run(module, spec, timeout):
        calls.append((module, spec["n"], timeout))
        if spec.get("fail"):
            raise RuntimeError(f"workload {spec['n']} ran out of memory")
        return {**spec, "seconds": spec["n"] / 10}
    return run


def test_grouped_plan_keeps_its_groups_and_order(capsys):
    calls, machine = [], {}
    plan = {"training": [{"n": 1}, {"n": 2}], "generation": [{"n": 3}]}
    results = run_plan("bench.x", plan, lambda s: f"workload {s['n']}", machine, timeout=7,
                       runner=fake_runner(calls))
    assert list(results) == ["training", "generation"]
    assert [r["n"] for r in results["training"]] == [1, 2] and results["generation"][0]["seconds"] == 0.3
    assert calls == [("bench.x", 1, 7), ("bench.x", 2, 7), ("bench.x", 3, 7)]
    assert capsys.readouterr().err.splitlines() == ["[1/3] workload 1", "[2/3] workload 2", "[3/3] workload 3"]
    assert isinstance(machine["load_average_end"], float)


def test_flat_plan_returns_a_list():
    results = run_plan("bench.x", [{"n": 4}], str, {}, runner=fake_runner([]))
    assert results == [{"n": 4, "seconds": 0.4}]


def test_a_failed_workload_raises_unless_failures_are_collected():
    plan = [{"n": 1}, {"n": 2, "fail": True}, {"n": 3}]
    with pytest.raises(RuntimeError, match="workload 2 ran out of memory"):
        run_plan("bench.x", plan, str, {}, runner=fake_runner([]))
    calls, failures = [], []
    results = run_plan("bench.x", plan, str, {}, failures=failures, runner=fake_runner(calls))
    assert [r["n"] for r in results] == [1, 3] and len(calls) == 3
    assert failures == [{"n": 2, "fail": True, "error": "workload 2 ran out of memory"}]


def test_markdown_table_formats_and_leaves_missing_values_blank():
    table = markdown_table([{"a": "x", "b": 1.234}, {"a": "yy"}], [("name", "a", "s"), ("value", "b", ".1f")])
    assert table.splitlines() == ["| name | value |", "|------|-------|", "| x    | 1.2   |", "| yy   |       |"]


def test_a_child_killed_by_a_signal_says_so_on_its_last_line(monkeypatch):
    # A workload the kernel kills for memory (CIPS ffhq1024's export did) ends its stderr in TensorFlow's start-up
    # lines; the summaries print the error's last line, so that line must name the signal.
    import subprocess

    from bench import common

    def killed(*args, **kwargs):
        return subprocess.CompletedProcess(args, -9, stdout="", stderr="I0000 port.cc:153] oneDNN custom operations\n")

    monkeypatch.setattr(common.subprocess, "run", killed)
    with pytest.raises(RuntimeError) as error:
        common.run_workload("bench.export", {"kind": "latency"})
    assert str(error.value).splitlines()[-1] == "killed by signal 9 (SIGKILL: out of memory?)"
    assert "oneDNN" in str(error.value)  # the child's own lines are kept above it
