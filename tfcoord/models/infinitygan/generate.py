"""InfinityGAN's part of ``python -m tfcoord.generate``: arbitrarily large canvases, patch by patch.

Examples::

    python -m tfcoord.generate --run RUN --width 2048 --height 1024                 # 242 patches (canvas engine)
    python -m tfcoord.generate --run RUN --width 2048 --height 256 --panorama       # 360 degree, closes on itself
    python -m tfcoord.generate --run RUN --width 4096 --height 512 --style-centers "0,0;0.33,0.33;0.66,0.66;1,1"
    python -m tfcoord.generate --run RUN --invert photo.png
    python -m tfcoord.generate --run RUN --outpaint photo.png --width 768 --height 256 --placement 0.5,0.5
    python -m tfcoord.generate --run RUN --inbetween left.png right.png --width 1280 --height 256
    python -m tfcoord.generate --run RUN --invert photo.png --lpips-weights weights/lpips   # + perceptual loss

Plain canvases given ``--width``/``--height`` go through the shared canvas engine (resumable,
PNG/TIFF/DZI, tiles of multiples of the patch stride); the InfinityGAN modes below
(style fusion, inversion, outpainting, inbetweening, ``--no-noise``, ``--direct``) take the
canvas size from the same options and write PNGs themselves. Canvas sizes that the patch
grid does not reach exactly (``P + stride * k``: 101 + 96k for the paper model) are generated
at the next reachable size and centre-cropped; a panorama's width must be a multiple of the
pixels per latent (16). ``layout.json`` records the patch grid.

``--seeding legacy`` draws z_g, z_l and the noise with NumPy's generators as tfcoord did before
the portable recipe (:mod:`.sampling`), so a seed gives the image it gave then; those canvases
are written by InfinityGAN's own PNG writer (same pixels as the canvas engine's).

The inversions (``--invert``, ``--outpaint``, ``--inbetween``) add the paper's LPIPS term when
``--lpips-weights DIR`` names a folder with VGG16 and LPIPS weights (:mod:`tfcoord.metrics.lpips`
lists the files); without it they match pixels only, and say so once.
"""

from __future__ import annotations

import json
from pathlib import Path

import sys

import numpy as np

from tfcoord.errors import UserError

def _pair(text: str, option: str) -> tuple[float, float]:
    try:
        row, col = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{option} expects 'row,col' relative positions such as 0.5,0.25, got {text!r}") from None
    return row, col


def add_arguments(parser) -> None:
    group = parser.add_argument_group("InfinityGAN (canvas size: --width/--height, default 4 x 2 patches)")
    group.add_argument("--direct", action="store_true", help="whole canvas in one network call (memory O(canvas))")
    group.add_argument("--no-noise", action="store_true", help="leave out the per-pixel noise")
    group.add_argument("--style-centers", metavar="R,C;R,C;...",
                       help="spatial style fusion: one random style at each relative (row, col) position")
    group.add_argument("--fusion-blur", type=int, default=127, help="style-boundary blur kernel in px (default 127)")
    group.add_argument("--fusion-blur-type", choices=("mean", "gaussian"), default="mean")
    group.add_argument("--invert", metavar="IMAGE", help="invert an image: writes its reconstruction and latents")
    group.add_argument("--outpaint", metavar="IMAGE", help="invert IMAGE and outpaint it to --width x --height")
    group.add_argument("--placement", default="0.5,0.5", metavar="R,C",
                       help="relative centre of the --outpaint image in the canvas (default 0.5,0.5)")
    group.add_argument("--inbetween", nargs=2, metavar=("LEFT", "RIGHT"),
                       help="invert two images, place them at the two ends and generate the connection")
    group.add_argument("--inversion-steps", type=int, default=3000, help="optimisation steps (default 3000)")
    group.add_argument("--inversion-lr", type=float, default=0.1, help="inversion learning rate (default 0.1)")
    group.add_argument("--seeding", choices=("portable", "legacy"), default="portable",
                       help="random fields: portable (default; the recipe export clients reimplement in any "
                            "language) or legacy (NumPy's, as before that recipe: the images of older seeds)")
    group.add_argument("--lpips-weights", metavar="DIR",
                       help="folder with vgg16-397923af.pth (torchvision) or Keras's "
                            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, and LPIPS's v0.1 vgg.pth: the "
                            "inversions add the LPIPS term (default: pixels only)")


