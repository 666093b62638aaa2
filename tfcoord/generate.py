"""Generate images from a trained run: ``python -m tfcoord.generate --run runs/NAME [options]``.

COCO-GAN runs write full images assembled from micro patches. Micro patch (r, c)
covers pixel rows ``r*m .. (r+1)*m`` and columns ``c*m .. (c+1)*m`` (m = micro size)
and is generated at the micro coordinate listed for it in ``layout.json``:
``(vertical, horizontal)`` in [-1, 1] for Euclidean models, ``(vertical, cos, sin)``
for cylindrical ones. With ``--extrapolate K`` the grid gains K micro patches beyond
every trained edge (coordinates beyond [-1, 1]); with ``--panorama`` a cylindrical
run also writes each panorama pasted twice side by side (720 degrees) so the
wrap-around can be inspected.

Examples::

    python -m tfcoord.generate --run runs/cocogan-tiny --num 8 --seed 1
    python -m tfcoord.generate --run runs/cocogan-lsun256 --extrapolate 1
    python -m tfcoord.generate --run runs/cocogan-panorama_tiny --panorama
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tfcoord import cli
from tfcoord.errors import UserError

MAX_IMAGES = 10_000


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.generate", description="Generate images from a trained run.")
    parser.add_argument("--run", required=True, help="run directory written by tfcoord.train")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (same seed, same images)")
    parser.add_argument("--num", type=int, default=8, help="number of images")
    parser.add_argument("--extrapolate", type=int, default=0, metavar="K",
                        help="COCO-GAN: extend the micro-patch grid K steps beyond the training boundary")
    parser.add_argument("--panorama", action="store_true",
                        help="COCO-GAN cylindrical runs: also write 720-degree (pasted twice) panoramas")
    parser.add_argument("--guide-patch", metavar="IMAGE",
                        help="COCO-GAN with content head: patch-guided generation from this image")
    parser.add_argument("--out", help="output folder (default: RUN/generated)")
    args = parser.parse_args(argv)
    if not 1 <= args.num <= MAX_IMAGES:
        raise UserError(f"--num must be between 1 and {MAX_IMAGES}, got {args.num}")
    if not 0 <= args.extrapolate <= 16:
        raise UserError(f"--extrapolate must be between 0 and 16 micro patches, got {args.extrapolate}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if args.guide_patch and not Path(args.guide_patch).is_file():
        raise UserError(f"--guide-patch {args.guide_patch} does not exist")
    if not (Path(args.run) / "config.yaml").is_file():
        raise UserError(f"{args.run} is not a tfcoord run directory (no config.yaml); "
                        "pass the --out folder of a training run")
    return args


def load_guide_patch(path, size: int) -> np.ndarray:
    """An image file as a (1, size, size, 3) macro patch in [-1, 1] (centre crop, resized)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path).convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"--guide-patch {path} is not a readable image ({err})") from None
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return (np.asarray(image, "float32")[None] / 127.5 - 1.0).astype("float32")


def generate_cocogan(model, args, out: Path) -> list[Path]:
    from tfcoord.images import image_grid, save_png

    geometry = model.geometry
    if args.panorama and geometry.system != "cylindrical":
        raise UserError("--panorama needs a run trained with model.coordinate_system=cylindrical "
                        "(e.g. the panorama_tiny or mp3d_panorama preset)")
    written = []
    if args.guide_patch:
        patch = load_guide_patch(args.guide_patch, model.config.model.macro_size)
        images, z_est, coords_est = model.patch_guided_generate(patch)
        written.append(save_png(images[0], out / "patch_guided.png"))
        (out / "patch_guided.json").write_text(json.dumps(
            {"estimated_macro_coords": coords_est[0].tolist(), "estimated_z": z_est[0].tolist()}))
        return written
    images = model.generate_full(model.latents(args.seed, args.num), extrapolation_steps=args.extrapolate)
    for i, image in enumerate(images):
        written.append(save_png(image, out / f"seed{args.seed}_{i:04d}.png"))
        if args.panorama:
            written.append(save_png(np.concatenate([image, image], axis=1), out / f"seed{args.seed}_{i:04d}_720.png"))
    written.append(save_png(image_grid(images), out / f"seed{args.seed}_grid.png"))
    grid = np.asarray(geometry.full_micro_grid(args.extrapolate))
    layout = {"micro_size": geometry.micro_size, "rows": grid.shape[0], "cols": grid.shape[1],
              "coordinate_system": geometry.system, "extrapolation_steps": args.extrapolate,
              "micro_coords": grid.round(6).tolist()}
    (out / "layout.json").write_text(json.dumps(layout))
    return written


GENERATORS = {"cocogan": generate_cocogan}


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow()
    from tfcoord.runs import load_run

    model, checkpoint = load_run(args.run)
    out = Path(args.out) if args.out else Path(args.run) / "generated"
    written = GENERATORS[model.name](model, args, out)
    print(f"wrote {len(written)} files to {out} (from {checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
