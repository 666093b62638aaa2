"""GAWWN's matching-aware GAN-CLS losses as pure functions of discriminator logits (models.md §3.6).

GAN-CLS (Reed et al., "Generative Adversarial Text to Image Synthesis", ICML 2016, Alg. 1), as
trained by GAWWN (Reed et al., NeurIPS 2016):

    L_D = BCE(D(x, t), 1) + c * BCE(D(x, t_wrong), 0) + (1 - c) * BCE(D(G(z, t, loc), t), 0)
    L_G = BCE(D(G(z, t, loc), t), 1)

with c = ``cls_weight`` (0.5: the paper's ``(log(1 - s_w) + log(1 - s_f)) / 2``). The official
scripts scale both the value and the gradient of the wrong-text term by c and of the fake term by
1 - c; the real term has weight 1, targets are exactly 1 and 0, and the generator loss is the
non-saturating BCE against 1. The keypoint generator's critic has no wrong-text term
(``cls_weight=0``: real and fake weigh 1 each).

The official discriminators end in a sigmoid and Torch's ``BCECriterion`` (which clamps the log
at 1e-12); here D returns logits and the sigmoid is folded into the cross-entropy: the same values
and gradients wherever the sigmoid does not saturate in float32, and no clamp where it does.
Every function returns per-example losses; the caller averages over the global batch.
"""

from __future__ import annotations

from keras import ops


def bce(target: float, logits):
    """Per-example binary cross-entropy of sigmoid(logits) against a constant target."""
    return ops.binary_crossentropy(ops.full_like(logits, target), logits, from_logits=True)


def discriminator_loss(real_logits, wrong_logits, fake_logits, cls_weight: float = 0.5, real_label: float = 1.0):
    """Per-example GAN-CLS discriminator loss.

    Args:
        real_logits: D(x, t), real images with their own text.
        wrong_logits: D(x, t_wrong), real images with another example's text; None for a critic
            without the matching-aware term (then ``cls_weight`` must be 0).
        fake_logits: D(G(z, t, loc), t).
        cls_weight: weight c of the wrong-text term; the fake term weighs 1 - c.
        real_label: target of the real term (1 in the paper; below 1 is one-sided label smoothing).
    """
    if wrong_logits is None and cls_weight:
        raise ValueError(f"cls_weight={cls_weight} needs wrong-text logits")
    loss = bce(real_label, real_logits)
    if wrong_logits is not None:
        loss = loss + cls_weight * bce(0.0, wrong_logits)
    return loss + (1.0 - cls_weight) * bce(0.0, fake_logits)


def generator_loss(fake_logits):
    """Per-example non-saturating generator loss ``BCE(D(G(z, t, loc), t), 1)``."""
    return bce(1.0, fake_logits)
