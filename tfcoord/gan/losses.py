"""Adversarial losses as pure functions of discriminator logits; each returns per-example terms (B,).

Three families:

- **logistic / non-saturating** (Goodfellow et al. 2014, StyleGAN2's form): ``softplus(-D(x)) + softplus(D(G(z)))``
  for D and ``softplus(-D(G(z)))`` for G (CIPS, InfinityGAN);
- **WGAN** (Arjovsky et al. 2017) with the gradient penalty of Gulrajani et al. 2017 in its two variants
  (COCO-GAN);
- **GAN-CLS**, matching-aware (GAWWN), below.

GAN-CLS (Reed et al., "Generative Adversarial Text to Image Synthesis", ICML 2016, Alg. 1), as
trained by GAWWN (Reed et al., NeurIPS 2016; models.md §3.6):

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
GAN-CLS keeps Torch's BCE form rather than the softplus form above (the same function of the logits): it is
what the GAWWN fixtures were made with, and the two differ in float32 round-off.
"""

from __future__ import annotations

from keras import ops


def logistic_discriminator_loss(real_logits, fake_logits):
    """Non-saturating (logistic) D loss per example: ``softplus(-D(x)) + softplus(D(G(z)))``."""
    return ops.softplus(-real_logits) + ops.softplus(fake_logits)


def nonsaturating_generator_loss(fake_logits):
    """Non-saturating G loss per example: ``softplus(-D(G(z)))``."""
    return ops.softplus(-fake_logits)


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """WGAN critic loss per example: ``D(G(z)) - D(x)``."""
    return fake_logits - real_logits


def wasserstein_generator_loss(fake_logits):
    """WGAN generator loss per example: ``-D(G(z))``."""
    return -fake_logits


def wasserstein_gradient_penalty(gradients, norm: str):
    """Per-example WGAN-GP term ``(||grad||_2 - 1)^2`` (Gulrajani et al. 2017) of D's gradient at the mixed images.

    ``per_sample`` takes the L2 norm over H, W, C. ``official_axis1`` reproduces COCO-GAN's official code
    (quirk Q2): the norm over axis 1 only, then the mean of the squared deviations over the remaining axes.
    """
    if norm == "official_axis1":
        slope = ops.sqrt(ops.sum(ops.square(gradients), axis=1) + 1e-12)
        return ops.mean(ops.square(slope - 1.0), axis=(1, 2))
    slope = ops.sqrt(ops.sum(ops.square(gradients), axis=(1, 2, 3)) + 1e-12)
    return ops.square(slope - 1.0)


def bce(target: float, logits):
    """Per-example binary cross-entropy of sigmoid(logits) against a constant target."""
    return ops.binary_crossentropy(ops.full_like(logits, target), logits, from_logits=True)


def gan_cls_discriminator_loss(real_logits, wrong_logits, fake_logits, cls_weight: float = 0.5,
                               real_label: float = 1.0):
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


def gan_cls_generator_loss(fake_logits):
    """Per-example non-saturating generator loss ``BCE(D(G(z, t, loc), t), 1)``."""
    return bce(1.0, fake_logits)
