"""Configuration of the ``text-encoder`` model: the char-CNN-GRU trained by structured joint embedding.

Reed et al., "Learning Deep Representations of Fine-Grained Visual Descriptions", CVPR 2016
(``reedscot/cvpr2016``, ``train_sje_hybrid.lua``): RMSprop, learning rate 7e-4 decayed by
0.98 per epoch, 10 captions per image. GAWWN (``--model gawwn``) uses the trained encoder
through ``text.encoder_run``; the architecture fields here and in GAWWN's ``text`` section
must match.
"""

from __future__ import annotations

import dataclasses

from tfcoord.config import bounded


@dataclasses.dataclass
class TextEncoderConfig:
    """Section ``model``: the text encoder and the image encoder it is trained against."""

    embedding_dim: int = bounded(1024, min=1)
    cnn_channels: tuple[int, int, int] = (384, 512, 256)
    doc_length: int = bounded(201, min=48, max=1024)
    image_size: int = bounded(64, min=16, max=512)  # images are resized to this for the image encoder
    image_encoder_width: int = bounded(64, min=4)


@dataclasses.dataclass
class TextEncoderLossConfig:
    """Section ``loss``: which captions pair with each image."""

    max_captions: int = bounded(10, min=1)  # captions per image considered
    num_holdout: int = bounded(1, min=0)  # captions per image never used (kept for evaluation)
    # Subtract the batch mean of each side's features before scoring. Not in the paper, whose image
    # features are a pretrained GoogLeNet's: with an image encoder trained from scratch both sides
    # start near one common vector, every score is the same and the hinge loss barely moves
    # (measured: 1.75 -> 1.41 in 40 steps on one batch, 0.53 with centring). false: plain scores.
    center_features: bool = True


@dataclasses.dataclass
class TextEncoderOptimConfig:
    """Section ``optim``: RMSprop (Torch alpha 0.99, eps 1e-8) with a step decay."""

    lr: float = bounded(7e-4, min=0.0)
    lr_decay: float = bounded(0.98, min=0.0, max=1.0)
    decay_every: int = bounded(0, min=0)  # steps; the official decays every epoch


DEFAULT_PRESET = "tiny"
SECTIONS = {"model": TextEncoderConfig, "loss": TextEncoderLossConfig, "optim": TextEncoderOptimConfig}
