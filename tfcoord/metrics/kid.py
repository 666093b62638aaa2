"""Kernel Inception Distance (Bińkowski et al., ICLR 2018, "Demystifying MMD GANs", §4).

The unbiased estimate of the squared maximum mean discrepancy between the real and
generated Inception features with the cubic polynomial kernel
``k(x, y) = (x . y / d + 1)^3``, averaged over ``num_subsets`` random subsets of
``subset_size`` samples of each set (drawn without replacement within a subset):

    MMD^2 = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j) - 2/m^2 sum_{i,j} k(x_i, y_j)

Unlike FID it is unbiased, so small sample counts (1 000 - 10 000) give usable
numbers: tfcoord adds it for CI-scale checks (models.md §5). Memory: the features of
both sets (N x 2048 x 4 bytes each: 10 000 images, 82 MB) plus three m x m kernels.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000


def polynomial_kernel(a, b, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(a b^T / d + coef0)^degree`` (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a @ b.T / a.shape[1] + coef0) ** degree


def unbiased_mmd2(real, fake) -> float:
    """Unbiased MMD^2 of two equally sized samples under the polynomial kernel."""
    m = len(real)
    k_rr, k_ff, k_rf = polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)
    within = (k_rr.sum() - np.trace(k_rr) + k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
    return float(within - 2.0 * k_rf.sum() / (m * m))


def subset_indices(num_real: int, num_fake: int, num_subsets: int, subset_size: int, seed: int = 0):
    """The (real, fake) index arrays of every subset: ``default_rng(seed)``, real then fake per subset."""
    rng = np.random.default_rng(seed)
    for _ in range(num_subsets):
        yield rng.choice(num_real, subset_size, replace=False), rng.choice(num_fake, subset_size, replace=False)


def kernel_inception_distance(real, fake, num_subsets: int = DEFAULT_SUBSETS,
                              subset_size: int = DEFAULT_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over the subsets."""
    real, fake = np.asarray(real), np.asarray(fake)
    if subset_size < 2 or subset_size > min(len(real), len(fake)):
        raise ValueError(f"KID subset size {subset_size} must be between 2 and the smaller set "
                         f"({min(len(real), len(fake))} samples)")
    values = [unbiased_mmd2(real[r], fake[f])
              for r, f in subset_indices(len(real), len(fake), num_subsets, subset_size, seed)]
    return float(np.mean(values)), float(np.std(values))


def compute(real, fake, *, kid_subsets: int = DEFAULT_SUBSETS, kid_subset_size: int | None = None,
            seed: int = 0, **_) -> dict:
    """KID of two feature sets (``features`` kept): ``{"kid": mean, "kid_std": std, "kid_subset_size": m}``.

    The subset size defaults to 1000, or the smaller set if that has fewer samples.
    """
    size = kid_subset_size or min(DEFAULT_SUBSET_SIZE, real.count, fake.count)
    mean, std = kernel_inception_distance(real.features, fake.features, kid_subsets, size, seed)
    return {"kid": mean, "kid_std": std, "kid_subset_size": size}
