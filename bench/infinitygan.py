"""InfinityGAN on this CPU: seconds per 101 px patch, and wall time / peak memory of large canvases.

    python -m bench.infinitygan            # ~1 hour on 2 idle cores (4096 x 4096 = 1849 patches)
    python -m bench.infinitygan --quick    # ~10 minutes: patches, 1024 x 1024, and 4096 x 4096 with a narrow G

Every workload runs in its own process (:mod:`bench.common`) with the paper's 101/197 generator
(36.4 M parameters, random weights: the weights do not change the cost):

* ``patch``: the compiled patch function of the canvas engine (``InfinityGanSampler.functions``: G_S + G_T
  with explicit noise, no XLA), batch 1 and 4, median seconds per patch after a warm-up call;
* ``canvas``: the canvas engine as ``python -m tfcoord.generate --width W --height H`` runs it
  (:func:`tfcoord.generation.canvas.render_canvas` with InfinityGAN's renderer: 384 px tiles in
  bands, 4 patches per network call, a PNG streamed to disk) for 1024 x 1024 (121 patches),
  1024 x 2048 (242) and 4096 x 4096 (1849); wall time (PNG writing included), peak RSS and its
  increase over the RSS after the imports.
  ``--quick`` renders 4096 x 4096 with every G width divided by 8 (marked ``narrow``): the memory of
  the engine (output, latent tiles, one batch of patches) is what that row measures.

Reference (models.md §6, the official PyTorch generator on this machine): 1.17-2.57 s per patch
(median of the runs 2.43 s), 22.7 GB peak to generate 773 x 773 in one pass. Goals: at least 1.5x
faster per patch than the official median, and a 4096 x 4096 canvas under 2 GB peak.
"""

from __future__ import annotations

import argparse
import json
import sys
import statistics
import time

from tfcoord import cli
from bench.common import (REPO, machine_info, markdown_table, memory, report, run_plan, seconds, start_child,
                          write_json)

MODULES = ("tfcoord.models.infinitygan.model", "tfcoord.models.infinitygan.infinite")
OFFICIAL_PATCH_S = (2.43, 2.57, 1.17)  # models.md §6
OFFICIAL_MEDIAN_S = statistics.median(OFFICIAL_PATCH_S)
# This bench never runs PyTorch (not installed here): the official figure is a reference from another day.
OFFICIAL_SOURCE = "recorded elsewhere (models.md §6), not this run"
GOAL_SPEEDUP, GOAL_PEAK_GB = 1.5, 2.0
PATCH_GFLOP = 97.36  # models.md §4.11
CANVASES = ((1024, 1024), (1024, 2048), (4096, 4096))


def load_model(narrow=False):
    from tfcoord.config import load_config
    from tfcoord.models import section_classes
    from tfcoord.models.infinitygan.model import InfinityGan

    overrides = ["model.ts_channels=[64,64,64,64]", "model.local_latent_dim=32"] if narrow else []
    model = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="flickr_landscape",
                                    overrides=overrides))
    model.build_networks()
    return model


def patch_workload(batch, runs):
    baseline = start_child(*MODULES)
    import numpy as np

    from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan

    model = load_model()
    g = model.geometry
    latents = CanvasLatents(model, CanvasPlan(g, g.canvas_pixels(batch), g.patch_size), seed=0)
    inputs = [latents.patch(0, c) for c in range(batch)]
    z = np.repeat(model.global_latents(0, 1), batch, 0)
    wplus = np.repeat(model.sampler.style_wplus(z[0])[None], batch, 0)
    args = (z, wplus, np.stack([i["local_latent"] for i in inputs]), np.stack([i["coords"] for i in inputs]),
            [np.stack([i["noises"][k] for i in inputs]) for k in range(g.num_convs)])
    render = model.sampler.functions()["render"]
    first = seconds(lambda: np.asarray(render(*args)))
    times = [seconds(lambda: np.asarray(render(*args))) for _ in range(runs)]
    per_patch = statistics.median(times) / batch
    return {"first_call_s": first, "run_times_s": times, "s_per_patch": per_patch,
            "gflop_per_s": PATCH_GFLOP / per_patch, "speedup_vs_official": OFFICIAL_MEDIAN_S / per_patch,
            **memory(baseline)}


