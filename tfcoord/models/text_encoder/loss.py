"""The structured joint embedding of images and captions (Reed et al., CVPR 2016).

:func:`structured_joint_embedding_loss` is the symmetric structured joint embedding with class
expectations (paper eq. 3-5; cvpr2016 ``train_sje_hybrid.lua`` ``JointEmbeddingLoss`` lines
117-155, called again with the roles swapped under ``-symmetric 1``, lines 212-216), which the
text-encoder model trains with; :func:`joint_embedding_loss` is the per-example form GAWWN uses
when it trains its text encoder jointly (``text.train_encoder``). ``keras.ops`` only.
"""

from __future__ import annotations

from keras import ops


def _scores(image_features, text_features, all_image_features, all_text_features, center: bool, weights=None):
    """``(own (B,), image vs candidate texts (B, N), text vs candidate images (B, N))``; with ``center`` both sides
    first lose the mean of the candidates that ``weights`` (N,) counts (every candidate for None)."""
    if center:
        if weights is None:
            image_mean = ops.mean(all_image_features, axis=0, keepdims=True)
            text_mean = ops.mean(all_text_features, axis=0, keepdims=True)
        else:
            column, count = ops.expand_dims(weights, 1), ops.maximum(ops.sum(weights), 1.0)
            image_mean = ops.sum(all_image_features * column, axis=0, keepdims=True) / count
            text_mean = ops.sum(all_text_features * column, axis=0, keepdims=True) / count
        image_features, all_image_features = image_features - image_mean, all_image_features - image_mean
        text_features, all_text_features = text_features - text_mean, all_text_features - text_mean
    own = ops.sum(image_features * text_features, axis=-1)
    return (own, ops.matmul(image_features, ops.transpose(all_text_features)),
            ops.matmul(text_features, ops.transpose(all_image_features)))


def joint_embedding_loss(image_features, text_features, labels, all_image_features=None, all_text_features=None,
                         all_labels=None, center: bool = False, all_weights=None):
    """Per-example symmetric structured joint embedding loss and retrieval accuracy.

    For example i with score ``s(a, b) = a . b``:
    ``sum_{j: y_j != y_i} max(0, 1 + s(img_i, txt_j) - s(img_i, txt_i))
    + max(0, 1 + s(txt_i, img_j) - s(txt_i, img_i))``, divided by the number of candidates
    (the official loss divides by batch x classes). The ``all_*`` arguments are the
    candidates (default: this batch); under a distribution strategy pass every replica's
    features (``all_gather``), so that each replica count sees the same negatives.
    ``center`` subtracts the candidates' mean from each side's features first (not in the
    paper; see :class:`tfcoord.models.text_encoder.config.TextEncoderLossConfig`).
    ``all_weights`` (N,) 0 drops a candidate (a held-out class) from the negatives, the count
    and the centring; None counts every candidate.

    Returns:
        (loss (B,), correct (B,) 1.0 where the image's best-scoring text has its class).
    """
    all_image_features = image_features if all_image_features is None else all_image_features
    all_text_features = text_features if all_text_features is None else all_text_features
    all_labels = labels if all_labels is None else all_labels
    weights = None if all_weights is None else ops.cast(all_weights, image_features.dtype)
    own, image_vs_texts, text_vs_images = _scores(image_features, text_features, all_image_features,
                                                  all_text_features, center, weights)
    own = ops.expand_dims(own, 1)  # (B, 1)
    other_class = ops.cast(ops.not_equal(ops.expand_dims(labels, 1), ops.expand_dims(all_labels, 0)), own.dtype)
    hinge = ops.relu(1.0 + image_vs_texts - own) + ops.relu(1.0 + text_vs_images - own)
    if weights is None:
        count = ops.cast(ops.shape(all_labels)[0], own.dtype)
    else:
        other_class, count = other_class * ops.expand_dims(weights, 0), ops.maximum(ops.sum(weights), 1.0)
        image_vs_texts = ops.where(ops.expand_dims(weights, 0) > 0, image_vs_texts,
                                   ops.full_like(image_vs_texts, -1e30))
    loss = ops.sum(hinge * other_class, axis=-1) / count
    best = ops.argmax(image_vs_texts, axis=-1)
    correct = ops.cast(ops.equal(ops.take(all_labels, best), labels), own.dtype)
    return loss, correct


