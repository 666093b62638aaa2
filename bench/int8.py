"""Full-integer TFLite (``--quantize int8``) of trained runs: PSNR against Keras, size and latency vs float32.

    python -m bench.quality --keep-runs runs/defaults     # train the defaults once (or use any runs)
    python -m bench.int8 runs/defaults/cips runs/defaults/cocogan runs/defaults/infinitygan runs/defaults/gawwn

Each run is exported as a float32 and an int8 TFLite file (batch 1, the patch of its serving
description; int8 calibrated on tiles of seeds 0-63; GAWWN also on 64 conditions of its run's data,
its box/keypoint geometry kept float32). Accuracy: PSNR (peak-to-peak 2) and max abs
difference against Keras over 16 held-out tiles (canvases of seeds 1000+, as a client tiles them;
GAWWN: 16 conditions of its data from element 1000 and 16 random ones).
Latency: median ms per patch over 100 calls each, the two files taking turns in blocks
(bench.export's median_ms), 2 threads. The ops left
in float32 (no int8 kernel) are listed. Goal (issue 19): PSNR >= 25 dB on the tiny presets.
Untrained weights say nothing about accuracy, so this bench needs trained runs.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from tfcoord import cli
from bench.common import REPO, machine_info, markdown_table, write_json
from bench.export import median_ms
from tfcoord.errors import UserError

ACCURACY_TILES = 16
CALLS = 100
PSNR_GOAL_DB = 25.0


def measure(run_dir: Path) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    import tensorflow as tf

    from export.tflite import export_tflite, representative_inputs
    from tfcoord.runs import load_run

    model, checkpoint = load_run(run_dir)
    tiling = model.serving_description().get("tiling")
    patch = tiling["tile_size"][0] if tiling else model.image_size()[0]
    function = model.serving_functions(patch_size=patch)["generate_patch"]
    with tempfile.TemporaryDirectory() as scratch:
        files = {}
        for quantize in ("none", "int8"):
            files[quantize], sidecar = export_tflite(run_dir, Path(scratch) / f"{quantize}.tflite", patch, quantize)
        runners = {q: Interpreter(model_path=str(p), num_threads=2).get_signature_runner("generate_patch")
                   for q, p in files.items()}
        tiles = list(representative_inputs(model, sidecar, 1, rows=ACCURACY_TILES, first_seed=1000)())
        # Keras: the serving function's own body, eagerly (its inputs in input_signature order: *noises).
        keras_outputs = [np.asarray(function.python_function(*[tf.constant(tile[spec.name])
                                                               for spec in function.input_signature])["rgb"])
                         for tile in tiles]
        row = {"run": str(run_dir), "model": model.config.model_type, "preset": model.config.preset,
               "checkpoint": Path(checkpoint).name, "float_ops": ", ".join(sidecar["tflite"]["float_ops"]) or "-",
               "calibration": sidecar["tflite"]["calibration"]}
        for quantize, runner in runners.items():
            errors = [np.asarray(runner(**tile)["rgb"], "float64") - out for tile, out in zip(tiles, keras_outputs)]
            mse = float(np.mean([np.mean(np.square(e)) for e in errors]))
            row[f"{quantize}_psnr_db"] = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)
            row[f"{quantize}_max_abs_diff"] = float(max(np.abs(e).max() for e in errors))
            row[f"{quantize}_kib"] = files[quantize].stat().st_size / 1024
        latency = median_ms({quantize: (lambda tile, runner=runner: runner(**tile)) for quantize, runner in runners.items()},
                            tiles[0], CALLS)
        for quantize in runners:
            row[f"{quantize}_ms"] = latency[quantize][0]
        row["int8_speedup"] = row["none_ms"] / row["int8_ms"]
        row["goal_met"] = row["int8_psnr_db"] >= PSNR_GOAL_DB
    return row


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.int8", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="trained run directories (python -m tfcoord.train --out ...)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "int8.json"), help="JSON output")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (Path(run) / "config.yaml").is_file():
            raise UserError(f"{run} is not a run directory (no config.yaml); pass --out folders of tfcoord.train")
    cli.quiet_tensorflow()
    rows = [measure(Path(run)) for run in args.runs]
    print(markdown_table(rows, [("model", "model", "s"), ("preset", "preset", "s"), ("step", "checkpoint", "s"),
                                ("int8 PSNR dB", "int8_psnr_db", ".1f"), ("int8 max diff", "int8_max_abs_diff", ".3f"),
                                ("f32 PSNR dB", "none_psnr_db", ".1f"), ("int8 ms", "int8_ms", ".2f"),
                                ("f32 ms", "none_ms", ".2f"), ("speed-up", "int8_speedup", ".2f"),
                                ("int8 KiB", "int8_kib", ".0f"), ("f32 KiB", "none_kib", ".0f"),
                                ("float ops left", "float_ops", "s"), (">= 25 dB", "goal_met", "")]))
    path = write_json(args.out, {"machine": machine_info(), "psnr_goal_db": PSNR_GOAL_DB, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
