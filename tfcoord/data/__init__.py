"""Training data: one ``--data`` string in, an endless, resumable batch stream out.

``make_dataset`` turns a spec such as ``synthetic-landscapes``, ``folder:PATH`` or
``tfds:NAME[/CONFIG][:SPLIT]`` into batches of dicts: ``"image"`` float32
``(batch, H, W, 3)`` in [-1, 1], plus whatever conditions the source provides
(``"bbox"``, ``"label"``, ...). New sources register in ``SOURCES``.

Example:
    >>> batches = make_dataset("synthetic-landscapes", image_size=(64, 96), batch_size=8, seed=0)
    >>> next(iter(batches))["image"].shape
    TensorShape([8, 64, 96, 3])
"""

from typing import Callable

import tensorflow as tf

from tfcoord.data import folder, pipeline, synthetic_birds, synthetic_landscapes, tfds_source
from tfcoord.data.gawwn import annotations
from tfcoord.data.pipeline import Source
from tfcoord.data.synthetic_landscapes import render_landscape
from tfcoord.errors import UserError

# Source name -> (the form users write, factory taking the text after "name:" or None).
SOURCES: dict[str, tuple[str, Callable[[str | None], Source]]] = {
    "synthetic-landscapes": ("synthetic-landscapes", synthetic_landscapes.source),
    "folder": ("folder:PATH", folder.source),
    "tfds": ("tfds:NAME[/CONFIG][:SPLIT]", tfds_source.source),
    "synthetic-birds": ("synthetic-birds", synthetic_birds.source),
    "annotations": ("annotations:FILE.jsonl", annotations.source),
}

__all__ = ["SOURCES", "Source", "make_dataset", "parse_source", "render_landscape"]


def parse_source(spec: str) -> Source:
    """The source a ``--data`` string names, with its argument already checked."""
    name, colon, argument = spec.partition(":")
    if name not in SOURCES:
        forms = ", ".join(form for form, _ in SOURCES.values())
        raise UserError(f"unknown --data {spec!r}; use one of: {forms}")
    _, factory = SOURCES[name]
    return factory(argument if colon else None)


def _check_sizes(image_size, batch_size, start_index) -> tuple[int, int]:
    """``image_size`` as a (height, width) pair of ints, after checking all sizes are usable."""
    if len(image_size) != 2 or not all(int(side) == side and side >= 1 for side in image_size):
        raise UserError(f"image size {image_size!r} is not (height, width) in positive pixels; fix the model's size")
    if batch_size < 1:
        raise UserError(f"batch size {batch_size} is below 1; set a positive batch size")
    if start_index < 0:
        raise UserError(f"start index {start_index} is negative; resume from a step >= 0")
    return int(image_size[0]), int(image_size[1])


def make_dataset(spec: str, *, image_size: tuple[int, int], batch_size: int, seed: int,
                 start_index: int = 0, training: bool = True, preprocessing=None) -> tf.data.Dataset:
    """Batches of the ``spec`` data at ``image_size``, from element ``start_index`` on.

    The stream is a pure function of ``(spec, image_size, seed)``: with
    ``start_index=k * batch_size`` it yields exactly batch ``k`` onwards of the stream
    from 0, which is how a resumed run continues with the same data.

    Args:
        spec: ``synthetic-landscapes``, ``folder:PATH`` or ``tfds:NAME[/CONFIG][:SPLIT]``.
        image_size: ``(height, width)`` of the images produced.
        batch_size: images per batch; the last incomplete batch is dropped.
        seed: decides the file order of every epoch and every crop and flip.
        start_index: global index of the first element.
        training: endless stream with random crops and flips; otherwise one pass
            (endless for synthetic sources) with centre crops.
        preprocessing: a :class:`tfcoord.config.DataConfig` whose resize, crop and flip
            settings apply (default: its defaults, the largest window of ``image_size``'s
            aspect ratio, random offset and flip when training).

    Returns:
        A ``tf.data.Dataset`` of dicts with ``"image"`` float32 ``(batch, H, W, 3)``
        in [-1, 1] and any conditions of the source.
    """
    image_size = _check_sizes(image_size, batch_size, start_index)
    return pipeline.build(parse_source(spec), image_size=image_size, batch_size=batch_size, seed=seed,
                          start_index=start_index, training=training, preprocessing=preprocessing)


def first_elements(spec: str, *, image_size: tuple[int, int], num: int, seed: int, start_index: int = 0) -> dict:
    """``num`` evaluation elements of the ``spec`` data from ``start_index`` on (``training=False``), as
    NumPy arrays: the fixed real images and conditions that sample grids and calibration sets show."""
    data = make_dataset(spec, image_size=image_size, batch_size=num, seed=seed, start_index=start_index,
                        training=False)
    return {key: value.numpy() for key, value in next(iter(data.take(1))).items()}
