"""Canvas engine: Mpx/s and peak memory for CIPS and InfinityGAN canvases of 1, 4, 16 and 64 Mpx.

    python -m bench.canvas                         # this machine's plan (below), about 70 minutes on 2 idle cores
    python -m bench.canvas --quick                 # smoke run: narrow models, 0.25 and 1 Mpx
    python -m bench.canvas --widths paper --mpx 1,4,16,64   # the full paper series (a GPU job: days on 2 CPU cores)
    python -m bench.canvas --widths paper --mpx 1 --xla --out bench/results/canvas_xla.json   # with XLA

Every workload renders one ``side x side`` canvas (1 Mpx = 1024 x 1024, 4 = 2048 x 2048,
16 = 4096 x 4096, 64 = 8192 x 8192) exactly as ``python -m tfcoord.generate --run RUN --width W
--height H`` does (:func:`tfcoord.generation.canvas.render_canvas` with the model's renderer, its
default tile, batch 4, a PNG streamed to disk), in its own process (:mod:`bench.common`), with
random weights (the weights do not change the cost). A small canvas is rendered first so that
tracing is not timed. Reported per workload:

* ``Mpx/s``: canvas pixels / wall time of the whole render (network, bands written as parts,
  PNG assembled and compressed); ``network Mpx/s``: the same over the time spent inside the
  renderer only;
* ``peak RSS``: the process's high-water mark; ``engine MB``: that peak minus the RSS after the
  warm-up render (the model and one batch of tiles are in memory by then), i.e. what the canvas
  size adds.

Configurations: ``paper`` is CIPSskip 256 (ffhq256 preset: 512 channels) and InfinityGAN 101/197
(flickr_landscape preset: 36.4 M parameters); ``narrow`` divides the widths by 8 (CIPS hidden
and style 64, stages x 1/8; InfinityGAN texture blocks 64 channels, latents 64 / 32) so that the
engine, not the network, dominates and 64 Mpx fits in minutes. On 2 CPU cores the paper
networks run at about 0.01 Mpx/s, so the default plan renders the paper configurations at 1 and
4 Mpx (CIPS) and 1 and 16 Mpx (InfinityGAN: 4096 x 4096, 1849 patches) and the narrow ones at every
size; ``--widths paper --mpx 1,4,16,64`` runs the full series.

Goals (issue 7): peak memory flat within 1.5x from 1 to 64 Mpx, and Mpx/s at 64 Mpx at least
90 % of Mpx/s at 1 Mpx. The official PyTorch InfinityGAN needs 22.7 GB for one 773 x 773 pass
on this kind of machine (models.md §6).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tfcoord import cli
from bench.common import REPO, machine_info, markdown_table, memory, report, rss_mb, run_plan, start_child, \
    write_json

MODULES = ("tfcoord.generation.canvas", "tfcoord.models.cips.model", "tfcoord.models.infinitygan.model")
MODELS = ("cips", "infinitygan")
PRESETS = {"cips": "ffhq256", "infinitygan": "flickr_landscape"}
NARROW = {"cips": ["model.hidden_size=64", "model.style_dim=64", "model.width_multiplier=0.125"],
          "infinitygan": ["model.ts_channels=[64,64,64,64]", "model.local_latent_dim=32",
                          "model.global_latent_dim=64"]}
GOAL_MEMORY_RATIO, GOAL_THROUGHPUT_RATIO = 1.5, 0.9
OFFICIAL_INFINITYGAN_773_GB = 22.7
BATCH = 4
# Paper configurations in the default plan: what 2 CPU cores render in about 45 minutes.
# InfinityGAN at 16 Mpx is the 4096 x 4096 canvas of issue 4's benchmark.
DEFAULT_PAPER_MPX = {"cips": (1, 4), "infinitygan": (1, 16)}


def side_of(mpx: float) -> int:
    """Side of a square canvas of ``mpx`` binary megapixels (1 -> 1024)."""
    return int(round(1024 * mpx ** 0.5))


def build_model(model_type: str, widths: str):
    import keras

    from tfcoord.config import load_config
    from tfcoord.models import model_class, section_classes

    overrides = NARROW[model_type] if widths == "narrow" else []
    config = load_config(model_type, section_classes(model_type), preset=PRESETS[model_type], overrides=overrides)
    keras.utils.set_random_seed(0)
    model = model_class(model_type)(config)
    model.build_networks()
    return model


class TimedRenderer:
    """The model's renderer, with the seconds spent inside ``render`` added up."""

    def __init__(self, renderer):
        self.renderer, self.seconds = renderer, 0.0

    def __getattr__(self, name):
        return getattr(self.renderer, name)

    def render(self, tiles):
        import numpy as np

        start = time.perf_counter()
        images = [np.asarray(image) for image in self.renderer.render(tiles)]
        self.seconds += time.perf_counter() - start
        return images


