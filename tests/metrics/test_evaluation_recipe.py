"""Real statistics follow the run's paper recipe (data.resize / crop), and the cache key says so."""

import numpy as np
from PIL import Image

from tfcoord.config import DataConfig
from tfcoord.metrics import stats_cache
from tfcoord.metrics.evaluation import real_image_batches


def test_real_images_are_cut_with_the_recipe_and_keyed_by_it(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rows, cols = np.meshgrid(np.arange(40), np.arange(30), indexing="ij")
    pixels = np.stack([rows * 6, cols * 8, np.zeros_like(rows)], axis=-1).astype(np.uint8)  # red: row, green: col
    Image.fromarray(pixels).save(folder / "0.png")
    spec = f"folder:{folder}"
    recipe = DataConfig(source=spec, crop="fixed", crop_size=8, crop_offset=(5, 3), flip=True)

    [cut] = list(real_image_batches(spec, (8, 8), count=1, batch=1, preprocessing=recipe))
    expected = pixels[5:13, 3:11].astype(np.float32) / 127.5 - 1.0  # the fixed window, never flipped
    np.testing.assert_allclose(cut[0], expected, atol=1e-6)
    [centred] = list(real_image_batches(spec, (8, 8), count=1, batch=1))
    assert np.abs(centred[0] - expected).max() > 0.1  # without the recipe: the centred largest window

    def key(preprocessing):
        return stats_cache.cache_key(stats_cache.describe(extractor_fingerprint="x", spec=spec, image_size=(8, 8),
                                                          count=1, view={}, preprocessing=preprocessing))

    assert key(None) == key(DataConfig(source=spec))  # the default recipe keeps existing cache entries valid
    assert key(recipe) != key(None)
    assert key(recipe) == key(DataConfig(source=spec, crop="fixed", crop_size=8, crop_offset=(5, 3), flip=False))
