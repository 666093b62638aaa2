"""Offline quality evaluation on the embedded data: realism and structure, with nothing downloaded.

Inception features (:mod:`tfcoord.metrics.inception`) need weights from outside; the
embedded sources do not, because their renderers know the truth of every pixel. A small
feature network is trained on that truth and then judges generated images:

============================  ==================================================================
module                        what
============================  ==================================================================
:mod:`.domains`               the embedded sources as ground truth: renders with exact per-pixel
                              classes (bird parts; sky, ridges, water, ground) in disjoint splits
:mod:`.network`               the per-pixel classifier (trained in about a minute, cached by the
                              hash of its recipe): class maps and the embedding
:mod:`.evaluator`             precision / recall (k-NN manifolds) and KID in that embedding,
                              against held-out renders; the real-vs-real ceiling
:mod:`.structure`             checks on class maps and pixels: box fraction, colour match,
                              keypoint distance, sky above ground, horizon jumps, seam ratio
============================  ==================================================================

``python -m bench.quality`` trains each model's default command and reports all of it per
checkpoint, with the real renders' values (the ceiling) and the untrained generator's (the
floor).

Example:
    >>> from tfcoord.metrics.quality.evaluator import QualityEvaluator
    >>> evaluator = QualityEvaluator("synthetic-landscapes", num_real=512)
    >>> evaluator.real_vs_real()          # the ceiling: {'precision': 0.95, 'recall': 0.96, 'kid': ...}
    >>> labels = evaluator.network.labels(images_uint8)   # sky / ridges / water / ground per pixel
"""
