"""Evaluation metrics on this CPU: Inception-v3 throughput, streaming statistics memory, metric costs.

    python -m bench.metrics            # about 5 minutes on 2 cores
    python -m bench.metrics --quick    # smoke run

Workloads (one process each, see :mod:`bench.common`):

* ``inception`` -- Keras Inception-v3 pool features (random weights: the cost does not
  depend on them) of 64 x 64 images resized to 299 x 299, images/s, and the implied time
  for the papers' 50 000 generated images;
* ``streaming`` -- 50 000 random 2048-d feature vectors through ``RunningStatistics``
  in batches of 500: time and peak memory (bounded: two 2048^2 float64 matrices) versus
  keeping every vector as KID/PR must;
* ``frechet`` -- one FID from two 2048-d mean/covariance pairs;
* ``kid`` -- 100 subsets of 1 000 from 10 000 vectors per set;
* ``pr`` -- precision/recall, k = 3, N vectors per set (O(N^2)).
"""

from __future__ import annotations

import argparse
import json
import sys

from tfcoord import cli
from bench.common import REPO, machine_info, markdown_table, memory, report, run_plan, seconds, start_child, write_json

DIM = 2048
PAPER_IMAGES = 50_000


def features(seed, count, dim=DIM):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(count, dim)).astype(np.float32), 0.0)


def inception_workload(images, batch):
    baseline = start_child("tfcoord.metrics.inception")
    import keras
    import numpy as np
    import tensorflow as tf

    from tfcoord.metrics.inception import INPUT_SIZE, quantize

    network = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                             input_shape=(INPUT_SIZE, INPUT_SIZE, 3))

    @tf.function(reduce_retracing=True)
    def extract(x):  # the same function InceptionV3Features traces
        return network(tf.image.resize(x, (INPUT_SIZE, INPUT_SIZE), method="bilinear"), training=False)

    data = quantize(np.random.default_rng(0).uniform(-1, 1, (batch, 64, 64, 3)))
    first = seconds(lambda: extract(data).numpy())
    elapsed = seconds(lambda: [extract(data).numpy() for _ in range(images // batch)])
    rate = images / elapsed
    return {"first_call_s": first, "images_per_s": rate, "paper_minutes": PAPER_IMAGES / rate / 60,
            **memory(baseline)}


def streaming_workload(count, batch, keep):
    baseline = start_child("tfcoord.metrics.fid")
    from tfcoord.metrics.fid import RunningStatistics

    stats = RunningStatistics(keep_features=keep)

    def run():
        for start in range(0, count, batch):
            stats.update(features(start, min(batch, count - start)))
        stats.result()

    return {"seconds": seconds(run), **memory(baseline)}


def frechet_workload():
    baseline = start_child("tfcoord.metrics.fid")
    from tfcoord.metrics.fid import feature_set, frechet_distance

    a, b = feature_set(features(1, 4096)), feature_set(features(2, 4096))
    return {"seconds": seconds(lambda: frechet_distance(a.mean, a.cov, b.mean, b.cov)), **memory(baseline)}


def kid_workload(count, subsets, subset_size):
    baseline = start_child("tfcoord.metrics.kid")
    from tfcoord.metrics.kid import kernel_inception_distance

    real, fake = features(1, count), features(2, count)
    return {"seconds": seconds(lambda: kernel_inception_distance(real, fake, subsets, subset_size)),
            **memory(baseline)}


def pr_workload(count):
    baseline = start_child("tfcoord.metrics.precision_recall")
    from tfcoord.metrics.precision_recall import precision_recall

    real, fake = features(1, count), features(2, count)
    return {"seconds": seconds(lambda: precision_recall(real, fake, 3)), **memory(baseline)}


WORKERS = {"inception": inception_workload, "streaming": streaming_workload, "frechet": frechet_workload,
           "kid": kid_workload, "pr": pr_workload}


def workloads(quick):
    return [
        {"kind": "inception", "images": 100 if quick else 400, "batch": 50},
        {"kind": "streaming", "count": 5_000 if quick else PAPER_IMAGES, "batch": 500, "keep": False},
        {"kind": "streaming", "count": 5_000 if quick else PAPER_IMAGES, "batch": 500, "keep": True},
        {"kind": "frechet"},
        {"kind": "kid", "count": 2_000 if quick else 10_000, "subsets": 10 if quick else 100,
         "subset_size": 1000},
        {"kind": "pr", "count": 1_000 if quick else 5_000},
    ]


def describe(row):
    kind = row["kind"]
    if kind == "inception":
        return f"Inception-v3 features, {row['images']} images, batch {row['batch']}"
    if kind == "streaming":
        return f"statistics of {row['count']} x {DIM} features" + (", features kept (KID/PR)" if row["keep"]
                                                                   else ", streaming (FID)")
    if kind == "frechet":
        return f"Frechet distance, {DIM}-d"
    if kind == "kid":
        return f"KID, {row['subsets']} subsets of {row['subset_size']} from {row['count']} per set"
    return f"precision/recall, k=3, {row['count']} per set"


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads (smoke test)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "metrics.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        return report(WORKERS[spec["kind"]](**{k: v for k, v in spec.items() if k != "kind"}))
    machine = machine_info()
    rows = run_plan("bench.metrics", workloads(args.quick), lambda s: s["kind"], machine)
    for row in rows:
        row["workload"] = describe(row)
        row.setdefault("seconds", None)
    print(markdown_table(rows, [("workload", "workload", "s"), ("seconds", "seconds", ".2f"),
                                ("images/s", "images_per_s", ".1f"), ("50k images, min", "paper_minutes", ".0f"),
                                ("peak RSS MB", "peak_rss_mb", ".0f"), ("RSS increase MB", "rss_increase_mb", ".0f")]))
    print(f"\n{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}; 1-minute load average at "
          f"start / end {machine['load_average_start']:.2f} / {machine['load_average_end']:.2f} "
          "(other processes on these cores slow every number).")
    path = write_json(args.out, {"benchmark": "metrics", "quick": args.quick, "machine": machine, "results": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
