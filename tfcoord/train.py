"""Train a model: ``python -m tfcoord.train --model cocogan [options]``.

Examples::

    python -m tfcoord.train --model cocogan                       # tiny preset, synthetic landscapes
    python -m tfcoord.train --model cocogan --config configs/cocogan/celeba64.yaml --data tfds:celeb_a
    python -m tfcoord.train --model cocogan --out runs/x --resume --steps 2000
    python -m tfcoord.train --model cocogan --set loss.spatial_weight=50 --set model.ngf=32
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from tfcoord import cli
from tfcoord.config import load_config, read_yaml
from tfcoord.errors import UserError
from tfcoord.models import check_model_name, default_preset, model_names, section_classes


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.train", description="Train a tfcoord model.")
    parser.add_argument("--model", required=True, help=f"one of: {', '.join(model_names())}")
    parser.add_argument("--config", help="YAML config file (default: the model's default preset)")
    parser.add_argument("--preset", help="a preset name under configs/<model>/ (default: the model's default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value; repeatable")
    parser.add_argument("--data", help="synthetic-landscapes | folder:PATH | tfds:NAME[/CONFIG][:SPLIT]")
    parser.add_argument("--steps", type=int, help="train until this step")
    parser.add_argument("--batch-size", type=int, help="global batch size (split across replicas)")
    parser.add_argument("--out", help="run directory (default: runs/<model>-<preset>, numbered if taken)")
    parser.add_argument("--strategy", help="auto | default | one_device | mirrored | multi_worker")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--seed", type=int, help="random seed of the run")
    parser.add_argument("--image-features", metavar="FILE.npy",
                        help="text-encoder: fixed image features, one row per record of --data annotations:FILE.jsonl "
                             "(sets model.image_features)")
    return parser.parse_args(argv)


def shortcut_overrides(args) -> list[str]:
    """The command-line shortcuts as ``--set`` overrides (applied before explicit --set)."""
    pairs = [("data.source", args.data), ("train.steps", args.steps), ("train.batch_size", args.batch_size),
             ("train.strategy", args.strategy), ("train.seed", args.seed)]
    if args.image_features is not None:
        if args.model != "text-encoder":
            raise UserError(f"--image-features is an option of --model text-encoder, not {args.model}")
        pairs.append(("model.image_features", Path(args.image_features).expanduser().resolve()))
    return [f"{key}={value}" for key, value in pairs if value is not None]


def choose_run_dir(args, model_type: str, preset: str) -> Path:
    if args.out:
        out = Path(args.out)
        if not args.resume and (out / "checkpoints" / "checkpoint").exists():
            raise UserError(f"{out} already holds a trained run; pass --resume to continue it "
                            "or a new --out folder for a new run")
        if args.resume and not (out / "config.yaml").is_file():
            raise UserError(f"--resume: {out} is not a tfcoord run (no config.yaml); pass the --out folder of a run")
        return out
    if args.resume:
        raise UserError("--resume needs --out RUN_DIR (the run to continue)")
    base = Path("runs") / f"{model_type}-{preset}"
    out, number = base, 1
    while out.exists():
        number += 1
        out = base.with_name(f"{base.name}-{number}")
    return out


def resolve(args):
    model_type = check_model_name(args.model)
    sections = section_classes(model_type)
    if args.config and args.preset:
        raise UserError("give either --config FILE or --preset NAME, not both")
    overrides = shortcut_overrides(args) + args.overrides
    if args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        saved = read_yaml(Path(args.out) / "config.yaml")
        if saved.get("model_type") != model_type:
            raise UserError(f"--resume: {args.out} is a {saved.get('model_type')} run, not {model_type}")
        config = load_config(model_type, sections, preset=saved.get("preset", "custom"),
                             config_file=Path(args.out) / "config.yaml", overrides=overrides)
    else:
        preset = args.preset or default_preset(model_type)
        config = load_config(model_type, sections, preset=preset, config_file=args.config, overrides=overrides)
    return config, choose_run_dir(args, model_type, config.preset)


def main(argv=None):
    train_run(parse_args(argv))
    return 0


def train_run(args) -> Path:
    """Train as the command line ``args`` say; returns the run directory (the chief's, for multi-worker)."""
    config, run_dir = resolve(args)
    if config.train.strategy == "multi_worker":
        from tfcoord.training.cluster import cluster_role

        cluster_role()  # a bad TF_CONFIG stops here, before TensorFlow starts
    cli.quiet_tensorflow()
    from tfcoord.training.strategy import configure_devices, start_strategy

    configure_devices()
    start_strategy(config.train.strategy)  # before any TensorFlow op: multi-worker collectives need it
    from tfcoord.models import model_class
    from tfcoord.training.loop import Trainer

    model = model_class(config.model_type)(config)
    trainer = Trainer(model, run_dir, resume=args.resume)
    where = "" if trainer.role is None else f" as {trainer.role.name} of {trainer.role.num_workers} workers"
    print(f"training {config.model_type} ({config.preset}) into {run_dir}{where}", flush=True)
    trainer.fit()
    if trainer.role is not None and not trainer.role.is_chief:
        print(f"done: {trainer.role.name} finished; the chief wrote {run_dir}")
    else:
        print(f"done: {run_dir} (samples in {run_dir / 'samples'}, checkpoints in {run_dir / 'checkpoints'})")
    return run_dir


class _CallableModule(types.ModuleType):
    """``tfcoord.train`` names both this command's module (``python -m tfcoord.train``) and the API function
    ``tfcoord.train(model=, preset=, **overrides)``. Importing the module sets the package attribute to the
    module, so the module itself is the function: calling it calls :func:`tfcoord.api.train`."""

    def __call__(self, *args, **kwargs):
        from tfcoord.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(cli.run(main))
