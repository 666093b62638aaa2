"""CIPSskip at the paper's 256x256 configuration on this CPU: seconds per image, peak memory, GFLOP/s vs tf.matmul.

    python -m bench.cips            # about 5 minutes on 2 idle cores
    python -m bench.cips --quick    # fewer runs

One 256x256 image at batch 1 (``G(z, coords)``: mapping + synthesis, no noise, random
weights — the weights do not change the cost), through Keras eager, ``tf.function`` and
``tf.function(jit_compile=True)`` (XLA), each in its own process (see :mod:`bench.common`):
median of the timed runs after one warm-up call, and the generator's peak RSS. The compute
is the spec's 445.8 GFLOP per image (models.md §2.10; the FLOPs counted from the traced graph
are reported next to it). The reference is a plain ``tf.matmul`` chain (``tf.function``,
oneDNN) with exactly the generator's matmul shapes (65536 x 1024 x 512, 13 x 65536 x 512 x
512, ...), timed alternately with the generator in the same process so that both see the
same machine load: ``fraction of matmul`` = generator GFLOP/s / matmul GFLOP/s.

Goals (models.md §6, issue 3): at least 1.5x faster than the official PyTorch median
(11.65 s, runs 11.4-15.0 s on this kind of machine) and at least 60 % of the matmul
throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import statistics

from tfcoord import cli
from bench.common import (REPO, graph_macs, machine_info, markdown_table, memory, report, run_plan, seconds,
                          start_child, write_json)

SIZE = 256
SPEC_GFLOP = 445.84  # per 256x256 image, models.md §2.10
OFFICIAL_SECONDS = (11.65, 15.01, 11.42)  # models.md §6, official CIPSskip 256 forward on this machine
# This bench never runs PyTorch (not installed here): the official figure is a reference from another day.
OFFICIAL_SOURCE = "recorded elsewhere (models.md §6), not this run"
MODES = ("eager", "function", "xla")
RUNS = {"eager": 3, "function": 7, "xla": 7}
MODULES = ("tfcoord.models.cips.generator",)


def build_generator():
    import keras

    from tfcoord.models.cips.generator import CipsGenerator

    keras.utils.set_random_seed(0)
    generator = CipsGenerator(size=SIZE)  # paper: hidden 512, style 512, 8 mapping layers, cm 2
    generator.build()
    return generator


def matmul_shapes(generator) -> list[tuple[int, int, int]]:
    """(M, K, N) of every dense matmul of one SIZE x SIZE image (M = pixels)."""
    pixels = SIZE * SIZE
    shapes = [(pixels, generator.input_channels, generator.channels[0])]
    in_channels = generator.channels[0]
    for out_channels in generator.channels:
        shapes += [(pixels, in_channels, out_channels), (pixels, out_channels, out_channels), (pixels, out_channels, 3)]
        in_channels = out_channels
    return shapes


def inputs(generator):
    import numpy as np
    import tensorflow as tf

    from tfcoord.models.cips.coordinates import tile_coords

    z = tf.constant(np.random.default_rng(0).standard_normal((1, generator.style_dim)).astype("float32"))
    coords = tf.constant(tile_coords(0, 0, SIZE, SIZE, SIZE, SIZE)[None])
    return z, coords


def matmul_chain(generator):
    """A tf.function running plain tf.matmul on exactly the generator's matmul shapes; returns (fn, FLOP)."""
    import tensorflow as tf

    shapes = matmul_shapes(generator)
    rng = tf.random.Generator.from_seed(0)
    weights = [rng.normal((k, n)) for _, k, n in shapes]
    activations = {k: rng.normal((m, k)) for m, k, _ in shapes}

    @tf.function
    def chain():
        total = 0.0
        for (m, k, n), weight in zip(shapes, weights):
            total += tf.reduce_sum(tf.matmul(activations[k], weight)[:1, :1])  # keep every matmul live
        return total

    return chain, sum(2 * m * k * n for m, k, n in shapes)


