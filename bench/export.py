"""Exported models on this CPU: per-patch latency, size and accuracy of each path; client throughput.

    python -m bench.export            # about 8 minutes on 2 idle cores
    python -m bench.export --quick    # tiny models only, fewer runs

For each model (untrained weights: they do not change the cost) one process exports a
SavedModel and four TFLite files (float32, float16, dynamic-range int8, full int8; batch 1)
and times one patch (batch 1; median of 200 calls, the paths taking turns in 10 rounds of 20
calls) through Keras eager (the serving function's Python body), ``tf.function``, the
SavedModel signature (TF2 loader), a C-API session (``LoadSavedModel``, TF Serving's loader,
through export/c_api.py) and each TFLite file (ai_edge_litert, 2 threads); the
TFLite/SavedModel ratio is also given per round (its spread shows the noise); accuracy is
the max abs difference and PSNR (peak-to-peak 2) against Keras eager over 16 random
patches. Another process per model renders a canvas with export.client through the gRPC
and REST stand-in servers (export/testing.py, in the same process), the local SavedModel
and a TFLite file with the client's batch, and reports tiles per second. Goal (issue 6): TFLite float32 at
least 3x faster per patch than the SavedModel signature.
"""

from __future__ import annotations

import argparse
import json
import sys
import math
import statistics
import tempfile
import time
from pathlib import Path

from tfcoord import cli
from bench.common import REPO, machine_info, markdown_table, memory, report, run_plan, start_child, write_json

# (model, preset, extra overrides); the tiny presets are what tests export, celeba64 is the paper's network.
MODELS = [("cocogan", "tiny", ()), ("cocogan", "celeba64", ()), ("cips", "tiny", ()), ("infinitygan", "tiny", ()),
          ("gawwn", "tiny", ())]
QUICK_MODELS = [("cocogan", "tiny", ())]
TILEABLE = ("cocogan", "cips", "infinitygan")  # export.client tiles them (GAWWN draws whole images: no tiles)
QUANTIZATIONS = ("none", "float16", "dynamic-int8", "int8")  # int8: PSNR of untrained weights; bench.int8 for trained runs
LATENCY_RUNS = 200  # --quick: 15
BLOCK, BLOCK_WARMUP = 20, 3  # the paths take turns in blocks of 20 timed calls
ACCURACY_PATCHES = 16
CLIENT_CANVAS = (256, 256)
CLIENT_BATCH, CLIENT_IN_FLIGHT = 16, 4
GOAL_SPEEDUP = 3.0
MODULES = ("keras", "ai_edge_litert.interpreter", "export.saved_model", "export.tflite", "export.client")


def build_run(model_type, preset, overrides, run_dir):
    import keras

    from export.testing import write_run
    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    config = load_config(model_type, section_classes(model_type), preset=preset, overrides=list(overrides))
    keras.utils.set_random_seed(0)
    model = model_class(model_type)(config)
    model.build()
    write_run(model, run_dir)
    return model


