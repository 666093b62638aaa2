"""What every tfcoord benchmark shares: one process per workload, memory, compute, table, JSON.

A benchmark module runs itself once per workload as ``python -m bench.<name> --worker
SPEC`` (:func:`run_workload`), so each workload starts with clean TensorFlow thread
settings and its own peak RSS. The child calls :func:`start_child` first thing, adds
:func:`memory` to its numbers and prints them with :func:`report`:

* ``peak_rss_mb`` -- the process's ``ru_maxrss`` (imports included),
* ``rss_increase_mb`` -- that peak minus the RSS right after the imports.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT_MARK = "BENCH_RESULT "
# Pinned as the spec asks when comparing timings (models.md §6).
INTRA_OP_THREADS = 2
INTER_OP_THREADS = 1


# -- parent side -------------------------------------------------------------------------
def run_workload(module: str, spec: dict, timeout: float = 900) -> dict:
    """Run ``python -m module --worker SPEC`` in a fresh process; returns the dict it reported."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("TFCOORD_LOGICAL_CPUS", None)  # one CPU device, as a user's run on this machine
    proc = subprocess.run([sys.executable, "-m", module, "--worker", json.dumps(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return {**spec, **json.loads(line[len(RESULT_MARK):])}
    # The last line is what summaries print: a child killed by a signal says so (its stderr ends in log lines).
    killed = (f"\nkilled by signal {-proc.returncode} ({signal.Signals(-proc.returncode).name}"
              f"{': out of memory?' if proc.returncode == -signal.SIGKILL else ''})" if proc.returncode < 0 else "")
    raise RuntimeError(f"workload {spec} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}{killed}")


def run_plan(module: str, plan, describe, machine: dict, timeout: float = 900, failures: list | None = None,
             runner=run_workload):
    """Run every workload of ``plan`` (a list of specs, or ``{group: [specs]}``) in its own process.

    Prints ``[i/n] describe(spec)`` to stderr before each, returns the reported dicts in the
    plan's structure and stamps ``machine["load_average_end"]``. With ``failures`` a list, a
    workload that fails (e.g. out of memory) is recorded there as ``{**spec, "error": ...}``
    and the others still run; otherwise the first failure raises.
    """
    groups = plan if isinstance(plan, dict) else {None: plan}
    total, number, results = sum(map(len, groups.values())), 0, {}
    for group, specs in groups.items():
        results[group] = []
        for spec in specs:
            number += 1
            print(f"[{number}/{total}] {describe(spec)}", file=sys.stderr, flush=True)
            try:
                results[group].append(runner(module, spec, timeout=timeout))
            except Exception as error:
                if failures is None:
                    raise
                print(f"  failed: {str(error)[-2000:]}", file=sys.stderr, flush=True)
                failures.append({**spec, "error": str(error)[-2000:]})
    machine["load_average_end"] = os.getloadavg()[0]
    return results if isinstance(plan, dict) else results[None]


def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "tensorflow": importlib.metadata.version("tensorflow"),
            "keras": importlib.metadata.version("keras"), "tfcoord_commit": commit,
            "intra_op_threads": INTRA_OP_THREADS, "inter_op_threads": INTER_OP_THREADS,
            "load_average_start": os.getloadavg()[0],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A pipe table; ``columns`` are (header, key, format); missing values print blank."""
    cells = [[header for header, _, _ in columns]]
    for row in rows:
        cells.append(["" if row.get(key) is None else format(row[key], fmt) for _, key, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths)) + " |" for line in cells]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def write_json(path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# -- child side ----------------------------------------------------------------------------
def start_child(*modules: str) -> float:
    """Pin TensorFlow's threads (before any op runs), import ``modules``; returns the RSS then, in MB."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
    for module in modules:
        importlib.import_module(module)
    return rss_mb()


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024


def memory(baseline_mb: float) -> dict:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    return {"peak_rss_mb": peak, "rss_increase_mb": peak - baseline_mb}


def report(result: dict) -> None:
    print(RESULT_MARK + json.dumps(result), flush=True)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def graph_macs(concrete_function) -> int:
    """Multiply-accumulates of the Conv2D and MatMul ops of a traced function (static shapes)."""
    total = 0
    for op in concrete_function.graph.get_operations():
        if op.type == "Conv2D":
            kernel_h, kernel_w, in_channels, _ = op.inputs[1].shape
            total += op.outputs[0].shape.num_elements() * kernel_h * kernel_w * in_channels
        elif op.type in ("MatMul", "BatchMatMulV2"):
            transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
            inner = op.inputs[0].shape[-2 if transposed else -1]
            total += op.outputs[0].shape.num_elements() * inner
    return total
