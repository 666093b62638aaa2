"""Render a W x H image tile by tile from an exported tfcoord model.

    python -m export.client --width 8192 --height 2048 --out big.png --grpc localhost:8500 --model-name cocogan
    python -m export.client --width 8192 --height 2048 --out big.png --rest http://localhost:8501 --model-name cocogan
    python -m export.client --width 512 --height 512 --out big.png --saved-model serving/cocogan
    python -m export.client --width 512 --height 512 --out big.png --tflite cocogan.tflite

The same tiling code drives all four backends (export/backends.py): the tile plan comes
from the model's serving description (the ``describe`` signature, the SavedModel's
asset, or the JSON next to the .tflite file), so no tfcoord model code runs here (only
NumPy recipes: coordinates, and InfinityGAN's position-seeded latent and noise fields).

COCO-GAN, CIPS and InfinityGAN are tiled. InfinityGAN's tiles are its 101 px patches at
96 px steps (53 / 48 px for the tiny preset), overlapping by 5 px; their local latent,
noise and coordinates are windows of canvas-wide fields drawn per position with the
library's portable seeding (a 64-bit hash of seed, field, position and channel, then
Box-Muller: :mod:`tfcoord.generation.fields`, the recipe a phone app reimplements;
``--seeding legacy`` draws the NumPy fields of images made before it), so the image equals
``python -m tfcoord.generate --model infinitygan``
(:func:`tfcoord.models.infinitygan.infinite.generate_canvas`) for the same seed, sizes
between the reachable ``101 + 96 (n - 1)`` px are centre-cropped from the next reachable
one as there, and ``--panorama`` draws its 360 degree canvas. GAWWN draws whole images
from conditions: there is nothing to tile.

Tiles are requested in batches of ``--batch``, at most ``--max-in-flight`` requests at
a time; transient server errors are retried with exponential backoff; each band of
tiles goes to the image writer (PNG, tiled BigTIFF or Deep Zoom, the canvas engine's
streaming writers) as soon as it is complete.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from export.server_files import MODEL_NAME
from tfcoord import cli
from tfcoord.errors import UserError
from tfcoord.generation.tiles import check_side

FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".dzi": "dzi"}
MAX_BATCH = 4096
MAX_IN_FLIGHT = 256
HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d+)$")


def check_signature(backend, plan, retry) -> None:
    """Fail before the first tile if the served model lacks the tiling signature or its inputs."""
    from export.backends import missing_signature, visible

    signatures = retry.call(backend.metadata)
    if plan.signature not in signatures:
        raise missing_signature(backend.name, plan.signature, f"it has {', '.join(visible(signatures))}")
    served, described = set(signatures[plan.signature]["inputs"]), set(plan.recipes)
    if served != described:
        raise UserError(f"signature '{plan.signature}' of {backend.name} takes inputs {sorted(served)}, but the "
                        f"model description builds {sorted(described)}; the description belongs to another model")


def render_bands(backend, plan, *, batch_size: int = 16, max_in_flight: int = 4, retry=None,
                 progress: bool = True):
    """Request every tile of ``plan`` from ``backend``; yield the canvas in horizontal bands (one tile row,
    float32 (rows, width, 3) in [-1, 1], top to bottom) as soon as each band's tiles have arrived.

    Batches are submitted in order to a pool of ``max_in_flight`` threads and consumed in the
    same order, so at most ``max_in_flight`` requests (and their results) are held; requests
    keep running while the caller writes a band.
    """
    from tqdm import tqdm

    from export.backends import RetryPolicy

    retry = retry or RetryPolicy()
    check_signature(backend, plan, retry)
    output = plan.description.get("output", {}).get("name", "rgb")
    expected = (plan.tile_height, plan.tile_width)
    batches = plan.batches(batch_size)
    pending = collections.deque()
    band, filled = None, 0
    pool = ThreadPoolExecutor(max_in_flight)
    bar = tqdm(total=plan.num_tiles, unit="tile", desc="tiles", disable=not progress, dynamic_ncols=True)
    try:
        while True:
            for tiles in itertools.islice(batches, max_in_flight - len(pending)):  # keep the pipeline full
                pending.append((tiles, pool.submit(retry.call, backend.predict, plan.signature, plan.inputs(tiles))))
            if not pending:
                return
            tiles, future = pending.popleft()
            rgb = future.result()[output]
            if rgb.shape[0] != len(tiles) or tuple(rgb.shape[1:3]) != expected:
                raise UserError(f"{backend.name} returned '{output}' of shape {rgb.shape} for {len(tiles)} tiles "
                                f"of {expected[0]}x{expected[1]}; the description does not match the served model")
            for tile, pixels in zip(tiles, rgb):
                if band is None:
                    band = np.empty((tile.height, plan.width, 3), np.float32)
                band[:, tile.left:tile.left + tile.width] = pixels[tile.crop_top:tile.crop_top + tile.height,
                                                                   tile.crop_left:tile.crop_left + tile.width]
                filled += tile.width
                if filled == plan.width:  # tiles arrive row-major: this tile row is complete
                    yield band
                    band, filled = None, 0
            bar.update(len(tiles))
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def render(backend, plan, **options) -> np.ndarray:
    """The whole canvas in memory, float32 (height, width, 3) in [-1, 1] (tests, benchmarks, Python callers)."""
    return np.concatenate(list(render_bands(backend, plan, **options)))


def write_image(path, fmt: str, width: int, height: int, bands) -> Path:
    """Stream float bands into a PNG / BigTIFF / DZI with the canvas engine's writers.

    PNG and TIFF are written to ``<path>.tmp`` and renamed, so a failed render leaves no
    truncated image.
    """
    from tfcoord.generation.writers import WRITERS
    from tfcoord.images import to_uint8

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if fmt == "dzi" else path.with_name(path.name + ".tmp")
    try:
        WRITERS[fmt](target, width, height, (to_uint8(band) for band in bands))
    except BaseException:
        if fmt != "dzi":
            target.unlink(missing_ok=True)
        raise
    if fmt != "dzi":
        os.replace(target, path)
    return path


def make_backend(args):
    from export import backends

    if args.grpc:
        return backends.GrpcBackend(args.grpc, args.model_name, timeout=args.timeout)
    if args.rest:
        return backends.RestBackend(args.rest, args.model_name, timeout=args.timeout)
    if args.saved_model:
        return backends.SavedModelBackend(args.saved_model)
    return backends.TfliteBackend(args.tflite, num_threads=args.threads)


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m export.client",
                                description="Render a W x H image tile by tile from an exported tfcoord model.")
    parser.add_argument("--width", type=int, required=True, help="image width in pixels")
    parser.add_argument("--height", type=int, required=True, help="image height in pixels")
    parser.add_argument("--out", required=True, help="image to write (.png, .tif/.tiff, or .dzi)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC endpoint (port 8500 by default)")
    source.add_argument("--rest", metavar="URL", help="TF Serving REST endpoint, e.g. http://localhost:8501")
    source.add_argument("--saved-model", metavar="DIR", help="exported model folder (or one version of it)")
    source.add_argument("--tflite", metavar="FILE", help=".tflite file written by python -m export.tflite")
    parser.add_argument("--model-name", help="model name on the server (--grpc/--rest)")
    parser.add_argument("--signature", help="per-tile signature (default: the one the model description names)")
    parser.add_argument("--description", metavar="FILE",
                        help="model description JSON (default: asked from the model itself)")
    parser.add_argument("--batch", type=int, default=16, help="tiles per request (default 16)")
    parser.add_argument("--max-in-flight", type=int, default=4, help="concurrent requests (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (same seed, same image)")
    parser.add_argument("--panorama", action="store_true",
                        help="360 degree panorama, periodic with --width (InfinityGAN; the width must be a multiple "
                             "of its pixels per latent, 16 for the paper model)")
    parser.add_argument("--seeding", choices=("portable", "legacy"),
                        help="InfinityGAN's latent and noise fields: portable (the recipe any language "
                             "reimplements) or legacy (NumPy's: the images of seeds drawn before it); default: the "
                             "one the model description names")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--retries", type=int, default=6, help="attempts per request on transient errors")
    parser.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("width", "height"):  # the canvas engine's limit; the format's own (PNG: 32,767) is checked below
        check_side(f"--{name}", getattr(args, name))
    if not 1 <= args.batch <= MAX_BATCH:
        raise UserError(f"--batch must be between 1 and {MAX_BATCH} tiles, got {args.batch}")
    if not 1 <= args.max_in_flight <= MAX_IN_FLIGHT:
        raise UserError(f"--max-in-flight must be between 1 and {MAX_IN_FLIGHT}, got {args.max_in_flight}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if not args.timeout > 0:
        raise UserError(f"--timeout must be positive, got {args.timeout}")
    if not 1 <= args.retries <= 20:
        raise UserError(f"--retries must be between 1 and 20 attempts, got {args.retries}")
    if not 1 <= args.threads <= 64:
        raise UserError(f"--threads must be between 1 and 64, got {args.threads}")
    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out} must end in .png, .tif, .tiff or .dzi (the image format)")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; pass an image file name")
    from tfcoord.generation.writers import check_format

    check_format(FORMATS[out.suffix.lower()], args.width, args.height)
    if args.grpc or args.rest:
        flag = "--grpc" if args.grpc else "--rest"
        if not args.model_name:
            raise UserError(f"{flag} needs --model-name (the MODEL_NAME the server was started with)")
        if not MODEL_NAME.match(args.model_name):
            raise UserError(f"--model-name {args.model_name!r} is not a valid model name (letters, digits, _ . -)")
    if args.grpc:
        match = HOST_PORT.match(args.grpc)
        if not match or not 1 <= int(match.group(2)) <= 65535:
            raise UserError(f"--grpc {args.grpc!r} must be HOST:PORT, e.g. localhost:8500")
    if args.rest and not re.match(r"^https?://[^/\s]+(/\S*)?$", args.rest):
        raise UserError(f"--rest {args.rest!r} must be a URL like http://localhost:8501")
    if args.saved_model and not Path(args.saved_model).is_dir():
        raise UserError(f"--saved-model {args.saved_model} is not a folder; pass the --out folder of "
                        "python -m export.saved_model")
    if args.tflite and not Path(args.tflite).is_file():
        raise UserError(f"--tflite {args.tflite} does not exist; write it with python -m export.tflite")
    if args.description and not Path(args.description).is_file():
        raise UserError(f"--description {args.description} does not exist")
    return args


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow()
    from export.backends import RetryPolicy, parse_description
    from export.tiling import TilePlan

    retry = RetryPolicy(attempts=args.retries)
    backend = make_backend(args)
    try:
        if args.description:
            description = parse_description(Path(args.description).read_text(), args.description)
        else:
            description = retry.call(backend.description)
        plan = TilePlan(description, args.width, args.height, seed=args.seed, signature=args.signature,
                        panorama=args.panorama, seeding=args.seeding)
        bands = render_bands(backend, plan, batch_size=args.batch, max_in_flight=args.max_in_flight, retry=retry,
                             progress=not args.quiet)
        path = write_image(args.out, FORMATS[Path(args.out).suffix.lower()], args.width, args.height, bands)
    finally:
        backend.close()
    print(f"wrote {path} ({args.width}x{args.height}, {plan.num_tiles} tiles of {plan.tile_height}x"
          f"{plan.tile_width} from {backend.name}; {retry.retries} requests retried)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