def median_ms(paths, sample, runs, block=BLOCK):
    """Per path: the median ms per call, and the median of each round.

    The paths take turns in rounds of ``block`` calls each, so that drifting load hits all
    alike; the first calls of a block are not timed, so that one path's thread pools
    winding down do not count against the next.
    """
    for call in paths.values():
        for _ in range(3):
            call(sample)
    times = {name: [] for name in paths}
    rounds = {name: [] for name in paths}
    for _ in range(max(1, runs // block)):
        for name, call in paths.items():
            block_times = []
            for index in range(block + BLOCK_WARMUP):
                start = time.perf_counter()
                call(sample)
                if index >= BLOCK_WARMUP:
                    block_times.append(time.perf_counter() - start)
            times[name] += block_times
            rounds[name].append(1000 * statistics.median(block_times))
    return {name: (1000 * statistics.median(values), rounds[name]) for name, values in times.items()}


def folder_bytes(path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def latency_workload(model_type, preset, overrides, runs):
    baseline = start_child(*MODULES)
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from export.saved_model import export_saved_model
    from export.example_inputs import example_inputs, patch_size
    from export.tflite import export_tflite

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = build_run(model_type, preset, overrides, scratch / "run")
        version_dir, description = export_saved_model(scratch / "run", scratch / "serving")
        patch = patch_size(description)
        files = {q: export_tflite(scratch / "run", scratch / f"{q}.tflite", patch, q)[0] for q in QUANTIZATIONS}
        function = model.serving_functions()["generate_patch"]
        signature = tf.saved_model.load(str(version_dir)).signatures["generate_patch"]

        def tensors(sample):
            return {k: tf.constant(v) for k, v in sample.items()}

        def positional(sample):  # in input_signature order (a function may take *noises)
            return [tf.constant(sample[spec.name]) for spec in function.input_signature]

        from export.c_api import SavedModelSession

        # TF Serving's own loader (LoadSavedModel through the C API), as export/c_api.py runs it.
        session = SavedModelSession(version_dir)
        paths = {"Keras eager": lambda s: function.python_function(*positional(s))["rgb"].numpy(),
                 "tf.function": lambda s: function(*positional(s))["rgb"].numpy(),
                 "SavedModel signature": lambda s: signature(**tensors(s))["rgb"].numpy(),
                 "C-API session (TF Serving's loader)": lambda s: session.run("generate_patch", s)["rgb"]}
        sizes = {"SavedModel signature": folder_bytes(version_dir)}
        for quantize, path in files.items():
            runner = Interpreter(model_path=str(path), num_threads=2).get_signature_runner("generate_patch")
            name = f"TFLite {'float32' if quantize == 'none' else quantize}"
            paths[name] = lambda s, runner=runner: runner(**s)["rgb"]
            sizes[name] = path.stat().st_size
        samples = [example_inputs(model, description, "generate_patch", 1, seed) for seed in range(ACCURACY_PATCHES)]
        reference = [paths["Keras eager"](s) for s in samples]
        rows = []
        latency = median_ms(paths, samples[0], runs)
        for name, call in paths.items():
            diffs = [np.asarray(call(s), "float64") - r for s, r in zip(samples, reference)]
            mse = float(np.mean([np.mean(np.square(d)) for d in diffs]))
            rows.append({"path": name, "ms_per_patch": latency[name][0], "round_ms": latency[name][1],
                         "max_abs_diff": float(max(np.abs(d).max() for d in diffs)),
                         "psnr_db": math.inf if mse == 0 else 10 * math.log10(4.0 / mse),
                         "bytes": sizes.get(name)})
    saved_row = next(r for r in rows if r["path"] == "SavedModel signature")
    saved, saved_rounds = saved_row["ms_per_patch"], saved_row["round_ms"]
    for row in rows:
        row["speedup_vs_savedmodel"] = saved / row["ms_per_patch"]
        # The same ratio round by round (both paths timed within one round): its spread shows the noise.
        row["round_speedups"] = [s / t for s, t in zip(saved_rounds, row["round_ms"])]
    return {"rows": rows, "patch": patch, "parameters": description["parameters"], **memory(baseline)}


def client_workload(model_type, preset, overrides, width, height, batch, in_flight):
    baseline = start_child(*MODULES)
    from export.backends import GrpcBackend, RestBackend, RetryPolicy, SavedModelBackend, TfliteBackend
    from export.client import render
    from export.saved_model import export_saved_model
    from export.example_inputs import patch_size
    from export.testing import ModelStore, grpc_server, rest_server
    from export.tflite import export_tflite
    from export.tiling import TilePlan

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        build_run(model_type, preset, overrides, scratch / "run")
        _, description = export_saved_model(scratch / "run", scratch / "serving")
        tflite, _ = export_tflite(scratch / "run", scratch / "batch.tflite", patch_size(description), batch=batch)
        store = ModelStore({model_type: scratch / "serving"})
        rows = []
        with grpc_server(store, workers=in_flight) as target, rest_server(store) as url:
            backends = {"gRPC (stand-in server)": GrpcBackend(target, model_type),
                        "REST (stand-in server)": RestBackend(url, model_type),
                        "local SavedModel": SavedModelBackend(scratch / "serving"),
                        f"TFLite float32, batch {batch}": TfliteBackend(tflite, num_threads=1)}
            for name, backend in backends.items():
                plan = TilePlan(backend.description(), width, height, seed=0)
                warm = TilePlan(plan.description, plan.tile_width * 4, plan.tile_height * 4)
                render(backend, warm, batch_size=batch, max_in_flight=in_flight, progress=False)
                start = time.perf_counter()
                render(backend, plan, batch_size=batch, max_in_flight=in_flight, retry=RetryPolicy(), progress=False)
                seconds = time.perf_counter() - start
                rows.append({"backend": name, "tiles": plan.num_tiles, "seconds": seconds,
                             "tiles_per_s": plan.num_tiles / seconds})
                backend.close()
    return {"rows": rows, **memory(baseline)}


def workloads(quick):
    models = QUICK_MODELS if quick else MODELS
    latency = [{"kind": "latency", "model_type": m, "preset": p, "overrides": list(o),
                "runs": 15 if quick else LATENCY_RUNS} for m, p, o in models]
    client = [{"kind": "client", "model_type": m, "preset": p, "overrides": list(o), "width": CLIENT_CANVAS[0],
               "height": CLIENT_CANVAS[1], "batch": CLIENT_BATCH, "in_flight": CLIENT_IN_FLIGHT}
              for m, p, o in models if m in TILEABLE]
    return {"latency": latency, "client": client}


def run_child(spec):
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    report((latency_workload if spec["kind"] == "latency" else client_workload)(**arguments))


def summarize(latency, client, machine):
    rows = [{"model": f"{r['model_type']} {r['preset']}", "patch": r["patch"], **row}
            for r in latency for row in r["rows"]]
    for row in rows:
        row["kib"] = None if row["bytes"] is None else row["bytes"] / 1024
    latency_table = markdown_table(rows, [
        ("model", "model", "s"), ("patch", "patch", "d"), ("path", "path", "s"), ("ms/patch", "ms_per_patch", ".2f"),
        ("x vs SavedModel", "speedup_vs_savedmodel", ".1f"), ("max abs diff", "max_abs_diff", ".2g"),
        ("PSNR dB", "psnr_db", ".1f"), ("size KiB", "kib", ".0f")])
    client_rows = [{"model": f"{r['model_type']} {r['preset']}", "canvas": f"{r['width']}x{r['height']}",
                    "batch": r["batch"], "in_flight": r["in_flight"], **row} for r in client for row in r["rows"]]
    client_table = markdown_table(client_rows, [
        ("model", "model", "s"), ("backend", "backend", "s"), ("canvas", "canvas", "s"), ("tiles", "tiles", "d"),
        ("batch", "batch", "d"), ("in flight", "in_flight", "d"), ("s", "seconds", ".2f"),
        ("tiles/s", "tiles_per_s", ".0f")])
    goals = []
    for r in latency:
        f32 = next(row for row in r["rows"] if row["path"] == "TFLite float32")
        verdict = "met" if f32["speedup_vs_savedmodel"] >= GOAL_SPEEDUP else "NOT met"
        spread = f"{min(f32['round_speedups']):.1f}-{max(f32['round_speedups']):.1f}x"
        goals.append(f"{r['model_type']} {r['preset']}: TFLite float32 {f32['speedup_vs_savedmodel']:.1f}x faster "
                     f"per patch than the SavedModel signature ({len(f32['round_speedups'])} rounds: {spread}; "
                     f"goal {GOAL_SPEEDUP:.0f}x: {verdict}).")
    calls = sorted({len(row["round_ms"]) * BLOCK for r in latency for row in r["rows"]})
    notes = [f"Per-patch latency at batch 1: median of {'/'.join(map(str, calls))} calls, the paths taking turns in blocks of "
             f"{BLOCK} (after {BLOCK_WARMUP} untimed calls each); "
             f"accuracy vs Keras eager over {ACCURACY_PATCHES} random patches (PSNR with peak-to-peak 2); "
             "size = SavedModel folder or .tflite file.",
             "Client: export.client render() into memory, after a warm-up render; the stand-in servers run in the "
             "client's process and share its 2 cores.",
             f"{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}; 1-minute load average at "
             f"start / end {machine['load_average_start']:.2f} / {machine['load_average_end']:.2f}.", *goals]
    return "\n\n".join([latency_table, client_table, "\n".join(notes)])


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.export", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, fewer runs (smoke test)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "export.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload and report it
    args = parser.parse_args(argv)
    if args.worker:
        return run_child(json.loads(args.worker))
    machine, plan = machine_info(), workloads(args.quick)
    results = run_plan("bench.export", plan, lambda s: f"{s['kind']} {s['model_type']} {s['preset']}", machine,
                       timeout=1800)
    print(summarize(results["latency"], results["client"], machine))
    path = write_json(args.out, {"benchmark": "export", "quick": args.quick, "machine": machine, **results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
