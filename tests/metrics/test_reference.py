"""FID, KID and precision/recall equal straightforward NumPy/SciPy references on synthetic features."""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from tfcoord.metrics import fid, kid, precision_recall
from tfcoord.metrics.fid import RunningStatistics, feature_set, frechet_distance


def synthetic_features(seed, n, dim, shift=0.0, scale=1.0):
    """Correlated, non-Gaussian features (a ReLU of a random linear map, like pooled activations)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return np.maximum(rng.normal(size=(n, dim)) @ mixing * scale + shift, 0.0) + 0.1 * rng.random((n, dim))


def reference_fid(a, b):
    """The pytorch-fid / TTUR formula with scipy.linalg.sqrtm."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
    covmean = covmean.real
    diff = mu_a - mu_b
    return diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean)


@pytest.mark.parametrize("n, dim, shift, scale", [(400, 16, 0.3, 1.0), (1500, 64, 0.0, 1.5), (3000, 128, 1.0, 0.5)])
def test_fid_equals_the_scipy_reference(n, dim, shift, scale):
    real = synthetic_features(1, n, dim)
    fake = synthetic_features(2, n + 37, dim, shift, scale)
    ours = fid.compute(feature_set(real), feature_set(fake))["fid"]
    expected = reference_fid(real, fake)
    assert expected > 0.1
    assert abs(ours - expected) <= 1e-6 * expected, (ours, expected)


def test_fid_of_a_set_against_itself_is_zero():
    features = synthetic_features(3, 2000, 64)
    stats = feature_set(features)
    assert frechet_distance(stats.mean, stats.cov, stats.mean, stats.cov) < 1e-9 * np.trace(stats.cov)
    # The same set in another order and batching: still ~0.
    shuffled = np.random.default_rng(0).permutation(features)
    other = RunningStatistics()
    for chunk in np.array_split(shuffled, 7):
        other.update(chunk)
    other = other.result()
    assert frechet_distance(stats.mean, stats.cov, other.mean, other.cov) < 1e-9 * np.trace(stats.cov)


def test_fewer_samples_than_dimensions_stays_finite_and_non_negative():
    a, b = synthetic_features(4, 20, 64), synthetic_features(5, 30, 64)
    value = fid.compute(feature_set(a), feature_set(b))["fid"]
    assert np.isfinite(value) and value >= 0.0


@pytest.mark.parametrize("splits", [[5000], [1, 2, 4997], [1000] * 5, [2, 4998]])
def test_streaming_statistics_equal_numpy_in_any_batching(splits):
    features = synthetic_features(6, 5000, 32, shift=50.0)  # a large mean tests cancellation
    stats = RunningStatistics(keep_features=True)
    start = 0
    for size in splits:
        stats.update(features[start:start + size])
        start += size
    result = stats.result()
    np.testing.assert_allclose(result.mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.cov, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)
    assert result.count == 5000
    np.testing.assert_array_equal(result.features, features.astype(np.float32))


def reference_kid(real, fake, num_subsets, subset_size, seed):
    """Bińkowski et al. eq. for the unbiased MMD^2, written with explicit sums over index pairs."""
    rng = np.random.default_rng(seed)
    dim = real.shape[1]

    def k(x, y):
        return (np.dot(x, y) / dim + 1.0) ** 3

    values = []
    for _ in range(num_subsets):
        x = real[rng.choice(len(real), subset_size, replace=False)]
        y = fake[rng.choice(len(fake), subset_size, replace=False)]
        m = subset_size
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
        values.append(xx + yy - 2.0 * xy)
    return float(np.mean(values)), float(np.std(values))


def test_kid_equals_the_numpy_reference():
    real = synthetic_features(7, 300, 12)
    fake = synthetic_features(8, 250, 12, shift=0.2)
    mean, std = kid.kernel_inception_distance(real, fake, num_subsets=4, subset_size=40, seed=3)
    ref_mean, ref_std = reference_kid(real, fake, 4, 40, 3)
    assert abs(mean - ref_mean) <= 1e-6 * abs(ref_mean), (mean, ref_mean)
    assert abs(std - ref_std) <= 1e-6 * ref_std + 1e-12
    result = kid.compute(feature_set(real, True), feature_set(fake, True), kid_subsets=4, kid_subset_size=40, seed=3)
    # Kept features are float32 (half the memory): equal to float32 rounding.
    assert result["kid"] == pytest.approx(mean, rel=1e-6) and result["kid_subset_size"] == 40


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    a, b = synthetic_features(9, 1000, 16), synthetic_features(10, 1000, 16)
    same, _ = kid.kernel_inception_distance(a[:500], a[500:], num_subsets=20, subset_size=200)
    different, _ = kid.kernel_inception_distance(a, synthetic_features(11, 1000, 16, shift=0.5),
                                                 num_subsets=20, subset_size=200)
    assert abs(same) < 0.2 * different
    assert different > 0


def test_kid_default_subset_size_follows_small_sets():
    a, b = feature_set(synthetic_features(12, 60, 8), True), feature_set(synthetic_features(13, 80, 8), True)
    assert kid.compute(a, b, kid_subsets=3)["kid_subset_size"] == 60
    with pytest.raises(ValueError, match="subset size"):
        kid.kernel_inception_distance(a.features, b.features, subset_size=61)


def reference_precision_recall(real, fake, k):
    real_radii = np.sort(cdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(cdist(fake, fake), axis=1)[:, k]
    precision = np.mean([np.any(cdist(g[None], real)[0] <= real_radii) for g in fake])
    recall = np.mean([np.any(cdist(r[None], fake)[0] <= fake_radii) for r in real])
    return precision, recall


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_equal_brute_force(k, monkeypatch):
    monkeypatch.setattr(precision_recall, "_BLOCK_ELEMENTS", 1000)  # exercise the blocked loops
    real = synthetic_features(14, 300, 10)
    fake = synthetic_features(15, 200, 10, shift=0.4, scale=1.3)
    ours = precision_recall.precision_recall(real, fake, k)
    assert ours == pytest.approx(reference_precision_recall(real, fake, k), abs=1e-12)
    assert 0.0 < ours[0] < 1.0 and 0.0 < ours[1] < 1.0


def test_precision_recall_of_identical_and_disjoint_sets():
    real = synthetic_features(16, 200, 8)
    assert precision_recall.precision_recall(real, real.copy(), 3) == (1.0, 1.0)
    assert precision_recall.precision_recall(real, real + 1000.0, 3) == (0.0, 0.0)
