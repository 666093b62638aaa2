"""The embedded data sets as ground truth: rendered images with the per-pixel classes they were drawn from.

A :class:`Domain` renders numbered samples of one procedural source at its evaluation
size, with labels taken from the renderer itself (never estimated):

* ``synthetic-birds`` (64 x 64): the part map of :func:`~tfcoord.data.synthetic_birds.render_bird`
  (background + 11 parts), plus each bird's box, keypoints and captions;
* ``synthetic-landscapes`` (32 x 32): the class map of
  :func:`~tfcoord.data.synthetic_landscapes.render_scene` (sky, three ridges, water, ground)
  and the horizon row.

Samples come from one fixed stream (seed :data:`SEED`) in disjoint index ranges
(:data:`SPLITS`): the feature network trains on one, the real reference set and the
second real set of the real-vs-real ceiling are two others, so none is a training
image of the network or, being another seed's stream, of a model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfcoord.errors import UserError

SEED = 20240
# First index of each split of the ground-truth stream.
SPLITS = {"train": 10_000_000, "check": 20_000_000, "reference": 30_000_000, "second": 40_000_000}


@dataclasses.dataclass
class GroundTruth:
    """Rendered samples: ``images`` uint8 (N, H, W, 3), ``labels`` int32 (N, H, W) and per-sample extras."""

    images: np.ndarray
    labels: np.ndarray
    extras: dict


@dataclasses.dataclass(frozen=True)
class Domain:
    """One embedded data source, rendered with its exact per-pixel classes."""

    name: str  # the --data source
    classes: tuple[str, ...]
    size: tuple[int, int]  # (height, width) the feature network sees

    def render(self, split: str, count: int, size=None, offset: int = 0) -> GroundTruth:
        """``count`` samples of ``split`` (:data:`SPLITS`) from ``offset`` on, at ``size`` (default ``self.size``)."""
        height, width = size or self.size
        first = SPLITS[split] + offset
        return _RENDERERS[self.name](first, count, height, width)


def _birds(first, count, height, width) -> GroundTruth:
    from tfcoord.data.synthetic_birds import render_bird

    samples = [render_bird(SEED, first + i, height, width) for i in range(count)]
    return GroundTruth(np.stack([s.image for s in samples]), np.stack([s.parts for s in samples]).astype(np.int32),
                       {"boxes": np.stack([s.bbox for s in samples]),
                        "keypoints": np.stack([s.keypoints for s in samples]),
                        "captions": [s.captions for s in samples], "species": [s.species for s in samples]})


def _landscapes(first, count, height, width) -> GroundTruth:
    from tfcoord.data.synthetic_landscapes import render_landscape_scene

    scenes = [render_landscape_scene(SEED, first + i, height, width) for i in range(count)]
    return GroundTruth(np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes]).astype(np.int32),
                       {"horizon": np.array([s[2] for s in scenes], np.float32)})


_RENDERERS = {"synthetic-birds": _birds, "synthetic-landscapes": _landscapes}


def get_domain(name: str) -> Domain:
    """The domain of the ``--data`` source ``name``."""
    if name == "synthetic-birds":
        from tfcoord.data.synthetic_birds import PART_CLASSES

        return Domain(name, tuple(PART_CLASSES), (64, 64))
    if name == "synthetic-landscapes":
        from tfcoord.data.synthetic_landscapes import CLASSES

        return Domain(name, tuple(CLASSES), (32, 32))
    raise UserError(f"the quality evaluator knows the embedded sources only ({', '.join(_RENDERERS)}), "
                    f"not {name!r}")
