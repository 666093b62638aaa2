"""Realism of generated images against held-out renders, in the feature network's space.

:class:`QualityEvaluator` holds one domain's feature network and its real reference set
(renders of the ``reference`` split, featurised once per image size). Generated images
are compared with it by

* precision and recall on k-NN manifolds (Kynkäänniemi et al., NeurIPS 2019; k = 3,
  :mod:`tfcoord.metrics.precision_recall`), and
* KID, the unbiased MMD^2 with the cubic kernel (Bińkowski et al., ICLR 2018;
  :mod:`tfcoord.metrics.kid`), subsets of up to 1000 samples.

The ceiling of a run is the same comparison for a second set of real renders
(:meth:`QualityEvaluator.real_vs_real`); a generator that copies the data reaches it,
within the sampling noise of the set size.

Images larger than the real size (an InfinityGAN canvas of whole patches around an 85 px
training image) are centre-cropped to it first, as patch FID does
(:func:`tfcoord.metrics.views.centre_crop`); then the feature network resizes both sides to
its own size.
"""

from __future__ import annotations

import numpy as np

from tfcoord.metrics.kid import DEFAULT_SUBSETS, kernel_inception_distance
from tfcoord.metrics.precision_recall import DEFAULT_K, precision_recall
from tfcoord.metrics.quality.network import FeatureNetwork, Recipe, load_or_train


def distribution_scores(real_features, fake_features, k: int = DEFAULT_K, kid_subsets: int = DEFAULT_SUBSETS,
                        seed: int = 0) -> dict:
    """Precision, recall and KID (mean, std over subsets) of two feature sets."""
    precision, recall = precision_recall(real_features, fake_features, k)
    size = min(1000, len(real_features), len(fake_features))
    if len(real_features) == len(fake_features) == size:
        kid_subsets = 1  # every subset is the whole of both sets: one MMD^2 is all of them (std 0)
    kid, kid_std = kernel_inception_distance(real_features, fake_features, kid_subsets, size, seed)
    return {"precision": precision, "recall": recall, "kid": kid, "kid_std": kid_std}


class QualityEvaluator:
    """Realism scores of one embedded domain.

    Args:
        domain: ``synthetic-birds`` or ``synthetic-landscapes``.
        num_real: real reference renders (the generated set should be about as large: recall
            uses the generated samples' own k-NN radii).
        recipe: the feature network's :class:`~tfcoord.metrics.quality.network.Recipe`
            (default: the full one); ``network`` instead gives a loaded one.

    Example:
        >>> evaluator = QualityEvaluator("synthetic-landscapes", num_real=512)
        >>> evaluator.realism(to_uint8(model.sample_images(0, 512)), real_size=(32, 32))
        {'precision': ..., 'recall': ..., 'kid': ..., 'kid_std': ...}
    """

    def __init__(self, domain: str, num_real: int, recipe: Recipe | None = None,
                 network: FeatureNetwork | None = None):
        self.network = network or load_or_train(domain, recipe)
        self.domain, self.num_real = self.network.domain, num_real
        self._reference = {}

    def reference(self, real_size=None):
        """(ground truth, features) of the ``num_real`` reference renders at ``real_size`` (default: the domain's)."""
        real_size = tuple(real_size or self.domain.size)
        if real_size not in self._reference:
            truth = self.domain.render("reference", self.num_real, real_size)
            self._reference[real_size] = truth, self.network.features(truth.images)
        return self._reference[real_size]

    def realism(self, images, real_size=None, seed: int = 0) -> dict:
        """Precision, recall and KID of uint8 ``images`` against the reference renders at ``real_size``."""
        from tfcoord.metrics.views import centre_crop

        real_size = tuple(real_size or self.domain.size)
        images = np.asarray(images)
        if images.shape[1:3] != real_size:
            images = centre_crop(images, *real_size)
        _, real_features = self.reference(real_size)
        return distribution_scores(real_features, self.network.features(images), seed=seed)

    def real_vs_real(self, real_size=None, seed: int = 0) -> dict:
        """The ceiling: :meth:`realism` of ``num_real`` other real renders (the ``second`` split)."""
        second = self.domain.render("second", self.num_real, real_size or self.domain.size)
        return self.realism(second.images, real_size, seed)
