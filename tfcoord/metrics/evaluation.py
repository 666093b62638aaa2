"""Streaming a metric: real and generated images -> features -> statistics -> the metric.

Images are produced and featurised one batch at a time; only running sums (and, for
KID/PR, the feature vectors) are kept, so memory does not grow with the image count
for FID. The real side is cached (:mod:`tfcoord.metrics.stats_cache`). The generated
set is a pure function of ``(seed, batch)``: batch ``i`` is
``view.generate(batch_seed(seed, i), n)``.
"""

from __future__ import annotations

import sys

import numpy as np

from tfcoord.errors import UserError, warn
from tfcoord.metrics import Metric, stats_cache
from tfcoord.metrics.fid import FeatureSet, RunningStatistics
from tfcoord.metrics.inception import feature_network
from tfcoord.metrics.views import VIEWS


def batch_seed(seed: int, index: int) -> int:
    """Independent latent seed of generated batch ``index`` (a non-negative 31-bit int)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


def real_image_batches(spec: str, image_size, count: int, batch: int, preprocessing=None):
    """Up to ``count`` real images of ``spec`` at ``image_size`` in [-1, 1], in batches (the last may be short).

    One pass in the source's natural order (``training=False``): the ``preprocessing`` recipe (a
    :class:`tfcoord.config.DataConfig`) with its crops centred and no flip, or, without one, the
    centred largest window.
    """
    from tfcoord.data import make_dataset

    images = make_dataset(spec, image_size=tuple(image_size), batch_size=1, seed=0, training=False,
                          preprocessing=preprocessing)
    images = images.unbatch().take(count).batch(batch)
    for element in images.as_numpy_iterator():
        yield element["image"]


def featurize(batches, extractor, total: int, keep_features: bool, description: str,
              progress: bool = True) -> FeatureSet:
    """Feed image batches through ``extractor``; returns their :class:`FeatureSet`."""
    from tqdm import tqdm

    stats = RunningStatistics(keep_features)
    with tqdm(total=total, desc=description, unit="img", disable=not progress, file=sys.stderr,
              dynamic_ncols=True) as bar:
        for images in batches:
            images = np.asarray(images, np.float32)
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"expected (batch, height, width, 3) images, got shape {images.shape}")
            if not np.all(np.isfinite(images)):
                raise UserError(f"{description}: the images contain NaN or infinite values "
                                "(a diverged checkpoint?); evaluate an earlier checkpoint")
            stats.update(extractor(images))
            bar.update(len(images))
    if stats.count < 2:
        raise UserError(f"{description}: {stats.count} image(s) is too few for statistics; use at least 2")
    return stats.result()


def training_recipe(config, real: str):
    """The run's DataConfig when ``real`` is its own training data (so the real images are cut as the paper's
    recipe cuts them), else None (the centred largest window)."""
    return config.data if real == config.data.source else None


class Evaluation:
    """One metric of one model against one real data set.

    Args:
        metric: a :class:`~tfcoord.metrics.Metric`.
        model: a built model (only the generation hooks of :mod:`~tfcoord.metrics.views` are used).
        real: the real data spec (``folder:PATH``, ``tfds:...``, ``synthetic-landscapes``).
        num_real: real images to use (fewer if the data set is smaller, with a warning).
        batch: images per generator / extractor call.
        extractor: see :func:`tfcoord.metrics.inception.load_extractor`.
        options: metric and view options (``kid_subsets``, ``kid_subset_size``, ``pr_k``,
            ``patch_size``, ``scale``, ``fov``).
        use_cache: read and write the real-statistics cache.
        preprocessing: the run's :class:`tfcoord.config.DataConfig` when ``real`` is its training
            data, so the real images are cut as the paper's recipe cuts them (e.g. COCO-GAN's CelebA
            face crop); None for the centred largest window.
    """

    def __init__(self, metric: Metric, model, real: str, *, num_real: int, batch: int, extractor,
                 options: dict | None = None, use_cache: bool = True, progress: bool = True, preprocessing=None):
        self.metric, self.model, self.real, self.num_real, self.batch = metric, model, real, num_real, batch
        self.preprocessing = preprocessing
        self.extractor = extractor
        self.options = dict(options or {})
        self.view = VIEWS[metric.view](model, self.options)
        self.use_cache, self.progress = use_cache, progress
        self.cache_hit = False
        self._real_stats = None

    def real_description(self) -> dict:
        return stats_cache.describe(extractor_fingerprint=self.extractor.fingerprint, spec=self.real,
                                    image_size=self.view.real_size, count=self.num_real, view=self.view.describe(),
                                    preprocessing=self.preprocessing)

    def real_statistics(self) -> FeatureSet:
        if self._real_stats is not None:
            return self._real_stats
        description = self.real_description()
        cached = stats_cache.load(description, self.metric.needs_features) if self.use_cache else None
        self.cache_hit = cached is not None
        if cached is None:
            batches = (self.view.cut_real(images)
                       for images in real_image_batches(self.real, self.view.real_size, self.num_real, self.batch,
                                                        self.preprocessing))
            cached = featurize(batches, self.extractor, self.num_real, self.metric.needs_features,
                               f"real {self.real}", self.progress)
            if cached.count < self.num_real:
                warn(f"{self.real} holds only {cached.count} images (asked for {self.num_real}); "
                     "using all of them")
            if self.use_cache:
                stats_cache.save(description, cached)
        self._real_stats = cached
        return cached

    def generated_statistics(self, num: int, seed: int) -> FeatureSet:
        def batches():
            for index, start in enumerate(range(0, num, self.batch)):
                count = min(self.batch, num - start)
                images = np.asarray(self.view.generate(batch_seed(seed, index), count))
                if len(images) != count:
                    raise ValueError(f"the model returned {len(images)} images, {count} were asked for")
                yield images

        return featurize(batches(), self.extractor, num, self.metric.needs_features,
                         f"generated ({self.model.name})", self.progress)

    def run(self, num: int, seed: int = 0) -> dict:
        """The metric's results plus what they were computed on."""
        real = self.real_statistics()
        fake = self.generated_statistics(num, seed)
        if self.metric.needs_features and real.features is None:
            raise RuntimeError("cached real statistics lack the features this metric needs")
        results = self.metric.compute(real, fake, seed=seed, **self.options)
        # feature_network says which Inception the numbers come from: only "pytorch-fid" values
        # are comparable with published FIDs (docs/fid.md); "features" pins the exact weights.
        return {"metric": self.metric.name, **results, "feature_network": feature_network(self.extractor),
                "num_generated": fake.count, "num_real": real.count, "real": self.real,
                "features": self.extractor.fingerprint, "view": self.view.summary(), "seed": seed,
                "real_statistics_cached": self.cache_hit}
