"""make_dataset: --data strings, argument checks, and the registry that new sources join."""

import numpy as np
import pytest
import tensorflow as tf

from tfcoord.data import SOURCES, Source, make_dataset
from tfcoord.data.pipeline import index_stream
from tfcoord.errors import UserError


@pytest.mark.parametrize("spec", ["", "landscapes", "s3://bucket/images", "synthetic-bird", "Folder:/tmp"])
def test_unknown_spec_lists_the_valid_forms(spec):
    with pytest.raises(UserError, match=r"synthetic-landscapes, folder:PATH, tfds:NAME\[/CONFIG\]\[:SPLIT\]"):
        make_dataset(spec, image_size=(8, 8), batch_size=1, seed=0)


@pytest.mark.parametrize("sizes", [dict(image_size=(0, 8)), dict(image_size=(8,)), dict(image_size=(8.5, 8)),
                                   dict(batch_size=0), dict(start_index=-1)])
def test_unusable_sizes_are_user_errors(sizes):
    arguments = dict(image_size=(8, 8), batch_size=1, seed=0) | sizes
    with pytest.raises(UserError):
        make_dataset("synthetic-landscapes", **arguments)


def test_a_registered_source_brings_its_conditions_along(monkeypatch):
    """The hook for later sources (e.g. synthetic-birds): a factory in SOURCES, extra keys in each element."""

    def chequerboards(argument):
        def elements(seed, start_index, training, image_size):
            def draw(index):
                board = tf.cast((tf.range(6)[:, None] + tf.range(10)[None, :]) % 2 * 255, tf.uint8)
                return index, {"image": tf.stack([board] * 3, axis=-1), "label": index % 3}
            return index_stream(start_index).map(draw)
        return Source(elements)

    monkeypatch.setitem(SOURCES, "chequerboards", ("chequerboards", chequerboards))
    batch = next(iter(make_dataset("chequerboards", image_size=(12, 20), batch_size=4, seed=0, start_index=5)))
    assert batch["image"].shape == (4, 12, 20, 3)
    np.testing.assert_array_equal(batch["label"], [2, 0, 1, 2])