def check_arguments(args) -> None:
    modes = [name for name, on in (("--invert", args.invert), ("--outpaint", args.outpaint),
                                   ("--inbetween", args.inbetween), ("--style-centers", args.style_centers),
                                   ("--panorama", args.panorama)) if on]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)} cannot be combined; choose one")
    if args.fusion_blur < 0:
        raise UserError(f"--fusion-blur must be >= 0 pixels, got {args.fusion_blur}")
    if args.inversion_steps < 1:
        raise UserError(f"--inversion-steps must be >= 1, got {args.inversion_steps}")
    if not args.inversion_lr > 0:
        raise UserError(f"--inversion-lr must be > 0, got {args.inversion_lr}")
    for path in [args.invert, args.outpaint, *(args.inbetween or [])]:
        if path and not Path(path).is_file():
            raise UserError(f"image {path} does not exist")
    if args.lpips_weights:
        if not (args.invert or args.outpaint or args.inbetween):
            raise UserError("--lpips-weights applies to --invert, --outpaint and --inbetween only")
        from tfcoord.metrics.lpips import find_weight_files

        find_weight_files(args.lpips_weights)  # a missing file fails here, before TensorFlow starts
    if args.seeding == "legacy" and (args.invert or args.outpaint or args.inbetween):
        raise UserError("--seeding legacy reproduces plain canvases (also --style-centers, --panorama, --no-noise, "
                        "--direct); the inversions start from the portable seeding: leave it out")
    args.placement_pair = _pair(args.placement, "--placement")
    args.centres = None
    if args.style_centers:
        args.centres = [_pair(item, "--style-centers") for item in args.style_centers.split(";") if item.strip()]
        if not args.centres:
            raise UserError("--style-centers lists no position")
    # The InfinityGAN modes render themselves: they claim --width/--height from the canvas engine.
    # --seeding legacy too: the canvas engine's renderer is the model's, which draws the portable fields.
    own_mode = any((args.invert, args.outpaint, args.inbetween, args.style_centers, args.no_noise, args.direct,
                    args.seeding == "legacy"))
    args.canvas_size = (args.height, args.width)
    if own_mode:
        if args.tile:
            raise UserError("--tile applies to plain canvases (canvas engine) only, not to InfinityGAN's "
                            "--invert/--outpaint/--inbetween/--style-centers/--no-noise/--direct/--seeding legacy")
        if args.format != "png":
            raise UserError(f"--format {args.format} applies to plain canvases (canvas engine) only; InfinityGAN's "
                            "--invert/--outpaint/--inbetween/--style-centers/--no-noise/--direct/--seeding legacy "
                            "write PNG")
        args.height = args.width = None


def _lpips(directory):
    """The LPIPS network of ``--lpips-weights``, or None after one line saying the inversion matches pixels only."""
    if not directory:
        print("note: inverting on pixels only (the paper adds LPIPS: pass --lpips-weights DIR with VGG16 and "
              "LPIPS weights, see tfcoord/metrics/lpips.py)", file=sys.stderr, flush=True)
        return None
    from tfcoord.metrics.lpips import Lpips, load_weights

    lpips = Lpips(load_weights(directory))
    print(f"inversion: pixels + LPIPS (VGG16 from {lpips.weights.source})")
    return lpips


def _lpips_note(result) -> str:
    return "" if result.lpips is None else f", LPIPS {result.lpips:.4f}"


def _layout(model, height, width, panorama) -> dict:
    from tfcoord.models.infinitygan.infinite import CanvasPlan

    plan = CanvasPlan(model.geometry, height, width, panorama)
    g = model.geometry
    return {"height": height, "width": width, "patch_size": g.patch_size, "stride": g.pixel_step,
            "patch_rows": plan.rows, "patch_cols": plan.cols, "patches": plan.num_patches,
            "covered": [plan.canvas_height, plan.canvas_width], "crop_offset": list(plan.offset),
            "panorama": panorama, "local_latent_canvas": [plan.local_rows, plan.local_cols]}


