"""The ``tfds:NAME[/CONFIG][:SPLIT]`` source: a locally prepared TensorFlow Datasets set.

SPLIT is passed to ``tfds.load`` as written, so split expressions work: ``train[:152599]``
(a paper's training subset), ``train[152599:]+validation+test`` (its held-out rest).

Nothing is downloaded (``download=False``). The examples come in the data set's fixed
order (``shuffle_files=False``), so a resumed run finds its place with ``skip``; crops
and flips still vary per global index. The ``image`` feature is used, and ``bbox``
(one box, tfds order ``ymin, xmin, ymax, xmax``) and ``label`` travel along when present.
"""

import difflib
import os

import tensorflow as tf

from tfcoord.data.pipeline import Source, index_stream
from tfcoord.errors import UserError

_CONDITIONS = {"bbox": [4], "label": []}  # feature -> the shape we pass through


def _prepare_hint(name: str) -> str:
    return (f"prepare it once with internet access: `tfds build {name}` or "
            f"`python -c \"import tensorflow_datasets as tfds; tfds.load('{name}')\"`, "
            "and point TFDS_DATA_DIR (tfds build --data_dir) at its folder if it is not ~/tensorflow_datasets")


def _load(name: str, split: str):
    """``tfds.load`` without download, turning its failures into UserErrors."""
    import tensorflow_datasets as tfds  # imported here: it costs seconds and only this source needs it

    # tfds reads TFDS_DATA_DIR once at import; reading it here honours later changes too.
    data_dir = os.environ.get("TFDS_DATA_DIR") or None
    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False, shuffle_files=False,
                         with_info=True)
    except tfds.core.registered.DatasetNotFoundError:
        base_name = name.split("/")[0]
        # Prepared data sets in data_dir are listed a second time: drop duplicates.
        close = difflib.get_close_matches(base_name, list(dict.fromkeys(tfds.list_builders())), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown tfds data set {base_name!r}; {hint}"
                        "see `tfds.list_builders()` for the names") from None
    except AssertionError as error:  # tfds asserts that prepared files exist
        if "could not find data" not in str(error):
            raise
        raise UserError(f"tfds data set {name!r} is not prepared under {data_dir or '~/tensorflow_datasets'}; "
                        f"{_prepare_hint(name)}") from None
    except ValueError as error:  # unknown config or split
        one_line = " ".join(str(error).split()).rstrip(":")
        raise UserError(f"cannot load tfds:{name}:{split}: {one_line}; "
                        "fix the config or split (tfds:NAME[/CONFIG][:SPLIT])") from None


def _to_element(example) -> dict:
    """The image as uint8 RGB plus the conditions this library understands."""
    image = example["image"]
    if image.dtype != tf.uint8:
        image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
    channels = image.shape[-1]
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 4:
        image = image[..., :3]
    element = {"image": image}
    for key, shape in _CONDITIONS.items():
        if key in example and example[key].shape.as_list() == shape:
            element[key] = example[key]
    return element


def source(argument: str | None) -> Source:
    """The tfds source; loads (without download) now so a missing data set stops the run at once."""
    name, _, split = (argument or "").partition(":")
    if not name:
        raise UserError("'tfds' needs a data set name: pass --data tfds:NAME[/CONFIG][:SPLIT], e.g. tfds:celeb_a")
    split = split or "train"
    examples, info = _load(name, split)
    if "image" not in examples.element_spec:
        raise UserError(f"tfds data set {name!r} has no 'image' feature; choose an image data set")
    try:
        epoch_length = info.splits[split].num_examples or None
    except (KeyError, ValueError):  # mocked or unusual splits do not know their length
        epoch_length = None

    def elements(seed, start_index, training, image_size):
        stream = examples.repeat() if training else examples
        # Every epoch has the same order, so only the position within an epoch must be skipped.
        offset = start_index % epoch_length if training and epoch_length else start_index
        stream = stream.skip(offset).map(_to_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return tf.data.Dataset.zip(index_stream(start_index), stream)

    return Source(elements)
