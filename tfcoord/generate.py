"""Generate images from a trained run: ``python -m tfcoord.generate --run runs/NAME [options]``.

The run's ``config.yaml`` names its model; the model's own options (see
``python -m tfcoord.generate --run RUN --help``) come from
``tfcoord/models/<model>/generate.py``, which defines ``add_arguments(parser)``,
``check_arguments(args)`` and ``generate(model, args, out) -> list of written files``.

Examples::

    python -m tfcoord.generate --run runs/cocogan-tiny --num 8 --seed 1
    python -m tfcoord.generate --run runs/cocogan-lsun256 --extrapolate 1
    python -m tfcoord.generate --run runs/cocogan-panorama_tiny --panorama
"""

from __future__ import annotations

import sys
from pathlib import Path

from tfcoord import cli
from tfcoord.config import PRECISIONS, read_run_yaml
from tfcoord.errors import UserError
from tfcoord.models import Capability, model_spec

MAX_IMAGES = 10_000


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.generate", description="Generate images from a trained run.")
    parser.add_argument("--run", required=True, help="run directory written by tfcoord.train")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (same seed, same images)")
    parser.add_argument("--num", type=int, default=8, help="number of images")
    parser.add_argument("--out", help="output folder or file (default: RUN/generated)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="compute dtype policy of the generator (float32 weights in every case; images are "
                             "float32): mixed_bfloat16 / mixed_float16 are faster on GPUs with tensor cores")
    canvas = parser.add_argument_group("canvas (models that generate by coordinates)")
    canvas.add_argument("--width", type=int, help="output width in pixels (default: the model's native size)")
    canvas.add_argument("--height", type=int, help="output height in pixels (default: the model's native size)")
    canvas.add_argument("--tile", type=int, help="tile side in pixels (default: chosen by the model)")
    canvas.add_argument("--batch", type=int, default=4, help="tiles per network call")
    canvas.add_argument("--panorama", action="store_true",
                        help="360-degree panorama: the last column continues into the first")
    canvas.add_argument("--format", choices=("png", "tiff", "dzi"), default="png", help="output format")
    canvas.add_argument("--xla", action="store_true",
                        help="compile the tile network with XLA (faster where python -m bench.canvas --xla says so; "
                             "the first tile of each shape pays the compilation)")
    known, _ = parser.parse_known_args(argv)  # --run first: it decides the model's own options
    module = model_spec(read_run_yaml(known.run)["model_type"]).generate_options.load()
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.num <= MAX_IMAGES:
        raise UserError(f"--num must be between 1 and {MAX_IMAGES}, got {args.num}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    for name in ("width", "height", "tile", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be a positive integer, got {value}")
    if args.xla and not (args.width or args.height or args.tile):
        raise UserError("--xla applies to canvas rendering: give --width/--height (or --tile) as well")
    module.check_arguments(args)
    return args, module


def main(argv=None):
    args, module = parse_args(argv)
    cli.quiet_tensorflow()
    from tfcoord.runs import load_run

    model, checkpoint = load_run(args.run, precision=args.precision)
    if args.width or args.height or args.tile:
        return render(model, checkpoint, args)
    out = Path(args.out) if args.out else Path(args.run) / "generated"
    written = module.generate(model, args, out)
    print(f"wrote {len(written)} files to {out} (from {checkpoint})")
    return 0


def render(model, checkpoint, args) -> int:
    """Canvas mode: one image of --width x --height through the canvas engine (resumable)."""
    from tfcoord.generation.canvas import render_canvas

    if not model_spec(model.name).can(Capability.CANVAS):
        raise UserError(f"{model.name} does not generate by coordinates, so --width/--height/--tile do not apply")
    native_height, native_width = model.image_size()
    width, height = args.width or native_width, args.height or native_height
    extension = {"png": "png", "tiff": "tif", "dzi": "dzi"}[args.format]
    out = Path(args.out) if args.out else Path(args.run) / "generated" / f"canvas_{width}x{height}_seed{args.seed}.{extension}"
    renderer = model.canvas_renderer(width, height, args.seed, panorama=args.panorama, checkpoint=str(checkpoint),
                                     xla=args.xla)
    written = render_canvas(renderer, out, width, height, tile=args.tile, batch=args.batch, fmt=args.format)
    print(f"wrote {written} ({width} x {height}, from {checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
