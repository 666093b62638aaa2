"""CIPS's part of ``python -m tfcoord.generate``: sizes, foveation, panoramas, style blends, truncation, noise.

Examples::

    python -m tfcoord.generate --run runs/cips-tiny --num 8                        # training size
    python -m tfcoord.generate --run runs/cips-tiny --resolution 128               # 4x denser grid (super-resolution)
    python -m tfcoord.generate --run runs/cips-tiny --width 1024 --height 1024     # canvas engine, tile by tile
    python -m tfcoord.generate --run runs/cips-tiny --foveated 0.3,-0.2 --fill linear
    python -m tfcoord.generate --run runs/cips-panorama_tiny --panorama --resolution 32x256
    python -m tfcoord.generate --run runs/cips-tiny --style-blend 7 --blend-radius 0.4

An H x W output is drawn on the coordinates of :mod:`tfcoord.models.cips.canvas`, which
``--width/--height/--tile`` (shared options) render tile by tile. Outputs are PNGs (clipped
to [-1, 1]) plus ``generation.json`` recording what was made (e.g. the number of evaluated
pixels of a foveated render).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError
from tfcoord.models.cips.config import MAX_OUTPUT_PIXELS, MAX_OUTPUT_SIDE


def add_arguments(parser) -> None:
    group = parser.add_argument_group("CIPS")
    group.add_argument("--resolution", metavar="N or HxW",
                       help="output size of the images (default: the training size; panoramas: H x 4H); "
                            "larger than the training size = super-resolution by a denser grid")
    group.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                       help="truncation psi in (0, 1]; 1 = none")
    group.add_argument("--noise", choices=("none", "random"), default="none",
                       help="per-pixel noise: none (deterministic, tileable) or random (official eval behaviour)")
    group.add_argument("--foveated", metavar="X,Y", help="foveated rendering around the gaze point (x, y) in [-1, 1]")
    group.add_argument("--fill", choices=("linear", "nearest"), default="linear",
                       help="how foveated renders fill the pixels that were not evaluated")
    group.add_argument("--fovea-sigma", type=float, default=0.25, help="foveation radius (coordinate units)")
    group.add_argument("--min-density", type=float, default=0.08, help="sampling density far from the gaze")
    group.add_argument("--style-blend", type=int, metavar="SEED_B",
                       help="per-pixel style interpolation: the images' style inside a disc, SEED_B's outside")
    group.add_argument("--blend-radius", type=float, default=0.5, help="radius of the --style-blend disc")


def _parse_resolution(text):
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(1 <= v <= MAX_OUTPUT_SIDE for v in values):
        raise UserError(f"--resolution expects N or HxW with sides between 1 and {MAX_OUTPUT_SIDE}, got {text!r}")
    if values[0] * values[1] > MAX_OUTPUT_PIXELS:
        raise UserError(f"--resolution {text} is {values[0] * values[1]} pixels, over the limit of "
                        f"{MAX_OUTPUT_PIXELS} (4096x4096); use the canvas options --width/--height for larger images")
    return tuple(values)


def _parse_gaze(text):
    try:
        gaze = tuple(float(v) for v in text.split(","))
    except ValueError:
        gaze = ()
    if len(gaze) != 2 or not all(math.isfinite(g) and -1.0 <= g <= 1.0 for g in gaze):
        raise UserError(f"--foveated expects X,Y with both in [-1, 1], e.g. 0.3,-0.2; got {text!r}")
    return gaze


def check_arguments(args) -> None:
    args.size = _parse_resolution(args.resolution) if args.resolution else None
    if not (0.0 < args.truncation <= 1.0) or not math.isfinite(args.truncation):
        raise UserError(f"--truncation must be in (0, 1], got {args.truncation}")
    if args.foveated is not None:
        args.gaze = _parse_gaze(args.foveated)
    if not 0.0 < args.min_density <= 1.0:
        raise UserError(f"--min-density must be in (0, 1], got {args.min_density}")
    if not args.fovea_sigma > 0.0:
        raise UserError(f"--fovea-sigma must be > 0, got {args.fovea_sigma}")
    if args.style_blend is not None and args.style_blend < 0:
        raise UserError(f"--style-blend seed must be >= 0, got {args.style_blend}")
    modes = [f"--{m.replace('_', '-')}" for m in ("foveated", "style_blend") if getattr(args, m) is not None]
    if len(modes) > 1 or (modes and args.panorama):
        raise UserError(f"choose one of {', '.join(modes + ['--panorama'] * bool(args.panorama))}")
    if modes and args.noise == "random":
        raise UserError(f"--noise random applies to whole-grid generation, not to {modes[0]}")
    canvas = [f"--{m}" for m in ("width", "height", "tile") if getattr(args, m, None)]
    cips_only = modes + ["--resolution"] * bool(args.resolution) + ["--noise random"] * (args.noise == "random") \
        + ["--truncation"] * (args.truncation < 1.0)
    if canvas and cips_only:
        raise UserError(f"{', '.join(canvas)} (canvas engine) cannot be combined with {', '.join(cips_only)}; "
                        "use --resolution HxW for those")


def generate(model, args, out: Path) -> list[Path]:
    from tfcoord.images import image_grid, save_png
    from tfcoord.models.cips import applications

    cfg = model.config.model
    if args.panorama:
        applications.check_cylindrical(cfg)
    height, width = args.size or (cfg.size, 4 * cfg.size if args.panorama else cfg.size)
    sampler = model.sampler
    z = sampler.latents(args.seed, args.num)
    styles = sampler.styles(z, args.truncation)
    record = {"seed": args.seed, "num": args.num, "height": height, "width": width, "truncation": args.truncation,
              "noise": args.noise, "training_size": cfg.size, "coordinate_system": cfg.coordinate_system}
    written = []
    if args.foveated is not None:
        images, mask, evaluated = applications.foveated_render(
            sampler, styles, height, width, args.gaze, args.fovea_sigma, args.min_density, seed=args.seed,
            method=args.fill)
        mask_image = mask.astype("float32")[..., None].repeat(3, -1) * 2.0 - 1.0
        written.append(save_png(mask_image, out / "foveation_mask.png"))
        record.update(mode="foveated", gaze=list(args.gaze), fill=args.fill, evaluated_pixels=evaluated,
                      total_pixels=height * width, evaluated_fraction=evaluated / (height * width))
        percent = 100.0 * evaluated / (height * width)
        print(f"foveated: evaluated {evaluated} of {height * width} pixels ({percent:.1f} %)")
    elif args.style_blend is not None:
        other = sampler.styles(sampler.latents(args.style_blend, 1), args.truncation)
        mask = applications.radial_mask(height, width, radius=args.blend_radius)
        field = applications.blend_styles(styles, np.repeat(other, len(styles), axis=0), mask)
        images = applications.render_style_field(sampler, field)
        record.update(mode="style_blend", outside_seed=args.style_blend, blend_radius=args.blend_radius)
    else:
        coords = np.broadcast_to(sampler.grid(height, width), (len(styles), height, width, cfg.coord_dim))
        noise = sampler.random_noise(args.seed, coords.shape[:-1]) if args.noise == "random" else None
        images = sampler.render(styles, coords, noise=noise)
        record.update(mode="panorama" if args.panorama else ("super_resolution" if max(height, width) > cfg.size
                                                             else "grid"))
    images = np.clip(images, -1.0, 1.0)
    for i, image in enumerate(images):
        written.append(save_png(image, out / f"seed{args.seed}_{i:04d}.png"))
        if args.panorama:
            written.append(save_png(np.concatenate([image, image], axis=1), out / f"seed{args.seed}_{i:04d}_720.png"))
    written.append(save_png(image_grid(images), out / f"seed{args.seed}_grid.png"))
    path = out / "generation.json"
    path.write_text(json.dumps(record, indent=2))
    written.append(path)
    return written