def canvas_workload(model_type, widths, mpx, xla=False):
    baseline = start_child(*MODULES)
    import tempfile
    from pathlib import Path

    from tfcoord.generation.canvas import render_canvas

    model = build_model(model_type, widths)
    side = side_of(mpx)
    with tempfile.TemporaryDirectory() as folder:
        # Warm-up: a canvas of one batch of full tiles traces the network for the tile shape.
        warm = TimedRenderer(model.canvas_renderer(256, 256, seed=0, xla=xla))
        render_canvas(warm, Path(folder) / "warm.png", 256, 256, batch=BATCH, progress=False)
        after_warm_up = rss_mb()
        renderer = TimedRenderer(model.canvas_renderer(side, side, seed=1, xla=xla))
        start = time.perf_counter()
        render_canvas(renderer, Path(folder) / "canvas.png", side, side, batch=BATCH, progress=False)
        wall = time.perf_counter() - start
        png_mb = (Path(folder) / "canvas.png").stat().st_size / 2**20
    pixels = side * side / 2**20
    used = memory(baseline)
    return {"side": side, "wall_s": wall, "network_s": renderer.seconds,
            "mpx_per_s": pixels / wall, "network_mpx_per_s": pixels / renderer.seconds, "png_mb": png_mb,
            "rss_after_warm_up_mb": after_warm_up, "engine_mb": used["peak_rss_mb"] - after_warm_up, **used}


def plan(args) -> list[dict]:
    sizes = [float(m) for m in args.mpx.split(",")] if args.mpx else None
    if args.quick:
        return [{"model_type": m, "widths": "narrow", "mpx": s} for m in args.models for s in (sizes or (0.25, 1))]
    if args.widths:
        return [{"model_type": m, "widths": args.widths, "mpx": s} for m in args.models for s in (sizes or (1, 4, 16, 64))]
    paper = [{"model_type": m, "widths": "paper", "mpx": s} for m in args.models for s in DEFAULT_PAPER_MPX[m]]
    return paper + [{"model_type": m, "widths": "narrow", "mpx": s} for m in args.models
                    for s in (sizes or (1, 4, 16, 64))]


def goals(rows) -> list[dict]:
    """Memory and throughput of the largest canvas against the smallest, per (model, widths) series."""
    out = []
    for key in sorted({(r["model_type"], r["widths"]) for r in rows}):
        series = sorted((r for r in rows if (r["model_type"], r["widths"]) == key), key=lambda r: r["mpx"])
        if len(series) < 2:
            continue
        small, large = series[0], series[-1]
        memory_ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        throughput_ratio = large["mpx_per_s"] / small["mpx_per_s"]
        out.append({"model_type": key[0], "widths": key[1], "from_mpx": small["mpx"], "to_mpx": large["mpx"],
                    "memory_ratio": memory_ratio, "memory_goal_met": memory_ratio <= GOAL_MEMORY_RATIO,
                    "throughput_ratio": throughput_ratio,
                    "throughput_goal_met": throughput_ratio >= GOAL_THROUGHPUT_RATIO})
    return out


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.canvas", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="narrow models, 0.25 and 1 Mpx")
    parser.add_argument("--widths", choices=("paper", "narrow"), help="run only this configuration at every size")
    parser.add_argument("--mpx", help="comma-separated canvas sizes in Mpx (default 1,4,16,64)")
    parser.add_argument("--xla", action="store_true", help="compile the tile networks with XLA (generate --xla)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: cips,infinitygan")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "canvas.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload and report it
    args = parser.parse_args(argv)
    if args.worker:
        report(canvas_workload(**json.loads(args.worker)))
        return 0
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    machine = machine_info()
    failed = []  # one failed workload (e.g. out of memory) must not lose the others
    specs = [{**spec, "xla": args.xla} for spec in plan(args)]
    rows = run_plan("bench.canvas", specs,
                    lambda s: f"{s['model_type']} {s['widths']} {s['mpx']:g} Mpx{' XLA' if s['xla'] else ''}",
                    machine, timeout=6 * 3600, failures=failed)
    for row in rows:
        row["canvas"] = f"{row['side']}x{row['side']}"
    table = markdown_table(rows, [
        ("model", "model_type", "s"), ("widths", "widths", "s"), ("XLA", "xla", ""), ("canvas", "canvas", "s"),
        ("Mpx", "mpx", "g"), ("wall s", "wall_s", ".1f"), ("Mpx/s", "mpx_per_s", ".4f"), ("network Mpx/s", "network_mpx_per_s", ".4f"),
        ("PNG MB", "png_mb", ".1f"), ("peak RSS MB", "peak_rss_mb", ".0f"), ("engine MB", "engine_mb", ".0f")])
    summary = goals(rows)
    goal_table = markdown_table(summary, [
        ("model", "model_type", "s"), ("widths", "widths", "s"), ("from Mpx", "from_mpx", "g"), ("to Mpx", "to_mpx", "g"),
        ("peak memory ratio", "memory_ratio", ".2f"), (f"<= {GOAL_MEMORY_RATIO}", "memory_goal_met", ""),
        ("Mpx/s ratio", "throughput_ratio", ".2f"), (f">= {GOAL_THROUGHPUT_RATIO}", "throughput_goal_met", "")])
    print(table + "\n\n" + goal_table)
    print(f"\n{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}; 1-minute load average at start / "
          f"end {machine['load_average_start']:.2f} / {machine['load_average_end']:.2f}. Official InfinityGAN: "
          f"{OFFICIAL_INFINITYGAN_773_GB} GB peak for one 773 x 773 pass (models.md §6).")
    path = write_json(args.out, {"benchmark": "canvas", "machine": machine, "results": rows, "goals": summary,
                                  "failed": failed})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
