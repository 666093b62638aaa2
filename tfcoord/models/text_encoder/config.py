"""Configuration of the ``text-encoder`` model: the char-CNN-RNN trained by structured joint embedding.

Reed et al., "Learning Deep Representations of Fine-Grained Visual Descriptions", CVPR 2016
(``reedscot/cvpr2016`` ``train_sje_hybrid.lua`` and ``scripts/train_cub_hybrid.sh``): RMSprop,
learning rate 7e-4 decayed by 0.98 per epoch, 10 captions per image, symmetric SJE. GAWWN
(``--model gawwn``) uses the trained encoder through ``text.encoder_run``; the architecture
fields here and in GAWWN's ``text`` section must match.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from tfcoord.config import bounded


@dataclasses.dataclass
class TextEncoderConfig:
    """Section ``model``: the text encoder and the image side it is trained against.

    The defaults are the published CUB encoder (``..._hybrid_gru18_a1_c512_...``, see
    :mod:`tfcoord.models.text_encoder.networks`): convolutions 384, 512, 512 (kernel 4), no
    third pooling (18 GRU steps), the GRU's states averaged, 1024-d output.
    """

    embedding_dim: int = bounded(1024, min=1)
    cnn_channels: tuple[int, int, int] = (384, 512, 512)
    doc_length: int = bounded(201, min=48, max=1024)
    final_pool: bool = False  # true: cvpr2016 HybridCNN's max-pool 3/2 after the third conv (8 steps, not 18)
    average_states: bool = True  # the mean of the GRU's hidden states (avg = 1); false: the last state
    # The image side. With image_features (a .npy of one row per record of an annotations:FILE.jsonl
    # source, e.g. 1024-d GoogLeNet features as the paper) the images are not encoded; otherwise a
    # small CNN (ImageEncoder) is trained jointly on images resized to image_size.
    image_features: str = ""
    # false: the features are the embedding (official -image_noop 1; their width must be embedding_dim);
    # true: a linear map from the features to the embedding (-image_noop 0, modules/ImageEncoder.lua).
    image_feature_projection: bool = False
    image_size: int = bounded(64, min=16, max=512)
    image_encoder_width: int = bounded(64, min=4)
    # 0: the CNN sees the whole image. k > 0: it sees a k x k crop of the square around the bird's
    # box (the data's "bbox", 15% margin), so that the bird, not the background, fills its input:
    # on synthetic-birds (birds of 20-50% of the image side) the whole-image CNN learned too slowly
    # for retrieval above chance in the tiny preset's steps (see bench/text_encoder.py).
    box_crop_size: int = bounded(0, min=0, max=512)
    # Runs trained before these fields existed pooled after the third convolution and took the GRU's
    # last state; their config.yaml lacks the keys and must not load as today's published defaults.
    ADDED_KEYS: ClassVar[dict] = {"final_pool": True, "average_states": False}


@dataclasses.dataclass
class TextEncoderLossConfig:
    """Section ``loss``: the objective and which captions pair with each image."""

    # sje: the paper's symmetric structured joint embedding with class expectations
    # (tfcoord.models.text_encoder.loss.structured_joint_embedding_loss). instance-hinge: the
    # per-example hinge tfcoord used before (joint_embedding_loss), kept for comparison (bench/text_encoder.py).
    objective: Literal["sje", "instance-hinge"] = "sje"
    ADDED_KEYS: ClassVar[dict] = {"objective": "instance-hinge"}  # what runs saved before it trained with
    # sje: sum the other classes' hinges / number of classes (the official code) or take the largest (paper eq. 3).
    reduction: Literal["sum", "max"] = "sum"
    max_captions: int = bounded(10, min=1)  # captions per image considered
    num_holdout: int = bounded(1, min=0)  # captions per image never used (kept for evaluation)
    # Subtract the batch mean of each side's features before scoring. Not in the paper, whose image
    # features are a pretrained GoogLeNet's: with an image encoder trained from scratch both sides
    # start near one common vector, every score is the same and the hinge loss barely moves
    # (measured: 1.75 -> 1.41 in 40 steps on one batch, 0.53 with centring). false: plain scores.
    center_features: bool = True
    # Zero-shot split: classes whose label is a multiple of this are never trained on (they are
    # the evaluation classes of TextEncoderModel.zero_shot); 0: train on every class.
    zero_shot_every: int = bounded(0, min=0)


@dataclasses.dataclass
class TextEncoderOptimConfig:
    """Section ``optim``: RMSprop (Torch alpha 0.99, eps 1e-8) with a step decay."""

    lr: float = bounded(7e-4, min=0.0)
    lr_decay: float = bounded(0.98, min=0.0, max=1.0)
    decay_every: int = bounded(0, min=0)  # steps; the official decays every epoch


DEFAULT_PRESET = "tiny"
SECTIONS = {"model": TextEncoderConfig, "loss": TextEncoderLossConfig, "optim": TextEncoderOptimConfig}
