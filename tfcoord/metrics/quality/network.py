"""The feature network: a small per-pixel classifier trained on the renderer's exact classes.

A stack of dilated 3 x 3 convolutions (receptive field 33 px) predicts every pixel's
class (a bird's part, a landscape's layer). It is trained from scratch on rendered
ground truth (:mod:`.domains`), deterministically for its :class:`Recipe`, in about a
minute on 2 CPU cores, and cached under ``$TFCOORD_CACHE_DIR/quality`` (default
``~/.cache/tfcoord/quality``) keyed by the SHA-256 of the recipe, the class list and a
fingerprint of the first training renders, so a change to the renderer or the recipe
trains a new one; nothing is downloaded. The weights are about 0.3 MB.

Its two uses:

* :meth:`FeatureNetwork.labels` -- the class map of any image, for the structural checks
  (:mod:`.structure`);
* :meth:`FeatureNetwork.features` -- the embedding precision/recall and KID are computed
  in (the role Inception or VGG features play for photographs): the class probabilities
  averaged over a 4 x 4 grid of cells (where things are) beside the mean and standard
  deviation over the image of the first hidden layer (local colour and contrast) and of
  the last (what the things look like).

Class weights: pixels are weighted by the inverse square root of their class's
frequency in the training renders (a bird covers a tenth of the image, an eye a few
pixels), normalised to a mean pixel weight of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from tfcoord.images import to_float
from tfcoord.metrics.quality.domains import Domain, get_domain
from tfcoord.metrics.stats_cache import cache_root

PROTOCOL = 3  # bump when the architecture, the training loop or the embedding changes
GRID_CELLS = 4  # cells per side of the pooled class-probability layout in the embedding


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that determines the network's weights (with the domain's renders)."""

    domain: str
    images: int = 1536
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 2e-3
    widths: tuple[int, ...] = (32, 32, 48, 48, 48)
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    crop: int = 0  # train on random crop x crop windows (0: whole renders); the network is fully convolutional
    seed: int = 0

    @classmethod
    def for_domain(cls, domain: str, quick: bool = False) -> "Recipe":
        """The recipe of ``domain``; ``quick``: seconds instead of a minute, for smoke runs and tests (coarser
        labels: its birds score shuffled pixels well above zero, so use it for nothing but plumbing)."""
        # Birds train on 32 x 32 windows of the 64 x 64 renders: a quarter of the cost, the same receptive field.
        crop = 32 if get_domain(domain).size[0] > 32 else 0
        if quick:
            return cls(domain, images=192, steps=100, widths=(16, 16, 24, 24, 24), crop=crop)
        return cls(domain, crop=crop)

    def key(self, domain: Domain) -> str:
        fingerprint = hashlib.sha256()
        sample = domain.render("train", 2)
        fingerprint.update(sample.images.tobytes())
        fingerprint.update(sample.labels.astype(np.int32).tobytes())
        description = {"protocol": PROTOCOL, "recipe": dataclasses.asdict(self), "classes": list(domain.classes),
                       "size": list(domain.size), "renders_sha256": fingerprint.hexdigest()}
        return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def build_classifier(recipe: Recipe, num_classes: int):
    """Dilated 3 x 3 convolutions -> (class logits, first hidden layer, last hidden layer), per pixel; any size."""
    import keras

    inputs = keras.Input((None, None, 3))
    layers = [inputs]
    for width, rate in zip(recipe.widths, recipe.dilations):
        layers.append(keras.layers.Conv2D(width, 3, padding="same", dilation_rate=rate, activation="relu")(layers[-1]))
    return keras.Model(inputs, [keras.layers.Conv2D(num_classes, 1)(layers[-1]), layers[1], layers[-1]])


def _to_input(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"the quality evaluator reads uint8 images (tfcoord.images.to_uint8), got {images.dtype}")
    return to_float(images)


