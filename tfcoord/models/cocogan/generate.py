"""COCO-GAN's part of ``python -m tfcoord.generate``: full images by parts.

Micro patch (r, c) covers pixel rows ``r*m .. (r+1)*m`` and columns ``c*m .. (c+1)*m``
(m = micro size) and is generated at the micro coordinate listed for it in
``layout.json``: ``(vertical, horizontal)`` in [-1, 1] for Euclidean models,
``(vertical, cos, sin)`` for cylindrical ones. ``--extrapolate K`` adds K micro
patches beyond every trained edge (coordinates beyond [-1, 1]); ``--panorama`` (a
cylindrical run) also writes each panorama pasted twice side by side (720 degrees)
so the wrap-around can be inspected; ``--guide-patch IMAGE`` runs patch-guided
generation (head Q).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError


def add_arguments(parser) -> None:
    group = parser.add_argument_group("COCO-GAN")
    group.add_argument("--extrapolate", type=int, default=0, metavar="K",
                       help="extend the micro-patch grid K steps beyond the training boundary")
    group.add_argument("--guide-patch", metavar="IMAGE",
                       help="patch-guided generation from this image (needs a content head)")


def check_arguments(args) -> None:
    if not 0 <= args.extrapolate <= 16:
        raise UserError(f"--extrapolate must be between 0 and 16 micro patches, got {args.extrapolate}")
    if args.guide_patch and not Path(args.guide_patch).is_file():
        raise UserError(f"--guide-patch {args.guide_patch} does not exist")


def load_guide_patch(path, size: int) -> np.ndarray:
    """An image file as a (1, size, size, 3) macro patch in [-1, 1] (centre crop, resized)."""
    from PIL import Image

    from tfcoord.images import open_rgb, to_float

    image = open_rgb(path, "--guide-patch")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return to_float(image)[None]


def generate(model, args, out: Path) -> list[Path]:
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
    images = model.sampler.generate_full(model.latents(args.seed, args.num), extrapolation_steps=args.extrapolate)
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