def canvas_workload(height, width, narrow):
    baseline = start_child(*MODULES, "tfcoord.generation.canvas")
    import tempfile
    from pathlib import Path

    from tfcoord.generation.canvas import render_canvas
    from tfcoord.models.infinitygan.infinite import generate_canvas, patch_count

    model = load_model(narrow)
    generate_canvas(model, 101, 101, seed=0)  # trace once outside the timing
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "canvas.png"
        start = time.perf_counter()
        render_canvas(model.canvas_renderer(width, height, seed=1), out, width, height, batch=1, progress=False)
        wall = time.perf_counter() - start
        png_mb = out.stat().st_size / 2**20
    patches = patch_count(model, height, width)
    return {"patches": patches, "wall_s": wall, "s_per_patch": wall / patches, "png_mb": png_mb, **memory(baseline)}


def workloads(quick):
    patch = [{"kind": "patch", "batch": batch, "runs": 3 if quick else 7} for batch in (1, 4)]
    canvas = [{"kind": "canvas", "height": h, "width": w, "narrow": False} for h, w in CANVASES
              if not quick or (h, w) == (1024, 1024)]
    if quick:
        canvas.append({"kind": "canvas", "height": 4096, "width": 4096, "narrow": True})
    return {"patch": patch, "canvas": canvas}


def run_child(spec):
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    report((patch_workload if spec["kind"] == "patch" else canvas_workload)(**arguments))


def summarize(patch, canvas, machine):
    patch_table = markdown_table(patch, [
        ("patch 101 px", "batch", "d"), ("first call s", "first_call_s", ".1f"), ("s/patch", "s_per_patch", ".3f"),
        ("GFLOP/s", "gflop_per_s", ".1f"), ("x official median (recorded elsewhere)", "speedup_vs_official", ".2f"),
        ("peak RSS MB", "peak_rss_mb", ".0f")])
    for row in canvas:
        row["size"] = f"{row['height']}x{row['width']}" + (" narrow" if row["narrow"] else "")
    canvas_table = markdown_table(canvas, [
        ("canvas", "size", "s"), ("patches", "patches", "d"), ("wall s", "wall_s", ".0f"),
        ("s/patch", "s_per_patch", ".3f"), ("PNG MB", "png_mb", ".0f"), ("peak RSS MB", "peak_rss_mb", ".0f"),
        ("RSS increase MB", "rss_increase_mb", ".0f")])
    best = min(row["s_per_patch"] for row in patch)
    big = [row for row in canvas if row["height"] == 4096]
    notes = [f"Paper generator (101/197 model), random weights, float32, {machine['intra_op_threads']} intra-op threads; "
             "median of the timed runs after a warm-up call.",
             f"Official generator, {OFFICIAL_SOURCE}: {', '.join(map(str, OFFICIAL_PATCH_S))} s per patch "
             f"(median {OFFICIAL_MEDIAN_S} s); goal >= {GOAL_SPEEDUP}x faster: <= {OFFICIAL_MEDIAN_S / GOAL_SPEEDUP:.2f} s. "
             f"Measured best {best:.3f} s ({OFFICIAL_MEDIAN_S / best:.2f}x).",
             f"Goal: a 4096 x 4096 canvas under {GOAL_PEAK_GB} GB peak; measured "
             + (", ".join(f"{r['peak_rss_mb'] / 1024:.2f} GB ({r['size']})" for r in big) or "not run") + ".",
             f"{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}; 1-minute load average at "
             f"start / end {machine['load_average_start']:.2f} / {machine['load_average_end']:.2f} (other processes "
             "on these cores slow every number)."]
    return "\n\n".join([patch_table, canvas_table, "\n".join(notes)])


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.infinitygan", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs; 4096 x 4096 with a narrow generator")
    parser.add_argument("--canvases", help="comma-separated HxW canvases to render (default "
                        + ",".join(f"{h}x{w}" for h, w in CANVASES) + "); 'none' for the patch rows only")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "infinitygan.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload and report it
    args = parser.parse_args(argv)
    if args.worker:
        return run_child(json.loads(args.worker))
    machine, plan = machine_info(), workloads(args.quick)
    if args.canvases:
        sizes = [] if args.canvases == "none" else [tuple(int(v) for v in item.split("x"))
                                                    for item in args.canvases.split(",")]
        plan["canvas"] = [{"kind": "canvas", "height": h, "width": w, "narrow": False} for h, w in sizes]
    results = run_plan("bench.infinitygan", plan,
                       lambda s: f"{s['kind']} { {k: v for k, v in s.items() if k not in ('kind', 'runs')} }",
                       machine, timeout=6 * 3600)
    print(summarize(results["patch"], results["canvas"], machine))
    path = write_json(args.out, {"benchmark": "infinitygan", "quick": args.quick, "machine": machine, **results,
                                 "official_reference": {"s_per_patch": OFFICIAL_PATCH_S, "source": OFFICIAL_SOURCE}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