def generate(model, args, out: Path) -> list[Path]:
    from tfcoord.images import open_rgb, save_png, to_float
    from tfcoord.models.infinitygan import inversion
    from tfcoord.models.infinitygan.infinite import StyleCentre, generate_canvas

    g = model.geometry
    requested_height, requested_width = getattr(args, "canvas_size", (None, None))
    height = requested_height or g.canvas_pixels(2)
    width = requested_width or g.canvas_pixels(4)
    if args.panorama and not requested_width:  # the default width, rounded to whole latent columns
        width -= width % g.pixels_per_latent
    out = Path(out)
    written = []
    common = dict(batch_patches=args.batch, progress=True)
    inversion_options = dict(steps=args.inversion_steps, lr=args.inversion_lr)
    if args.invert or args.outpaint or args.inbetween:
        inversion_options["lpips"] = _lpips(args.lpips_weights)
    if args.invert:
        result = inversion.invert(model, to_float(open_rgb(args.invert)), seed=args.seed, progress=True,
                                  **inversion_options)
        written.append(save_png(np.clip(result.reconstruction, -1, 1), out / "inverted_reconstruction.png"))
        path = out / "inverted_latents.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, global_latent=result.global_latent, wplus=result.wplus, local_latent=result.local_latent,
                 **{f"noise_{i}": n for i, n in enumerate(result.noises)})
        written.append(path)
        print(f"inversion: mean absolute pixel error {result.pixel_error:.4f}{_lpips_note(result)}")
        return written
    if args.outpaint:
        canvases, result, where = inversion.outpaint(model, to_float(open_rgb(args.outpaint)), height, width,
                                                     placement=args.placement_pair, seed=args.seed, num=args.num,
                                                     **inversion_options, **common)
        placements = [[where.pixel_top, where.pixel_left]]
        print(f"inversion: mean absolute pixel error {result.pixel_error:.4f}{_lpips_note(result)}; "
              f"image placed at {placements[0]}")
    elif args.inbetween:
        left, right = (to_float(open_rgb(p)) for p in args.inbetween)
        canvases, results, wheres = inversion.inbetween(model, left, right, height, width, seed=args.seed,
                                                        num=args.num, fusion_blur=args.fusion_blur,
                                                        **inversion_options, **common)
        placements = [[w.pixel_top, w.pixel_left] for w in wheres]
        for side, result in zip(("left", "right"), results):
            print(f"inversion ({side}): mean absolute pixel error {result.pixel_error:.4f}{_lpips_note(result)}")
    else:
        placements = None
        canvases = []
        for i in range(args.num):
            seed = args.seed + i
            styles = None
            if args.centres:
                latents = model.global_latents(seed, len(args.centres), seeding=args.seeding)
                styles = [StyleCentre(z, position=c) for z, c in zip(latents, args.centres)]
            canvases.append(generate_canvas(model, height, width, seed=seed, styles=styles,
                                            fusion_blur=args.fusion_blur, fusion_blur_type=args.fusion_blur_type,
                                            panorama=args.panorama, noise=not args.no_noise, direct=args.direct,
                                            seeding=args.seeding, **common))
    for i, canvas in enumerate(canvases):
        written.append(save_png(np.clip(canvas, -1.0, 1.0), out / f"seed{args.seed + i}_{height}x{width}.png"))
        if args.panorama:  # pasted twice: the seam in the middle must be invisible
            written.append(save_png(np.clip(np.concatenate([canvas, canvas], axis=1), -1, 1),
                                    out / f"seed{args.seed + i}_{height}x{width}_720.png"))
    layout = _layout(model, height, width, args.panorama)
    if placements is not None:
        layout["image_placements"] = placements
    (out / "layout.json").write_text(json.dumps(layout, indent=1))
    written.append(out / "layout.json")
    return written
