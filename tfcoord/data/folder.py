"""The ``folder:PATH`` source: every jpg/jpeg/png/webp image below a folder.

Files are decoded with PIL (``tf.io.decode_image`` cannot read WebP) and converted
from any mode to 8-bit RGB. Unreadable files are found up front and skipped with
one warning; a file that still fails later is replaced by the next readable one, so
the stream keeps its length and stays resumable.
"""

import concurrent.futures
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from tfcoord.data.pipeline import AUTOTUNE, Source, epoch_order
from tfcoord.errors import UserError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
_ACCEPTED = "/".join(extension[1:] for extension in EXTENSIONS)
_EXAMPLES_SHOWN = 3
_log = logging.getLogger(__name__)


def find_images(root: Path) -> list[str]:
    """Image files below ``root`` (any depth, extensions in any case), sorted so the order is reproducible."""
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found.extend(os.path.join(folder, name) for name in names if name.lower().endswith(EXTENSIONS))
    return sorted(found)


def _looks_complete(path: str) -> bool:
    """Cheap end-of-file checks for the formats whose ``verify()`` does not read to the end."""
    with open(path, "rb") as file:
        header = file.read(12)
        file.seek(-2, os.SEEK_END)
        tail = file.read(2)
    if header.startswith(b"\xff\xd8"):  # JPEG: a complete file ends with the EOI marker
        return tail == b"\xff\xd9"
    if header.startswith(b"RIFF") and header[8:12] == b"WEBP":  # RIFF records the file's length
        return int.from_bytes(header[4:8], "little") + 8 <= os.path.getsize(path)
    return True


def is_readable(path: str) -> bool:
    """Whether PIL can read ``path``: ``verify()`` plus an end check, a full decode only when that check fails."""
    # PIL reports broken files with many exception types (OSError, SyntaxError, ValueError, ...).
    try:
        with Image.open(path) as image:
            image.verify()
        if not _looks_complete(path):
            with Image.open(path) as image:
                image.load()  # JPEGs may carry data after EOI; only a failed decode is proof
        return True
    except Exception:
        return False


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode as uint8 RGB ``(h, w, 3)``: 16-bit scaled to 8 bits, transparency composited on white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = np.asarray(image, np.float32)
        if image.mode.startswith("I;16") or grey.max() > 255:  # PIL's convert("RGB") would clip instead
            grey = grey / 257.0
        elif image.mode == "F" and grey.max() <= 1.0:
            grey = grey * 255.0
        return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("RGB"))


def read_image(path: str, image_size: tuple[int, int]) -> np.ndarray:
    """The upright uint8 RGB pixels of ``path``, JPEGs decoded at the smallest scale still covering
    ``image_size`` (its shorter side at least ``max(image_size)``); ``(0, 0)``: at full resolution."""
    with Image.open(path) as image:
        if max(image_size) > 0:  # (0, 0): a crop in the file's own pixels needs them all
            # One factor for both orientations, since EXIF may rotate the image by 90 degrees.
            factor = max(image_size) / min(image.size)
            image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
        return to_rgb(ImageOps.exif_transpose(image))


def read_or_next(paths, image_size, item) -> tuple[int, np.ndarray]:
    """``(index, pixels)`` of image ``item``, or of the next readable one if it fails (rare: files are checked
    up front), so that the stream keeps its length."""
    for offset in range(len(paths)):
        index = (int(item) + offset) % len(paths)
        try:
            return index, read_image(paths[index], image_size)
        except Exception:  # PIL's many exception types, as in is_readable
            _log.warning("cannot decode %s; using the next image in its place", paths[index])
    raise RuntimeError(f"none of the {len(paths)} images can be decoded any more")


def _check_all(paths: list[str]) -> tuple[list[str], list[str]]:
    """The readable and unreadable paths; reading overlaps on threads because it is I/O bound."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        readable = list(pool.map(is_readable, paths))
    return [p for p, ok in zip(paths, readable) if ok], [p for p, ok in zip(paths, readable) if not ok]


def source(argument: str | None) -> Source:
    """The ``folder:PATH`` source; checks the folder now so problems surface before training starts."""
    if not argument:
        raise UserError(f"'folder' needs a path: pass --data folder:PATH with a folder of {_ACCEPTED} images")
    root = Path(argument).expanduser()
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist or is not a folder; "
                        f"pass --data folder:PATH with a folder of {_ACCEPTED} images")
    paths, broken = _check_all(find_images(root))
    if broken:
        examples = ", ".join(broken[:_EXAMPLES_SHOWN]) + (", ..." if len(broken) > _EXAMPLES_SHOWN else "")
        warnings.warn(f"skipping {len(broken)} unreadable or corrupt image file(s) in {root}: {examples}",
                      stacklevel=2)
    if not paths:
        raise UserError(f"no readable images in {root} (searched all sub-folders for {_ACCEPTED} files, any case); "
                        "add images there or point --data folder:PATH at the folder that holds them")

    def elements(seed, start_index, training, image_size):
        def read(item):
            return read_or_next(paths, image_size, item)[1]

        def load(index, item):
            image = tf.numpy_function(read, [item], tf.uint8, stateful=False)
            return index, {"image": tf.ensure_shape(image, [None, None, 3])}

        order = epoch_order(len(paths), seed, start_index, training)
        return order.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)

    return Source(elements, reduced_decode=True)
