"""Convert an official pretrained checkpoint into a tfcoord run directory.

``python -m tfcoord.convert MODEL --checkpoint FILE --config configs/MODEL/PRESET.yaml --out runs/NAME``

Each model's converter lives in ``tfcoord/models/<model>/convert.py`` and defines
``convert(checkpoint_path, config) -> model`` (a built model whose networks hold the
official weights, after every tensor name and shape has been checked) and
``OFFICIAL_COMPAT`` (the ``--set`` overrides that reproduce the official code's
quirks). The run directory is written only after the conversion succeeded.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from tfcoord import cli
from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.models import MODELS, check_model_name, section_classes


def converter(model_type: str):
    package = MODELS[check_model_name(model_type)].split(":")[0].rsplit(".", 1)[0]
    try:
        return importlib.import_module(f"{package}.convert")
    except ModuleNotFoundError as err:
        if err.name == f"{package}.convert":
            raise UserError(f"there is no converter for '{model_type}' official checkpoints") from None
        raise


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.convert", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="cips | infinitygan | cocogan")
    parser.add_argument("--checkpoint", required=True, help="the official checkpoint file (or TF1 prefix/folder)")
    parser.add_argument("--config", required=True, help="the tfcoord preset matching the checkpoint")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).exists() and not Path(args.checkpoint + ".index").exists():
        raise UserError(f"--checkpoint {args.checkpoint} does not exist")
    if (Path(args.out) / "checkpoints").exists():
        raise UserError(f"{args.out} already holds a run; choose a new --out folder")
    return args


def main(argv=None):
    args = parse_args(argv)
    module = converter(args.model)
    config = load_config(args.model, section_classes(args.model), preset="custom", config_file=args.config,
                         overrides=list(module.OFFICIAL_COMPAT) + args.overrides)
    cli.quiet_tensorflow()
    import tensorflow as tf

    from tfcoord.training.checkpoints import CheckpointKeeper

    model = module.convert(args.checkpoint, config)  # raises UserError before anything is written
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    step = tf.Variable(0, dtype=tf.int64)
    CheckpointKeeper(out / "checkpoints", step, **model.network_items()).save(0)
    (out / "converted_from.json").write_text(json.dumps(
        {"official_checkpoint": str(Path(args.checkpoint).resolve()), "model": args.model,
         "compat_overrides": list(module.OFFICIAL_COMPAT)}, indent=2))
    print(f"converted {args.checkpoint} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
