"""A tiny stand-in for Inception-v3 (``TFCOORD_FEATURE_EXTRACTOR=fake_inception:make``).

Features: the image reduced to 4 x 4 by area averaging (48 values) times a fixed random
matrix, then tanh: 16 dimensions that respond to colour and layout, computed in
microseconds, so end-to-end CLI tests need no Inception weights.
"""

import numpy as np

DIM = 16


class TinyFeatures:
    name = "tiny-test-features"
    dim = DIM
    fingerprint = "tiny-test-features-v1"

    def __init__(self):
        self.projection = np.random.default_rng(1234).normal(size=(48, DIM)) / np.sqrt(48.0)
        self.calls = 0

    def __call__(self, images):
        images = np.asarray(images, np.float64)
        b, h, w, c = images.shape
        rows = np.array_split(np.arange(h), 4)
        cols = np.array_split(np.arange(w), 4)
        pooled = np.stack([images[:, r][:, :, k].mean(axis=(1, 2)) for r in rows for k in cols], axis=1)
        self.calls += 1
        return np.tanh(pooled.reshape(b, -1) @ self.projection * 2.0)


def make():
    return TinyFeatures()
