"""CIPS configuration sections (defaults = the paper's FFHQ 256 CIPSskip setting, models.md §2.3-2.7)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

from tfcoord.config import bounded
from tfcoord.errors import UserError

# The largest request ``python -m tfcoord.generate`` and the library functions render as one
# image: at most 4096^2 pixels (a 4096^2 CIPSskip image is ~114 TFLOP; it is rendered in
# chunks, so memory stays bounded) and at most 16384 pixels on a side (wide panoramas).
MAX_OUTPUT_PIXELS = 4096 * 4096
MAX_OUTPUT_SIDE = 16384


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclasses.dataclass
class CipsConfig:
    """Section ``model``: generator and discriminator architecture (models.md §2.3, §2.5)."""

    size: int = bounded(256, min=4, max=1024)  # training resolution = embedding table side
    architecture: Literal["skip", "res"] = "skip"  # CIPSskip (paper default) or CIPSres (Landscapes)
    hidden_size: int = bounded(512, min=1)  # Fourier-feature and embedding channels
    style_dim: int = bounded(512, min=1)
    n_mlp: int = bounded(8, min=1, max=16)
    lr_mlp: float = bounded(0.01, min=0.0)
    channel_multiplier: int = bounded(2, min=1, max=8)
    width_multiplier: float = bounded(1.0, min=0.001, max=4.0)  # G stage widths (1 = paper)
    activation: Literal["lrelu", "sin", "sinrelu"] = "lrelu"
    use_fourier: bool = True  # ablation "no Fourier features"
    use_embedding: bool = True  # ablation CIPS-NE
    coordinate_system: Literal["euclidean", "cylindrical"] = "euclidean"  # cylindrical: 360 degree panoramas
    d_width_multiplier: float = bounded(1.0, min=0.001, max=4.0)
    d_input: Literal["rgb", "rgb_coords"] = "rgb"  # official --img2dis (all paper runs) or RGB + coords
    stddev_group: int = bounded(4, min=0)  # minibatch stddev group (0 = whole per-replica batch)
    # Which samples share a stddev group: consecutive ones (the same groups for any replica count)
    # or the official strided view(group, -1) (converters select it; statistically equivalent).
    stddev_grouping: Literal["contiguous", "strided"] = "contiguous"
    # Patch training (official --crop): 0 = whole images; P (power of two < size) trains G and D on
    # P x P coordinate crops at log2(size/P) + 1 scales (models.md §2.6).
    crop: int = bounded(0, min=0)
    # Official-code compatibility (models.md §2.9); defaults follow the paper.
    embedding_sampling: Literal["aligned", "official"] = "aligned"  # C1
    truncate_space: Literal["w", "z"] = "w"  # C2
    train_noise: Literal["random", "none"] = "random"  # C3: per-pixel noise during training

    def validate(self) -> None:
        if not _is_power_of_two(self.size):
            raise UserError(f"model.size must be a power of two (the official channel table), got {self.size}")
        if self.crop:
            if not _is_power_of_two(self.crop) or not 8 <= self.crop < self.size:
                raise UserError(f"model.crop must be 0 (whole images) or a power of two >= 8 below model.size "
                                f"({self.size}), got {self.crop}")
        elif self.size < 8:
            raise UserError(f"model.size must be >= 8 (the discriminator halves it), got {self.size}")
        if not (self.use_fourier or self.use_embedding):
            raise UserError("model.use_fourier and model.use_embedding cannot both be false: "
                            "CIPS needs at least one coordinate encoding")
        if self.coordinate_system == "cylindrical" and self.embedding_sampling == "official":
            raise UserError("model.embedding_sampling=official has no cylindrical variant (the official code has "
                            "no panoramas); use aligned with model.coordinate_system=cylindrical")

    @property
    def coord_dim(self) -> int:
        return 3 if self.coordinate_system == "cylindrical" else 2

    @property
    def training_size(self) -> int:
        """Side of the images G and D see in a training step (the crop, or the whole image)."""
        return self.crop or self.size

    @property
    def num_scales(self) -> int:
        """Official ``n_scales = log2(size / crop) + 1`` (1 without patch training)."""
        return int(math.log2(self.size // self.crop)) + 1 if self.crop else 1


@dataclasses.dataclass
class CipsLossConfig:
    """Section ``loss``: non-saturating logistic loss, lazy R1, EMA, augmentation (models.md §2.6)."""

    r1_gamma: float = bounded(10.0, min=0.0)
    r1_every: int = bounded(16, min=1)  # lazy regularisation interval of D (d_reg_every)
    g_reg_every: int = bounded(4, min=1)  # only scales G's Adam settings (G has no regulariser)
    ema_decay: float = bounded(0.5 ** (32 / 10000), min=0.0, max=1.0)  # official accum = 0.5^(32/10k)

    # The flip augmentation is data.flip (one setting for the pipeline's flip and this model's); the old
    # loss.horizontal_flip still loads, e.g. from the config.yaml of existing runs (tfcoord.config.move_renamed_keys).
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"horizontal_flip": "data.flip"}


@dataclasses.dataclass
class CipsOptimConfig:
    """Section ``optim``: Adam lr 0.002, betas (0, 0.99), adjusted by the lazy-regularisation ratio."""

    lr: float = bounded(0.002, min=0.0)
    beta_1: float = bounded(0.0, min=0.0, max=1.0)
    beta_2: float = bounded(0.99, min=0.0, max=1.0)
    epsilon: float = bounded(1e-8, min=0.0)  # torch.optim.Adam's default, added where PyTorch adds it (PyTorchAdam)
    # lr * c and betas ** c with c = k / (k + 1) (StyleGAN2 lazy regularisation; official CIPS).
    reg_ratio_adjustment: bool = True


DEFAULT_PRESET = "tiny"
SECTIONS = {"model": CipsConfig, "loss": CipsLossConfig, "optim": CipsOptimConfig}
