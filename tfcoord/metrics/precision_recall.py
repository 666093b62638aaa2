"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019, §3 eqs. 1-2).

Each set's manifold is the union of balls around its feature vectors, each ball's
radius the distance to that vector's k-th nearest neighbour in the same set (k = 3
in the paper). Precision is the fraction of generated samples inside the real
manifold; recall the fraction of real samples inside the generated manifold.

The paper uses VGG-16 features; tfcoord uses the same Inception pool features as FID
(as CIPS's evaluation does), so values are comparable between tfcoord runs, not
with the paper's tables. Cost: O(N^2 D) for N samples per set, computed in blocks of
at most 2^24 distances (128 MiB), plus the features (N x 2048 x 4 bytes per set).
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 3
_BLOCK_ELEMENTS = 1 << 24


def _squared_distances(a, b, b_norms) -> np.ndarray:
    a = np.asarray(a, np.float64)
    d = np.sum(a * a, axis=1)[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _blocks(num_rows: int, num_columns: int):
    step = max(1, _BLOCK_ELEMENTS // max(1, num_columns))
    return range(0, num_rows, step), step


def knn_radii_squared(features, k: int = DEFAULT_K) -> np.ndarray:
    """Squared distance of every sample to its k-th nearest neighbour in the same set (itself excluded)."""
    features = np.asarray(features, np.float64)
    if not 1 <= k < len(features):
        raise ValueError(f"k = {k} needs at least {k + 1} samples per set, got {len(features)}")
    norms = np.sum(features * features, axis=1)
    starts, step = _blocks(len(features), len(features))
    radii = np.empty(len(features))
    for start in starts:
        d = _squared_distances(features[start:start + step], features, norms)
        # Position 0 of the sorted row is the sample itself (distance 0); position k its k-th neighbour.
        radii[start:start + step] = np.partition(d, k, axis=1)[:, k]
    return radii


def coverage(queries, reference, reference_radii_squared) -> float:
    """Fraction of ``queries`` inside at least one reference ball."""
    queries, reference = np.asarray(queries, np.float64), np.asarray(reference, np.float64)
    norms = np.sum(reference * reference, axis=1)
    starts, step = _blocks(len(queries), len(reference))
    inside = 0
    for start in starts:
        d = _squared_distances(queries[start:start + step], reference, norms)
        inside += int(np.count_nonzero(np.any(d <= reference_radii_squared[None, :], axis=1)))
    return inside / len(queries)


def precision_recall(real, fake, k: int = DEFAULT_K) -> tuple[float, float]:
    """(precision, recall) of generated features ``fake`` against real features ``real``."""
    precision = coverage(fake, real, knn_radii_squared(real, k))
    recall = coverage(real, fake, knn_radii_squared(fake, k))
    return precision, recall


def compute(real, fake, *, pr_k: int = DEFAULT_K, **_) -> dict:
    """``{"precision": p, "recall": r}`` of two feature sets (``features`` kept)."""
    precision, recall = precision_recall(real.features, fake.features, pr_k)
    return {"precision": precision, "recall": recall}
