"""Fréchet Inception Distance (Heusel et al., NeurIPS 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium", eq. 6).

``FID = |mu_r - mu_g|^2 + Tr(S_r) + Tr(S_g) - 2 Tr((S_r S_g)^(1/2))`` for the means and
covariances of the Inception features of the real and generated sets.

The statistics stream: :class:`RunningStatistics` keeps a sum and a sum of outer
products (float64, shifted by the first batch's mean against cancellation), so 50 000
images cost one D x D matrix (2048^2 x 8 bytes = 32 MiB), never the feature list.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class FeatureSet:
    """What a metric knows about one image set: mean, covariance and count; features if kept."""

    mean: np.ndarray  # (D,) float64
    cov: np.ndarray  # (D, D) float64, unbiased (divided by count - 1)
    count: int
    features: np.ndarray | None = None  # (count, D) float32, for KID and precision/recall


class RunningStatistics:
    """Mean and unbiased covariance of feature batches seen one at a time (float64).

    Optionally keeps the features (float32) for metrics that need them.
    """

    def __init__(self, keep_features: bool = False):
        self.count = 0
        self.shift = None
        self.sum = None
        self.outer = None
        self.kept = [] if keep_features else None

    def update(self, features) -> None:
        batch = np.asarray(features, np.float64)
        if batch.ndim != 2:
            raise ValueError(f"features must be (batch, dim), got shape {batch.shape}")
        if not len(batch):
            return
        if self.shift is None:
            self.shift = batch.mean(axis=0)
            dim = batch.shape[1]
            self.sum = np.zeros(dim)
            self.outer = np.zeros((dim, dim))
        centred = batch - self.shift
        self.sum += centred.sum(axis=0)
        self.outer += centred.T @ centred
        self.count += len(batch)
        if self.kept is not None:
            self.kept.append(np.asarray(features, np.float32))

    def result(self) -> FeatureSet:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        mean_shifted = self.sum / self.count
        cov = (self.outer - self.count * np.outer(mean_shifted, mean_shifted)) / (self.count - 1)
        cov = (cov + cov.T) / 2.0  # exact symmetry; the sums are symmetric up to rounding
        features = np.concatenate(self.kept) if self.kept is not None else None
        return FeatureSet(mean=self.shift + mean_shifted, cov=cov, count=self.count, features=features)


def feature_set(features, keep_features: bool = False) -> FeatureSet:
    """The :class:`FeatureSet` of an in-memory (N, D) feature array."""
    stats = RunningStatistics(keep_features)
    stats.update(features)
    return stats.result()


def trace_sqrt_product(cov_a, cov_b) -> float:
    """``Tr((A B)^(1/2))`` for symmetric positive semi-definite A and B.

    ``A B`` is similar to ``A^(1/2) B A^(1/2)``, which is symmetric PSD, so the trace of
    the square root is the sum of the square roots of that matrix's eigenvalues.
    Symmetric eigendecompositions are stable even for the singular covariances of
    fewer samples than dimensions (where ``scipy.linalg.sqrtm`` of ``A B`` may turn complex).
    """
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance(mean_a, cov_a, mean_b, cov_b) -> float:
    """The Fréchet distance between the Gaussians N(mean_a, cov_a) and N(mean_b, cov_b)."""
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape:
        raise ValueError(f"statistics of different feature sizes: {mean_a.shape} vs {mean_b.shape}")
    diff = mean_a - mean_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt_product(cov_a, cov_b))
    return max(value, 0.0)  # a squared distance; tiny negatives are rounding


def compute(real: FeatureSet, fake: FeatureSet, **_) -> dict:
    """The FID of two feature sets: ``{"fid": value}``."""
    return {"fid": frechet_distance(real.mean, real.cov, fake.mean, fake.cov)}
