"""GAWWN configuration sections (defaults = the paper's CUB 128 x 128 bounding-box model).

Reed et al., "Learning What and Where to Draw", NeurIPS 2016 (models.md §3). The official
training scripts use ``ngf = ndf = 128``, batch 16; the main scripts default ``ndf = 64``
(the presets under ``configs/gawwn/`` say which). Official-code quirks are named flags
(models.md §3.9); defaults follow the paper.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from tfcoord.config import bounded
from tfcoord.errors import UserError

MAP_SIZE = 16  # every location map of GAWWN is 16 x 16 (models.md §3.2)


def upsamplings(image_size: int) -> int:
    """How many factor-2 steps lead from the 16 x 16 maps to the image."""
    return (image_size // MAP_SIZE).bit_length() - 1


@dataclasses.dataclass
class GawwnConfig:
    """Section ``model``: which conditioning and the network widths (models.md §3.3-3.5)."""

    conditioning: Literal["box", "keypoints"] = "box"
    image_size: int = bounded(128, min=32, max=512)  # 16 * 2^n: the 16 x 16 maps are upsampled n times
    z_dim: int = bounded(100, min=1)
    ngf: int = bounded(128, min=4)
    ndf: int = bounded(64, min=4)  # official scripts: 128
    text_features: int = bounded(128, min=1)  # nt: text projection inside D
    parts: Literal["cub", "mpii"] = "cub"  # keypoint set (15 CUB parts, 16 MPII joints)
    # Train the conditional keypoint generator G_k(z, t, k, s) next to the image GAN, so that
    # parts not given by the user (or all of them) can be filled in at generation time.
    keypoint_generator: bool = True
    keypoint_generator_width: int = bounded(128, min=4)  # its ngf = ndf (the official code needs them equal)
    # "mhp": the keypoint G of main_mhp.lua (region path: no batch norm after its linear map,
    # one residual block after its convolution); "cub": main_cub_keypoints.lua.
    variant: Literal["cub", "mhp"] = "cub"
    # G's factor-2 upsamplings from the 16 x 16 maps to the image: "deconv" (4 x 4 stride-2 transposed
    # convolutions, the paper) or "resize" (nearest-neighbour resize, then a 3 x 3 convolution: no
    # pixel checkerboard; not in the paper).
    upsample: Literal["deconv", "resize"] = "deconv"
    d_activation: Literal["leaky_relu", "elu"] = "leaky_relu"  # MHP: elu
    d_dropout: float = bounded(0.0, min=0.0, max=0.9)  # MHP: 0.2
    # D (and the keypoint critic) see real, wrong-text and fake examples in one batch, so that
    # their batch norms share statistics. The official code (separate forward passes, the
    # default) normalises each kind by its own statistics, which hides the difference between
    # an all-real and an all-fake batch from the head's batch norm: D learns far more slowly.
    d_joint_batch: bool = False
    # Official-code compatibility (models.md §3.9).
    warp_align_corners: bool = True  # W1: stnbhwd's corner-aligned grid (the paper is silent)
    flip_swaps_lr: bool = True  # W4: False keeps left/right part names on flipped images (official)
    # W2: G's loss reuses D's output from before D's update (official). Its gradient then goes back
    # through the pre-update D; the official backward (netD:updateGradInput) combines the cached
    # pre-update activations with the updated weights, a difference of one D step in G's gradient.
    reuse_d_forward: bool = False

    def validate(self) -> None:
        size = self.image_size
        if size % MAP_SIZE or (size // MAP_SIZE) & (size // MAP_SIZE - 1) or size < 2 * MAP_SIZE:
            raise UserError(f"model.image_size must be 16 times a power of two (32, 64, 128, 256, 512), got {size}")


@dataclasses.dataclass
class GawwnTextConfig:
    """Section ``text``: where the 1024-d caption embeddings come from (models.md §3.2, §3.8).

    ``encoder``: ``char-cnn-gru`` encodes the data's captions (tokens) with the char-CNN-GRU
    text encoder held by the model (so ``--caption "free text"`` works at generation); its
    weights come from ``encoder_run`` (a ``text-encoder`` run, the paper's setting), or are
    trained jointly with the GAN on the same batches (``train_encoder``), or stay at their
    initialisation. ``hashed-ngrams`` is a fixed, training-free encoder (hashed character
    n-grams; the default preset's, see :class:`~tfcoord.models.text_encoder.networks.HashedNgramEncoder`).
    ``precomputed`` uses the data's ``caption_embeddings`` (e.g. the published CUB vectors).
    """

    encoder: Literal["char-cnn-gru", "hashed-ngrams", "precomputed"] = "char-cnn-gru"
    embedding_dim: int = bounded(1024, min=1)
    num_captions: int = bounded(4, min=1)  # numCaption: a sample's text is the mean of this many (CUB 4, MHP 2)
    num_holdout: int = bounded(1, min=0)  # captions per image never used for training
    max_captions: int = bounded(10, min=1)  # captions per image considered (CUB 10)
    encoder_run: str = ""
    train_encoder: bool = False
    # char-CNN-GRU (Reed et al., CVPR 2016, hybrid model): three temporal convolutions, a GRU, a linear map;
    # (384, 512, 512) is the published CUB encoder's (cnn_dim 512), as configs/text-encoder/cub.yaml.
    cnn_channels: tuple[int, int, int] = (384, 512, 512)
    doc_length: int = bounded(201, min=48, max=1024)
    image_encoder_width: int = bounded(64, min=4)  # the image side of the joint embedding (train_encoder)
    encoder_lr: float = bounded(7e-4, min=0.0)  # RMSprop, as the official text encoder training
    center_features: bool = True  # train_encoder: see tfcoord.models.text_encoder.config


@dataclasses.dataclass
class GawwnLossConfig:
    """Section ``loss``: matching-aware GAN-CLS (models.md §3.6)."""

    cls_weight: float = bounded(0.5, min=0.0, max=1.0)  # weight of (real image, wrong text); fake gets 1 - it
    # D's target for (real image, right text); below 1 is one-sided label smoothing (Salimans et al.
    # 2016), not in the paper: it keeps a small D from saturating in short runs.
    real_label: float = bounded(1.0, min=0.5, max=1.0)
    keypoint_drop_prob: float = bounded(0.9, min=0.0, max=1.0)  # each conditioning part of G_k dropped with this
    joint_embedding_weight: float = bounded(1.0, min=0.0)  # train_encoder: weight of the text encoder's loss


@dataclasses.dataclass
class GawwnOptimConfig:
    """Section ``optim``: Adam for G, D (and G_k, D_k) with a step decay (models.md §3.6)."""

    lr: float = bounded(2e-4, min=0.0)
    beta_1: float = bounded(0.5, min=0.0, max=1.0)
    beta_2: float = bounded(0.999, min=0.0, max=1.0)
    epsilon: float = bounded(1e-8, min=0.0)  # Torch optim.adam's default
    # D's (and the keypoint critic's) learning rate is lr * d_lr_ratio; 1 in the paper.
    d_lr_ratio: float = bounded(1.0, min=0.0, max=10.0)
    lr_decay: float = bounded(0.5, min=0.0, max=1.0)
    # The learning rate is multiplied by lr_decay every this many steps (0: never). The paper
    # decays every 100 epochs: about 55 000 steps for CUB (8 855 training images, batch 16).
    decay_every: int = bounded(0, min=0)
    # Not in the paper (0 = off): sample from an exponential moving average of G's weights (batch-norm
    # statistics included), ``e <- d e + (1 - d) w`` after every step with ``d = min(g_ema_decay,
    # (1 + step) / (10 + step))`` (the warm-up of tf.train.ExponentialMovingAverage), so that short runs
    # are not stuck with their first weights. Generation, samples and export then use the average.
    g_ema_decay: float = bounded(0.0, min=0.0, max=1.0)


DEFAULT_PRESET = "tiny"
SECTIONS = {"model": GawwnConfig, "text": GawwnTextConfig, "loss": GawwnLossConfig, "optim": GawwnOptimConfig}
