"""Convert an official pretrained checkpoint into a tfcoord run directory.

``python -m tfcoord.convert MODEL --checkpoint FILE --config configs/MODEL/PRESET.yaml --out runs/NAME``

Each model's converter lives in ``tfcoord/models/<model>/convert.py`` and defines
``convert(checkpoint_path, config) -> model`` (a built model whose networks hold the
official weights, after every tensor name and shape has been checked) and
``OFFICIAL_COMPAT`` (the ``--set`` overrides that reproduce the official code's
quirks). A converter may also define ``official_config_overrides(raw) -> list | None``:
then ``--config`` may name the official experiment config instead of a tfcoord preset
(COCO-GAN: ``--config configs/CelebA_64x64_N2M2S32.yaml`` of the official repository),
translated onto the model's default preset. The run directory is written only after the
conversion succeeded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tfcoord import cli
from tfcoord.config import load_config, read_yaml
from tfcoord.errors import UserError
from tfcoord.models import default_preset, model_spec, section_classes


def converter(model_type: str):
    spec = model_spec(model_type)
    if spec.converter is None:
        raise UserError(f"there is no converter for '{model_type}' official checkpoints")
    return spec.converter.load()


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.convert", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="cips | infinitygan | cocogan")
    parser.add_argument("--checkpoint", required=True, help="the official checkpoint file (or TF1 prefix/folder)")
    parser.add_argument("--config", required=True,
                        help="the tfcoord preset matching the checkpoint (cocogan: or the official experiment config)")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).exists() and not Path(args.checkpoint + ".index").exists():
        raise UserError(f"--checkpoint {args.checkpoint} does not exist")
    if (Path(args.out) / "checkpoints").exists():
        raise UserError(f"{args.out} already holds a run; choose a new --out folder")
    return args


def resolve_config(model_type: str, module, config_file, overrides):
    """The run config: a tfcoord config file, or an official one the converter translates."""
    overrides = list(module.OFFICIAL_COMPAT) + list(overrides)
    translate = getattr(module, "official_config_overrides", None)
    official = translate(read_yaml(config_file)) if translate is not None else None
    if official is not None:
        return load_config(model_type, section_classes(model_type), preset=default_preset(model_type),
                           overrides=official + overrides)
    return load_config(model_type, section_classes(model_type), preset="custom", config_file=config_file,
                       overrides=overrides)


def main(argv=None):
    args = parse_args(argv)
    module = converter(args.model)
    config = resolve_config(args.model, module, args.config, args.overrides)
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
