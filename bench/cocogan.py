"""COCO-GAN on this CPU: training steps/s, images/s, full-image generation time, peak memory.

    python -m bench.cocogan            # about 4 minutes on 2 cores
    python -m bench.cocogan --quick    # smoke run, about 2 minutes

Training runs the real path (``Trainer._prepare``, ``_dataset``, ``_step_function``)
on synthetic landscapes; CelebA 64 is the paper's network at batch 16 instead of 64
to keep the run short. Generation times ``CocoGanSampler.generate_full`` on untrained
networks (the weights do not change the cost) after a warm-up call, as the median of
several runs. Each workload runs in its own process (see :mod:`bench.common`).
"""

from __future__ import annotations

import argparse
import json
import sys
import statistics
import tempfile

from tfcoord import cli
from bench.common import (REPO, graph_macs, machine_info, markdown_table, memory, report, run_plan, seconds,
                          start_child, write_json)

TRAIN_PRESETS = {"tiny": 16, "celeba64": 16}  # preset -> global batch (paper: celeba64 at 64)
TRAIN_STEPS = {"tiny": 100, "celeba64": 20}  # timed steps (--quick: a quarter, at least 2)
WARMUP_STEPS = 2  # after the first (tracing) step
GENERATE_PRESETS = ("tiny", "celeba64", "celeba128_n2m2")
GENERATE_BATCHES = (1, 16)
GENERATE_RUNS = 9  # --quick: 3
SPEC_GMAC = {"celeba64": 5.87, "celeba128_n2m2": 7.83}  # per full image, models.md §1.12
MODULES = ("tfcoord.models.cocogan.model", "tfcoord.training.loop")  # imported before the RSS baseline
GOAL = ("celeba128_n2m2", 1.0)  # models.md §6: a CelebA 128 full image "well under 1 s"


def load_model(preset, overrides=()):
    from tfcoord.config import load_config
    from tfcoord.models import section_classes
    from tfcoord.models.cocogan.model import CocoGan

    return CocoGan(load_config("cocogan", section_classes("cocogan"), preset=preset, overrides=list(overrides)))


def train_workload(preset, batch, steps):
    baseline = start_child(*MODULES)
    from tfcoord.training.loop import Trainer

    model = load_model(preset, ["data.source=synthetic-landscapes", f"train.batch_size={batch}",
                                "log.progress_bar=false"])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, run_dir)
        trainer._prepare()
        batches, step_function = trainer._dataset(0), trainer._step_function()

        def run(first, count):
            for step in range(first, first + count):
                [float(loss) for loss in step_function(next(batches), step).values()]  # as Trainer.fit does

        first_step = seconds(lambda: run(1, 1))
        run(2, WARMUP_STEPS)
        elapsed = seconds(lambda: run(2 + WARMUP_STEPS, steps))
    return {"first_step_s": first_step, "steps_per_s": steps / elapsed,
            "images_per_s": batch * steps / elapsed, **memory(baseline)}


def generate_workload(preset, batch, runs):
    baseline = start_child(*MODULES)
    import tensorflow as tf

    model = load_model(preset)
    model.build_networks()
    z = model.latents(0, batch)
    first_call = seconds(lambda: model.sampler.generate_full(z))
    times = [seconds(lambda: model.sampler.generate_full(z)) for _ in range(runs)]
    result = {"first_call_s": first_call, "run_times_s": times, "s_per_image": statistics.median(times) / batch,
              **memory(baseline)}
    patches = model.geometry.micro_rows * model.geometry.micro_cols
    shapes = [tf.TensorSpec([patches, model.config.model.z_dim]), tf.TensorSpec([patches, model.geometry.coord_dim])]
    counted = graph_macs(tf.function(model.sampler.micro_patches).get_concrete_function(*shapes)) / 1e9
    gmac = SPEC_GMAC.get(preset, counted)
    return {**result, "patches_per_image": patches, "gmac_counted": counted, "gmac_per_image": gmac,
            "images_per_s": 1 / result["s_per_image"], "gflop_per_s": 2 * gmac / result["s_per_image"]}


def workloads(quick):
    training = [{"kind": "train", "preset": preset, "batch": batch,
                 "steps": max(2, TRAIN_STEPS[preset] // 4) if quick else TRAIN_STEPS[preset]}
                for preset, batch in TRAIN_PRESETS.items()]
    generation = [{"kind": "generate", "preset": preset, "batch": batch, "runs": 3 if quick else GENERATE_RUNS}
                  for preset in GENERATE_PRESETS for batch in GENERATE_BATCHES]
    return {"training": training, "generation": generation}


def run_child(spec):
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    report((train_workload if spec["kind"] == "train" else generate_workload)(**arguments))


def summarize(training, generation, machine):
    memory_columns = [("peak RSS MB", "peak_rss_mb", ".0f"), ("RSS increase MB", "rss_increase_mb", ".0f")]
    train_table = markdown_table(training, [
        ("training", "preset", "s"), ("batch", "batch", "d"), ("timed steps", "steps", "d"),
        ("first step s", "first_step_s", ".1f"), ("steps/s", "steps_per_s", ".3f"),
        ("images/s", "images_per_s", ".1f"), *memory_columns])
    generate_table = markdown_table(generation, [
        ("generation", "preset", "s"), ("batch", "batch", "d"), ("first call s", "first_call_s", ".2f"),
        ("s/image", "s_per_image", ".4f"), ("images/s", "images_per_s", ".1f"),
        ("GMAC/image", "gmac_per_image", ".3g"), ("GFLOP/s", "gflop_per_s", ".1f"), *memory_columns])
    latency = next(r["s_per_image"] for r in generation if r["preset"] == GOAL[0] and r["batch"] == 1)
    notes = [f"Training on synthetic landscapes, batch {TRAIN_PRESETS['celeba64']} for celeba64 "
             "(the paper trains at 64); the first step includes tracing.",
             "Generation: CocoGanSampler.generate_full after one warm-up call, median of the timed runs; "
             "GMAC per image from models.md §1.12 (tiny: counted from the traced generator).",
             f"{machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}, Keras {machine['keras']}; "
             f"1-minute load average at start / end {machine['load_average_start']:.2f} / "
             f"{machine['load_average_end']:.2f} (other processes on these cores slow every number).",
             f"Goal (models.md §6): a {GOAL[0]} full image well under {GOAL[1]:.0f} s; "
             f"measured {latency:.3f} s at batch 1."]
    return "\n\n".join([train_table, generate_table, "\n".join(notes)])


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.cocogan", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and runs (smoke test)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "cocogan.json"), help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload and report it
    args = parser.parse_args(argv)
    if args.worker:
        return run_child(json.loads(args.worker))
    machine, plan = machine_info(), workloads(args.quick)
    results = run_plan("bench.cocogan", plan, lambda s: f"{s['kind']} {s['preset']} batch {s['batch']}", machine)
    print(summarize(results["training"], results["generation"], machine))
    path = write_json(args.out, {"benchmark": "cocogan", "quick": args.quick, "machine": machine, **results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