def class_expectation_hinge(scores, own, labels, candidate_labels, candidate_weights=None, reduction: str = "sum"):
    """One side of the structured joint embedding: per-anchor hinge against class expectations.

    Paper eq. 3: ``l_v(v_n, t_n, y_n) = max_y (0, Delta(y_n, y) + E_{t ~ T(y)}[F(v_n, t)] - F(v_n, t_n))``
    with the 0-1 loss ``Delta`` and the expectation over the class's texts in the minibatch
    (here the mean score over the candidates of that class).

    Args:
        scores: (B, N) ``F(anchor_i, candidate_k)``, candidates of the other modality.
        own: (B,) ``F(anchor_i, its paired item)``.
        labels: (B,) classes of the anchors; candidate_labels: (N,) of the candidates.
        candidate_weights: (N,) 1 for candidates that count, 0 for ignored ones (held-out classes).
        reduction: ``"sum"``: the official code (``train_sje_hybrid.lua`` lines 129-139, 150-154):
            the hinges of every other class summed, divided by the number of classes (so that
            the batch mean is the official ``loss / (batch_size * num_class)``); ``"max"``: the
            paper's eq. 3, the largest hinge over the other classes. The anchor's own class is
            left out in both (line 132, ``j ~= labels[i]``).

    Returns:
        (loss (B,), correct (B,) 1.0 where the anchor's best class expectation is its own class).
    """
    dtype = scores.dtype
    if candidate_weights is None:
        candidate_weights = ops.ones_like(candidate_labels, dtype=dtype)
    weights = ops.cast(candidate_weights, dtype)
    same = ops.cast(ops.equal(ops.expand_dims(candidate_labels, 1), ops.expand_dims(candidate_labels, 0)), dtype)
    members = same * ops.expand_dims(weights, 0)  # (N, N): k's class, counted candidates only
    class_size = ops.sum(members, axis=1)  # (N,) counted members of candidate k's class
    class_mean = ops.matmul(scores, ops.transpose(members)) / ops.maximum(class_size, 1.0)  # (B, N)
    hinge = ops.relu(1.0 + class_mean - ops.expand_dims(own, 1))
    other = ops.cast(ops.not_equal(ops.expand_dims(labels, 1), ops.expand_dims(candidate_labels, 0)), dtype)
    other = other * ops.expand_dims(weights, 0)
    if reduction == "sum":
        # Each class appears once per counted member: weight 1 / class size counts it once.
        per_class = ops.expand_dims(weights / ops.maximum(class_size, 1.0), 0)
        num_classes = ops.maximum(ops.sum(per_class), 1.0)
        loss = ops.sum(hinge * other * per_class, axis=1) / num_classes
    elif reduction == "max":
        loss = ops.max(hinge * other, axis=1)
    else:
        raise ValueError(f"reduction must be 'sum' or 'max', got {reduction!r}")
    masked = ops.where(ops.expand_dims(weights, 0) > 0, class_mean, ops.full_like(class_mean, -1e30))
    best = ops.argmax(masked, axis=-1)
    correct = ops.cast(ops.equal(ops.take(candidate_labels, best), labels), dtype)
    return loss, correct


def structured_joint_embedding_loss(image_features, text_features, labels, weights=None, all_image_features=None,
                                    all_text_features=None, all_labels=None, all_weights=None,
                                    reduction: str = "sum", center: bool = False):
    """Symmetric structured joint embedding with class expectations (Reed et al. 2016, eq. 3-5).

    Example i pairs image ``v_i`` and text ``t_i`` of class ``y_i``; ``F(v, t) = v . t``. The loss
    of example i is the image side ``l_v`` (its image against every other class's mean text score)
    plus the text side ``l_t`` (its text against every other class's mean image score), each
    :func:`class_expectation_hinge`. With one image and one text per class, as the official
    loader draws (``util/MultimodalMinibatchLoaderCaption.lua`` lines 54-55: distinct classes),
    the class means are single scores and ``reduction="sum"`` is exactly the official
    ``JointEmbeddingLoss(txt, img) + JointEmbeddingLoss(img, txt)``; with several examples of a
    class in a batch the expectation averages over them.

    ``all_*`` are the candidates (default: this batch; under a distribution strategy every
    replica's, all-gathered); ``weights`` (B,) and ``all_weights`` (N,) are 0 for examples that
    must not count (held-out classes) and 1 otherwise. ``center`` subtracts the counted
    candidates' mean from each side's features first (not in the paper; see
    :class:`tfcoord.models.text_encoder.config.TextEncoderLossConfig`).

    Returns:
        (loss (B,) already multiplied by ``weights``, correct (B,) 1.0 where the image's best
        class-mean text score is its own class).
    """
    all_image_features = image_features if all_image_features is None else all_image_features
    all_text_features = text_features if all_text_features is None else all_text_features
    all_labels = labels if all_labels is None else all_labels
    dtype = image_features.dtype
    weights = ops.ones_like(labels, dtype=dtype) if weights is None else ops.cast(weights, dtype)
    if all_weights is None:
        all_weights = ops.ones_like(all_labels, dtype=dtype) if all_labels is not labels else weights
    all_weights = ops.cast(all_weights, dtype)
    own, image_vs_texts, text_vs_images = _scores(image_features, text_features, all_image_features,
                                                  all_text_features, center, all_weights)
    image_side, correct = class_expectation_hinge(image_vs_texts, own, labels, all_labels, all_weights, reduction)
    text_side, _ = class_expectation_hinge(text_vs_images, own, labels, all_labels, all_weights, reduction)
    return (image_side + text_side) * weights, correct