class FeatureNetwork:
    """A trained classifier of one domain: labels and embeddings of uint8 images.

    Images of another size are resized (antialiased bilinear) to the domain's size, or,
    with ``keep_aspect``, to its height at the same aspect ratio (wide canvases).
    """

    def __init__(self, domain: Domain, recipe: Recipe, classifier, info: dict):
        import tensorflow as tf

        self.domain, self.recipe, self.classifier, self.info = domain, recipe, classifier, info
        self._forward = tf.function(self._outputs, reduce_retracing=True)

    def _outputs(self, x):
        import keras

        logits, first, last = self.classifier(x, training=False)
        return keras.ops.softmax(logits, axis=-1), first, last

    def _resized(self, images, keep_aspect: bool):
        import tensorflow as tf

        images = _to_input(images)
        height = self.domain.size[0]
        width = int(round(images.shape[2] * height / images.shape[1])) if keep_aspect else self.domain.size[1]
        if images.shape[1:3] != (height, width):
            images = tf.image.resize(images, (height, width), antialias=True).numpy()
        return images

    def predict(self, images, keep_aspect: bool = False, batch: int = 64):
        """(class probabilities (N, H, W, C), first and last hidden layers (N, H, W, D)) of uint8 images."""
        images = self._resized(images, keep_aspect)
        outputs = [self._forward(images[i:i + batch]) for i in range(0, len(images), batch)]
        return tuple(np.concatenate([np.asarray(o[k]) for o in outputs]) for k in range(3))

    def labels(self, images, keep_aspect: bool = False) -> np.ndarray:
        """The most likely class of every pixel, int32 (N, H, W) at the domain's height."""
        return np.argmax(self.predict(images, keep_aspect)[0], axis=-1).astype(np.int32)

    def features(self, images) -> np.ndarray:
        """The embedding (N, GRID_CELLS^2 C + 2 D) of uint8 images (see the module docstring)."""
        probabilities, first, last = self.predict(images)
        n, height, width, classes = probabilities.shape
        cells = probabilities.reshape(n, GRID_CELLS, height // GRID_CELLS, GRID_CELLS, width // GRID_CELLS, classes)
        layout = cells.mean(axis=(2, 4)).reshape(n, -1)
        return np.concatenate([layout, *(stat(h, axis=(1, 2)) for h in (first, last) for stat in (np.mean, np.std))],
                              axis=1).astype(np.float32)


def class_weights(labels, num_classes: int) -> np.ndarray:
    """Inverse square root of each class's pixel frequency, scaled to a mean pixel weight of one."""
    counts = np.bincount(labels.ravel(), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
    return (weights / (weights[labels.ravel()].mean())).astype(np.float32)


def _iou(predicted, truth) -> float:
    union = np.count_nonzero(predicted | truth)
    return np.count_nonzero(predicted & truth) / union if union else float("nan")


def segmentation_scores(predicted, truth, num_classes: int) -> dict:
    """Pixel accuracy, intersection-over-union per class and their mean (over the classes present), and the
    IoU of everything but class 0 (the bird against the background; the land against the sky)."""
    iou = [_iou(predicted == c, truth == c) for c in range(num_classes)]
    return {"pixel_accuracy": float(np.mean(predicted == truth)), "mean_iou": float(np.nanmean(iou)),
            "class_iou": [round(float(v), 4) for v in iou], "foreground_iou": float(_iou(predicted > 0, truth > 0))}


def train(domain: Domain, recipe: Recipe):
    """A freshly trained classifier and its record (held-out scores, seconds); deterministic for the recipe."""
    import keras

    start = time.perf_counter()
    data = domain.render("train", recipe.images)
    render_s = time.perf_counter() - start
    num_classes = len(domain.classes)
    pixels, labels = _to_input(data.images), data.labels
    weights = class_weights(labels, num_classes)[labels]
    keras.utils.set_random_seed(recipe.seed)
    classifier = build_classifier(recipe, num_classes)
    logits_only = keras.Model(classifier.input, classifier.outputs[0])
    logits_only.compile(keras.optimizers.Adam(recipe.learning_rate),
                        keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    order = np.random.default_rng(recipe.seed)
    batches, position = order.permutation(len(pixels)), 0
    for _ in range(recipe.steps):
        if position + recipe.batch_size > len(batches):
            batches, position = order.permutation(len(pixels)), 0
        chosen = np.sort(batches[position:position + recipe.batch_size])
        position += recipe.batch_size
        x, y, w = pixels[chosen], labels[chosen], weights[chosen]
        if recipe.crop:  # one window per sample
            corners = [order.integers(side - recipe.crop + 1, size=len(chosen)) for side in domain.size]
            rows = corners[0][:, None] + np.arange(recipe.crop)
            cols = corners[1][:, None] + np.arange(recipe.crop)
            index = (np.arange(len(chosen))[:, None, None], rows[:, :, None], cols[:, None, :])
            x, y, w = x[index], y[index], w[index]
        logits_only.train_on_batch(x, y, sample_weight=w)
    train_s = time.perf_counter() - start - render_s
    check = domain.render("check", 128)
    network = FeatureNetwork(domain, recipe, classifier, {})
    scores = segmentation_scores(network.labels(check.images), check.labels, num_classes)
    info = {"domain": domain.name, "recipe": dataclasses.asdict(recipe), "classes": list(domain.classes),
            "held_out": scores, "render_s": render_s, "train_s": train_s,
            "parameters": int(classifier.count_params())}
    network.info = info
    return network


def load_or_train(domain_name: str, recipe: Recipe | None = None, use_cache: bool = True,
                  folder=None) -> FeatureNetwork:
    """The feature network of ``domain_name``: from the cache (``folder``, default
    ``$TFCOORD_CACHE_DIR/quality``), or trained now (and cached).

    ``network.info["cached"]`` says which; ``info`` also holds the held-out pixel accuracy and
    mean IoU and the training time of the cached network.
    """
    domain = get_domain(domain_name)
    recipe = recipe or Recipe.for_domain(domain_name)
    key = recipe.key(domain)
    stem = Path(folder or cache_root("quality")) / f"{domain_name}-{key[:16]}"
    weights, record = stem.with_name(stem.name + ".weights.h5"), stem.with_name(stem.name + ".json")
    if use_cache and weights.exists() and record.exists():
        info = json.loads(record.read_text())
        if info.get("key") == key:
            classifier = build_classifier(recipe, len(domain.classes))
            classifier.load_weights(weights)
            return FeatureNetwork(domain, recipe, classifier, {**info, "cached": True})
    network = train(domain, recipe)
    network.info["key"] = key
    if use_cache:
        from tfcoord.fileio import atomic_write_text

        stem.parent.mkdir(parents=True, exist_ok=True)
        partial = stem.with_name(f"{stem.name}.{os.getpid()}.partial.weights.h5")
        network.classifier.save_weights(partial)
        os.replace(partial, weights)
        atomic_write_text(record, json.dumps(network.info, indent=2) + "\n")
    network.info["cached"] = False
    return network
