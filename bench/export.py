"""Exported models on this CPU: per-patch latency, size and accuracy of each path; client throughput.

    python -m bench.export            # about 8 minutes on 2 idle cores
    python -m bench.export --quick    # tiny models only, fewer runs
    python -m bench.export --run runs/final/gawwn --model gawwn:cub_bbox   # chosen runs and presets only
    python -m bench.export --every-preset --calls 40   # one preset per distinct generator (issue 19's goal)

For each model (untrained weights: they do not change the cost; ``--run DIR``: a trained or
converted run's own weights, so that the int8 PSNR means something) one process exports a
SavedModel and four TFLite files (float32, float16, dynamic-range int8, full int8; batch 1)
and times one patch (batch 1; median of 200 calls, the paths taking turns in 10 rounds of 20
calls) through Keras eager (the serving function's Python body), ``tf.function``, the
SavedModel signature (TF2 loader), a C-API session (``LoadSavedModel``, TF Serving's loader,
through tests/support/c_api.py) and each TFLite file (ai_edge_litert, 2 threads); the
TFLite/SavedModel ratio is also given per round (its spread shows the noise); accuracy is
the max abs difference and PSNR (peak-to-peak 2) against Keras eager over 16 held-out
patches made as a client makes them (export.tflite.representative_inputs from seed 1000: tiles
of whole canvases; GAWWN: 16 conditions of the run's data and 16 random ones). Another process
per model renders a canvas with export.client through the gRPC
and REST stand-in servers (tests/support/serving.py, in the same process), the local SavedModel
and a TFLite file with the client's batch, and reports tiles per second (not with ``--run`` or
``--model``, which time the per-patch paths only). Goals: TFLite float32 at least 3x faster per
patch than the SavedModel signature (issue 6), at least 1.5x on every preset (issue 19), and full
int8 at least 8x faster with PSNR >= 30 dB on at least one paper preset (issue 19).
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
from tfcoord.errors import UserError

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
GOAL_EVERY_PRESET_SPEEDUP = 1.5  # issue 19: TFLite float32 vs the SavedModel, on every preset
GOAL_INT8_SPEEDUP, GOAL_INT8_PSNR_DB = 8.0, 30.0  # issue 19, on at least one paper preset
MODULES = ("keras", "ai_edge_litert.interpreter", "export.saved_model", "export.tflite", "export.client")


def build_run(model_type, preset, overrides, run_dir):
    import keras

    from tests.support.serving import write_run
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


def latency_workload(model_type, preset, overrides, runs, run=None, same_generator=()):
    # same_generator only labels the result: run_workload merges the spec into what this reports.
    baseline = start_child(*MODULES)
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from export.saved_model import export_saved_model
    from export.example_inputs import patch_size
    from export.tflite import export_tflite, representative_inputs
    from tfcoord.runs import load_run

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run_dir = Path(run) if run else scratch / "run"
        model = load_run(run_dir)[0] if run else build_run(model_type, preset, overrides, run_dir)
        version_dir, description = export_saved_model(run_dir, scratch / "serving")
        patch = patch_size(description)
        files = {q: export_tflite(run_dir, scratch / f"{q}.tflite", patch, q)[0] for q in QUANTIZATIONS}
        function = model.serving_functions()["generate_patch"]
        signature = tf.saved_model.load(str(version_dir)).signatures["generate_patch"]

        def tensors(sample):
            return {k: tf.constant(v) for k, v in sample.items()}

        def positional(sample):  # in input_signature order (a function may take *noises)
            return [tf.constant(sample[spec.name]) for spec in function.input_signature]

        from tests.support.c_api import SavedModelSession

        # TF Serving's own loader (LoadSavedModel through the C API), as tests/support/c_api.py runs it.
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
        samples = list(representative_inputs(model, description, 1, rows=ACCURACY_PATCHES, first_seed=1000)())
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
    from export.tflite import export_tflite
    from export.tiling import TilePlan
    from tests.support.serving import ModelStore, grpc_server, rest_server

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


def every_preset() -> list[tuple[str, str, tuple, tuple]]:
    """One ``(model, preset, overrides, same_generator)`` per distinct generator of configs/: presets whose
    ``model`` sections are equal export the same network, so the first by name stands for the others (listed in
    ``same_generator``). A preset that loads another run's weights (``text.encoder_run``) is timed with that
    emptied: the encoder keeps its initial weights, which changes no cost."""
    import dataclasses

    from tfcoord.config import list_presets, load_config
    from tfcoord.models import SPECS, Capability, section_classes

    chosen = {}
    for model_type in sorted(SPECS):
        if not SPECS[model_type].can(Capability.IMAGES):
            continue
        for preset in list_presets(model_type):
            config = load_config(model_type, section_classes(model_type), preset=preset)
            text = getattr(config, "text", None)
            overrides = ("text.encoder_run=",) if getattr(text, "encoder_run", "") else ()
            key = (model_type, repr(dataclasses.asdict(config.model)), getattr(text, "embedding_dim", None))
            if key in chosen:
                chosen[key][3].append(preset)
            else:
                chosen[key] = (model_type, preset, overrides, [])
    return [(m, p, o, tuple(same)) for m, p, o, same in chosen.values()]


def workloads(quick, runs=(), presets=(), calls=None):
    """The plan: every default model (``quick``: the tiny COCO-GAN), or only the given run directories and
    ``(model, preset[, overrides[, same_generator]])`` tuples, per-patch latency only. ``calls``: timed calls per
    path (default 200, ``quick`` 15)."""
    models = list(presets) if runs or presets else QUICK_MODELS if quick else MODELS
    calls = calls or (15 if quick else LATENCY_RUNS)
    latency = [{"kind": "latency", "model_type": m, "preset": p, "overrides": list(o), "runs": calls,
                **({"same_generator": list(rest[0])} if rest and rest[0] else {})}
               for m, p, o, *rest in models]
    for run in runs:
        config = run_config(run)
        latency.append({"kind": "latency", "model_type": config["model_type"], "preset": config["preset"],
                        "overrides": [], "runs": calls, "run": str(Path(run).resolve())})
    client = [] if runs or presets else [
        {"kind": "client", "model_type": m, "preset": p, "overrides": list(o), "width": CLIENT_CANVAS[0],
         "height": CLIENT_CANVAS[1], "batch": CLIENT_BATCH, "in_flight": CLIENT_IN_FLIGHT}
        for m, p, o in models if m in TILEABLE]
    return {"latency": latency, "client": client}


def run_config(run) -> dict:
    """model_type and preset of a run directory's config.yaml (a UserError when it is not a run)."""
    import yaml

    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise UserError(f"--run {run} is not a run directory (no config.yaml); pass the --out folder of "
                        "tfcoord.train or tfcoord.convert")
    config = yaml.safe_load(path.read_text()) or {}
    return {"model_type": config.get("model_type", "?"), "preset": config.get("preset") or "custom"}


