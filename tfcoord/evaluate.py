"""Evaluate a trained run: ``python -m tfcoord.evaluate --run runs/NAME --metric fid --num N [options]``.

Metrics (see :mod:`tfcoord.metrics`): ``fid``, ``kid``, ``pr`` (precision/recall),
``scaleinv-fid`` (``--scale K``), ``patch-fid`` (``--patch-size P``). Features are
Inception-v3 pool features from ``--inception-weights FILE`` or the Keras cache;
nothing is downloaded. pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` gives the
papers' FID network (docs/fid.md); Keras's ImageNet weights give FIDs comparable only
with each other. The result is printed and appended to ``RUN/metrics.jsonl``, whose
``feature_network`` field (``pytorch-fid`` | ``keras-imagenet``) says which it was.

Examples::

    python -m tfcoord.evaluate --run runs/cocogan-tiny --metric fid --num 10000
    python -m tfcoord.evaluate --run runs/cocogan-celeba64 --metric fid --real tfds:celeb_a:test --num 50000
    python -m tfcoord.evaluate --run runs/x --metric kid --num 2000 --kid-subset-size 500
    python -m tfcoord.evaluate --run runs/cips-ffhq256 --metric fid --num 50000 \
        --inception-weights pt_inception-2015-12-05-6726825d.pth
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tfcoord import cli
from tfcoord.config import read_run_yaml
from tfcoord.errors import UserError
from tfcoord.metrics import METRICS, get_metric

MAX_IMAGES = 1_000_000
MAX_BATCH = 1024
MAX_PR_IMAGES = 50_000  # precision/recall costs O(N^2) distances


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.evaluate", description="Evaluate a trained run.")
    parser.add_argument("--run", required=True, help="run directory written by tfcoord.train")
    parser.add_argument("--metric", required=True, help=f"one of: {', '.join(METRICS)}")
    parser.add_argument("--real", help="real data: synthetic-landscapes | folder:PATH | tfds:NAME[/CONFIG][:SPLIT] "
                                       "(default: the run's data.source)")
    parser.add_argument("--num", type=int, required=True, help="generated images (papers: 50000)")
    parser.add_argument("--num-real", type=int, help="real images (default: --num)")
    parser.add_argument("--batch", type=int, default=50, help="images per generator/Inception call (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="latent seed of the generated set")
    parser.add_argument("--inception-weights", metavar="FILE",
                        help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the papers' FID network) or "
                             "Keras Inception-v3 no-top weights (default: the Keras cache, never downloaded)")
    parser.add_argument("--kid-subsets", type=int, default=100, help="KID: number of subsets (default 100)")
    parser.add_argument("--kid-subset-size", type=int, help="KID: samples per subset (default min(1000, N))")
    parser.add_argument("--pr-k", type=int, default=3, help="precision/recall: k of the k-NN radii (default 3)")
    parser.add_argument("--patch-size", type=int, help="patch-fid: patch side (default: the model's patch_size())")
    parser.add_argument("--scale", type=float, default=2.0, help="scaleinv-fid: the scale factor k (default 2)")
    parser.add_argument("--fov", type=float, help="scaleinv-fid: field-of-view factor (default: the model's)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached real statistics")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    check_arguments(args)
    return args


def _between(name, value, low, high):
    if value is not None and not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}, got {value}")


def check_arguments(args) -> None:
    """Every check that needs neither TensorFlow nor a model, so a bad command line fails at once."""
    metric = get_metric(args.metric)
    _between("--num", args.num, 2, MAX_IMAGES)
    _between("--num-real", args.num_real, 2, MAX_IMAGES)
    _between("--batch", args.batch, 1, MAX_BATCH)
    _between("--seed", args.seed, 0, 2**31 - 1)
    _between("--kid-subsets", args.kid_subsets, 1, 100_000)
    _between("--pr-k", args.pr_k, 1, 100)
    _between("--patch-size", args.patch_size, 1, 65_536)
    _between("--scale", args.scale, 1.0, 64.0)
    _between("--fov", args.fov, 0.01, 100.0)
    smaller = min(args.num, args.num_real or args.num)
    if args.metric == "kid" and args.kid_subset_size is not None:
        _between("--kid-subset-size", args.kid_subset_size, 2, smaller)
    if args.metric == "pr":
        _between("--num (pr)", args.num, 2, MAX_PR_IMAGES)
        _between("--num-real (pr)", args.num_real, 2, MAX_PR_IMAGES)
        if args.pr_k >= smaller:
            raise UserError(f"--pr-k {args.pr_k} needs more than {args.pr_k} images per set; raise --num")
    read_run_yaml(args.run)
    if not (Path(args.run) / "checkpoints").is_dir():
        raise UserError(f"{args.run} has no checkpoints yet; train it first")
    args.metric_spec = metric


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line to ``path``, atomically (earlier lines are never at risk)."""
    from tfcoord.fileio import atomic_write_text, describe_write_error

    previous = path.read_text() if path.is_file() else ""
    if previous and not previous.endswith("\n"):
        previous += "\n"
    try:
        atomic_write_text(path, previous + json.dumps(record) + "\n")
    except OSError as err:
        raise UserError(f"could not write {path} ({describe_write_error(err)}); the result was printed above") from None


def main(argv=None):
    args = parse_args(argv)
    from tfcoord.metrics.inception import check_extractor_available, injected_extractor_name

    check_extractor_available(args.inception_weights)  # before any slow work
    cli.quiet_tensorflow()
    from tfcoord.data import parse_source

    config_data = read_run_yaml(args.run).get("data") or {}
    real = args.real or config_data.get("source") or "synthetic-landscapes"
    parse_source(real)  # a bad --real fails before the model loads

    from tfcoord.metrics.evaluation import Evaluation, training_recipe
    from tfcoord.metrics.inception import load_extractor
    from tfcoord.models.base import CoordinateGan
    from tfcoord.runs import load_run

    extractor = load_extractor(args.inception_weights)  # a wrong weights file fails before the model loads
    model, checkpoint = load_run(args.run)
    if not isinstance(model, CoordinateGan):
        raise UserError(f"{args.run} is a {model.name} run, which does not generate images to evaluate")
    if injected_extractor_name():
        print(f"note: features from {extractor.name} (TFCOORD_FEATURE_EXTRACTOR), not Inception-v3: "
              "these are not FID values", file=sys.stderr)
    options = {"kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size, "pr_k": args.pr_k,
               "patch_size": args.patch_size, "scale": args.scale, "fov": args.fov}
    evaluation = Evaluation(args.metric_spec, model, real, num_real=args.num_real or args.num, batch=args.batch,
                            extractor=extractor, options=options, use_cache=not args.no_cache,
                            progress=not args.quiet, preprocessing=training_recipe(model.config, real))
    started = time.perf_counter()
    results = evaluation.run(args.num, args.seed)
    results.update(checkpoint=str(checkpoint), seconds=round(time.perf_counter() - started, 2))
    headline = args.metric_spec.headline
    others = ", ".join(f"{k} = {v:.6g}" for k, v in results.items()
                       if k != headline and isinstance(v, float) and k != "seconds")
    print(f"{args.metric}: {headline} = {results[headline]:.4f}" + (f" ({others})" if others else "")
          + f"; {results['num_generated']} generated vs {results['num_real']} real images of {real}; "
          f"checkpoint {Path(str(checkpoint)).name}; features: {results['feature_network']}")
    append_record(Path(args.run) / "metrics.jsonl", results)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