def generator_workload(mode, runs):
    """The generator in ``mode``; then the matmul reference, timed alternately with it in this process
    (so both see the same machine load), after the generator's memory was recorded."""
    baseline = start_child(*MODULES)
    import tensorflow as tf

    generator = build_generator()
    z, coords = inputs(generator)

    def forward(z, coords):
        return generator(z, coords, training=False)

    fn = forward if mode == "eager" else tf.function(forward, jit_compile=mode == "xla")
    first = seconds(lambda: fn(z, coords).numpy())
    times = [seconds(lambda: fn(z, coords).numpy())]
    generator_memory = memory(baseline)  # before the matmul reference allocates its inputs
    counted = graph_macs(tf.function(forward).get_concrete_function(
        tf.TensorSpec(z.shape), tf.TensorSpec(coords.shape))) * 2 / 1e9
    chain, flops = matmul_chain(generator)
    chain()
    matmul_times = []
    for _ in range(runs):
        matmul_times.append(seconds(lambda: chain().numpy()))
        times.append(seconds(lambda: fn(z, coords).numpy()))
    median, matmul_median = statistics.median(times), statistics.median(matmul_times)
    return {"first_call_s": first, "run_times_s": times, "s_per_image": median, "gflop_counted": counted,
            "gflop_per_s": SPEC_GFLOP / median, "matmul_run_times_s": matmul_times, "matmul_s": matmul_median,
            "matmul_gflop_per_s": flops / 1e9 / matmul_median,
            "fraction": (SPEC_GFLOP / median) / (flops / 1e9 / matmul_median), **generator_memory}


def workloads(quick):
    runs = {mode: max(2, n // 2) if quick else n for mode, n in RUNS.items()}
    return [{"kind": "generator", "mode": mode, "runs": runs[mode]} for mode in MODES]


def run_child(spec):
    report(generator_workload(spec["mode"], spec["runs"]))


def summarize(results, machine):
    official = statistics.median(OFFICIAL_SECONDS)
    rows = [dict(r, what="CIPSskip 256 G(z, coords)", speedup=official / r["s_per_image"]) for r in results]
    table = markdown_table(rows, [
        ("workload", "what", "s"), ("mode", "mode", "s"), ("runs", "runs", "d"),
        ("first call s", "first_call_s", ".2f"), ("s/image (median)", "s_per_image", ".3f"),
        ("GFLOP/s", "gflop_per_s", ".1f"), ("x official (recorded elsewhere)", "speedup", ".2f"),
        ("matmul s", "matmul_s", ".3f"), ("matmul GFLOP/s", "matmul_gflop_per_s", ".1f"),
        ("fraction of matmul", "fraction", ".0%"), ("peak RSS MB", "peak_rss_mb", ".0f"),
        ("RSS increase MB", "rss_increase_mb", ".0f")])
    best = min((r for r in rows if r["mode"] != "eager"), key=lambda r: r["s_per_image"])
    notes = [f"Compute: {SPEC_GFLOP} GFLOP per 256x256 image (models.md §2.10); counted from the traced graph: "
             f"{rows[0]['gflop_counted']:.1f} GFLOP. GFLOP/s = that / median seconds.",
             "matmul: plain tf.matmul (tf.function, oneDNN) on exactly the generator's matmul shapes, timed "
             "alternately with the generator in the same process (same load); fraction = generator GFLOP/s / "
             "matmul GFLOP/s. Memory: the generator's peak, recorded before the matmul inputs exist.",
             f"Official PyTorch, {OFFICIAL_SOURCE} (idle machine): {', '.join(map(str, OFFICIAL_SECONDS))} s, median "
             f"{official:.2f} s; goal <= {official / 1.5:.2f} s (1.5x) and >= 60 % of the matmul throughput.",
             f"Best: {best['mode']} {best['s_per_image']:.2f} s/image = {best['speedup']:.2f}x the official median, "
             f"{best['fraction']:.0%} of the matmul throughput.",
             f"{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}, Keras {machine['keras']}, "
             f"{machine['intra_op_threads']} intra-op threads; 1-minute load average at start / end "
             f"{machine['load_average_start']:.2f} / {machine['load_average_end']:.2f} (other processes on these "
             "cores slow every number; the fraction is measured under the same load on both sides)."]
    return "\n\n".join([table, "\n".join(notes)])


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.cips", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "cips.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload and report it
    args = parser.parse_args(argv)
    if args.worker:
        return run_child(json.loads(args.worker))
    machine, plan = machine_info(), workloads(args.quick)
    results = run_plan("bench.cips", plan, lambda s: f"{s['kind']} {s['mode']}", machine, timeout=1800)
    print(summarize(results, machine))
    path = write_json(args.out, {"benchmark": "cips", "quick": args.quick, "machine": machine, "results": results,
                                 "official_reference": {"s_per_image": OFFICIAL_SECONDS, "source": OFFICIAL_SOURCE}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
