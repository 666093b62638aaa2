"""Evaluation metrics: a registry with one module per metric family.

========================  =========================================================  ==========
name                      what                                                       module
========================  =========================================================  ==========
``fid``                   Fréchet Inception Distance (Heusel et al. 2017)            fid
``kid``                   Kernel Inception Distance, unbiased (Bińkowski et al. 2018) kid
``pr``                    precision / recall, k-NN manifolds (Kynkäänniemi 2019)    precision_recall
``scaleinv-fid``          InfinityGAN's ScaleInv FID x k                             fid + views
``patch-fid``             InfinityGAN's patch FID                                    fid + views
========================  =========================================================  ==========

Each metric module defines ``compute(real, fake, **options) -> dict`` on two
:class:`~tfcoord.metrics.fid.FeatureSet` objects; :mod:`tfcoord.metrics.views` says
which images are compared; :mod:`tfcoord.metrics.evaluation` streams images through
the pinned feature extractor (:mod:`tfcoord.metrics.inception`) and caches the real
side (:mod:`tfcoord.metrics.stats_cache`). Importing this package does not import
TensorFlow, so command lines validate quickly.
"""

from __future__ import annotations

import dataclasses
import importlib

from tfcoord.config import closest
from tfcoord.errors import UserError


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    description: str
    module: str  # defines compute(real, fake, **options) -> dict
    view: str  # key of tfcoord.metrics.views.VIEWS
    needs_features: bool  # keeps every feature vector (KID, PR) rather than only mean/covariance
    headline: str  # the result printed first; lower is better for fid/kid
    lower_is_better: bool = True

    def compute(self, real, fake, **options) -> dict:
        return importlib.import_module(self.module).compute(real, fake, **options)


METRICS = {
    "fid": Metric("fid", "Fréchet Inception Distance", "tfcoord.metrics.fid", "images", False, "fid"),
    "kid": Metric("kid", "Kernel Inception Distance (unbiased MMD^2, cubic kernel, subsets)",
                  "tfcoord.metrics.kid", "images", True, "kid"),
    "pr": Metric("pr", "improved precision and recall (k-NN manifolds)", "tfcoord.metrics.precision_recall",
                 "images", True, "precision", lower_is_better=False),
    "scaleinv-fid": Metric("scaleinv-fid", "InfinityGAN ScaleInv FID (generate larger, rescale, crop, resize)",
                           "tfcoord.metrics.fid", "scaleinv", False, "fid"),
    "patch-fid": Metric("patch-fid", "InfinityGAN patch FID (patches vs centre-cropped real patches)",
                        "tfcoord.metrics.fid", "patches", False, "fid"),
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise UserError(f"unknown metric '{name}'{closest(name, METRICS)}; choose one of {', '.join(METRICS)}")
    return METRICS[name]