def parse_preset(text: str) -> tuple[str, str, tuple]:
    """``MODEL:PRESET[:KEY=VALUE,...]`` -> (model, preset, overrides), checked against the presets under configs/."""
    from tfcoord.config import list_presets
    from tfcoord.models import SPECS, Capability

    model_type, _, rest = text.partition(":")
    preset, _, overrides = rest.partition(":")
    if model_type not in SPECS or preset not in list_presets(model_type):
        known = "; ".join(f"{m}: {', '.join(list_presets(m))}" for m in sorted(SPECS) if SPECS[m].can(Capability.IMAGES))
        raise UserError(f"--model {text}: not a MODEL:PRESET of configs/ ({known})")
    return model_type, preset, tuple(o for o in overrides.split(",") if o)


def run_child(spec):
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    report((latency_workload if spec["kind"] == "latency" else client_workload)(**arguments))


def summarize(latency, client, machine):
    rows = [{"model": label(r), "patch": r["patch"], **row} for r in latency for row in r["rows"]]
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
        int8 = next(row for row in r["rows"] if row["path"] == "TFLite int8")
        verdict = ("met" if f32["speedup_vs_savedmodel"] >= GOAL_SPEEDUP else
                   f"NOT met; {GOAL_EVERY_PRESET_SPEEDUP}x on every preset: "
                   + ("met" if f32["speedup_vs_savedmodel"] >= GOAL_EVERY_PRESET_SPEEDUP else "NOT met"))
        spread = f"{min(f32['round_speedups']):.1f}-{max(f32['round_speedups']):.1f}x"
        int8_met = int8["speedup_vs_savedmodel"] >= GOAL_INT8_SPEEDUP and int8["psnr_db"] >= GOAL_INT8_PSNR_DB
        goals.append(f"{label(r)}: TFLite float32 {f32['speedup_vs_savedmodel']:.1f}x faster "
                     f"per patch than the SavedModel signature ({len(f32['round_speedups'])} rounds: {spread}; "
                     f"goal {GOAL_SPEEDUP:.0f}x: {verdict}); int8 {int8['speedup_vs_savedmodel']:.1f}x at "
                     f"{int8['psnr_db']:.1f} dB ({'' if r.get('run') else 'untrained weights; '}"
                     f"{GOAL_INT8_SPEEDUP:.0f}x with {GOAL_INT8_PSNR_DB:.0f} dB: {'met' if int8_met else 'not met'}).")
    calls = sorted({len(row["round_ms"]) * BLOCK for r in latency for row in r["rows"]})
    notes = [f"Per-patch latency at batch 1: median of {'/'.join(map(str, calls))} calls, the paths taking turns in blocks of "
             f"{BLOCK} (after {BLOCK_WARMUP} untimed calls each); "
             f"accuracy vs Keras eager over {ACCURACY_PATCHES} held-out patches made as a client makes them "
             "(GAWWN: as many again with the conditions of its data; PSNR with peak-to-peak 2); "
             "size = SavedModel folder or .tflite file. Presets without a run folder have untrained weights: "
             "their PSNR says little.",
             *(["Client: export.client render() into memory, after a warm-up render; the stand-in servers run in "
                "the client's process and share its 2 cores."] if client else []),
             f"{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}; 1-minute load average at "
             f"start / end {machine['load_average_start']:.2f} / {machine['load_average_end']:.2f}.", *goals]
    return "\n\n".join([latency_table, *([client_table] if client else []), "\n".join(notes)])


def label(result) -> str:
    """``model preset``, and the run folder for a --run result (its weights, not the preset's init)."""
    run = f" ({Path(result['run']).name})" if result.get("run") else ""
    same = f" (same generator: {', '.join(result['same_generator'])})" if result.get("same_generator") else ""
    return f"{result['model_type']} {result['preset']}{run}{same}"


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.export", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, fewer runs (smoke test)")
    parser.add_argument("--run", action="append", default=[], metavar="DIR",
                        help="time this trained or converted run (its own weights); repeatable. With --run or "
                             "--model only those are timed, per patch (no client rows)")
    parser.add_argument("--model", action="append", default=[], metavar="MODEL:PRESET", type=parse_preset,
                        help="time this preset of configs/ with untrained weights, e.g. cocogan:celeba64, with "
                             "config overrides after a second colon: gawwn:cub_bbox:text.encoder_run= ; repeatable")
    parser.add_argument("--every-preset", action="store_true",
                        help="time one preset per distinct generator of configs/ (untrained weights), per patch")
    parser.add_argument("--calls", type=int, metavar="N",
                        help=f"timed calls per path (default {LATENCY_RUNS}, --quick 15)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "export.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload and report it
    args = parser.parse_args(argv)
    if args.worker:
        return run_child(json.loads(args.worker))
    if args.calls is not None and args.calls < 1:
        parser.error(f"--calls must be at least 1, got {args.calls}")
    plan = workloads(args.quick, args.run, args.model + (every_preset() if args.every_preset else []), args.calls)
    machine, failures = machine_info(), []
    results = run_plan("bench.export", plan, lambda s: f"{s['kind']} {s['model_type']} {s['preset']}"
                       + (f" ({s['run']})" if s.get("run") else ""), machine, timeout=1800, failures=failures)
    print(summarize(results["latency"], results["client"], machine))
    for failure in failures:  # one workload failing (memory, a missing text-encoder run) does not lose the others
        print(f"FAILED {failure['model_type']} {failure['preset']}: {failure['error'].strip().splitlines()[-1]}")
    path = write_json(args.out, {"benchmark": "export", "quick": args.quick, "machine": machine, **results,
                                 "failures": failures})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
