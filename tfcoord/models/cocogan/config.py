"""COCO-GAN configuration sections (defaults = the paper's CelebA 64 N2M2 setting).

Field names are explicit (``full_size``, ``macro_size``, ``micro_size``); the paper's
letter S means the micro size in figure captions and the macro size in the official
config names, so tfcoord never uses it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from tfcoord.config import bounded
from tfcoord.errors import UserError


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclasses.dataclass
class CocoGanConfig:
    """Section ``model``: architecture and coordinate geometry (models.md §1.2-1.5)."""

    full_size: tuple[int, int] = (64, 64)  # (height, width) of the full image
    macro_size: int = bounded(32, min=4)  # side of the macro patch D sees
    micro_size: int = bounded(16, min=4, max=256)  # side of the micro patch G emits
    z_dim: int = bounded(128, min=1)
    ngf: int = bounded(64, min=1)
    ndf: int = bounded(64, min=1)
    g_extra_layers: int = bounded(0, min=0, max=8)  # non-resizing residual blocks at the end of G
    coordinate_system: Literal["euclidean", "cylindrical"] = "euclidean"
    content_head: bool = False  # head Q for patch-guided generation
    aux_dim: int = bounded(128, min=1)  # hidden width of heads A and Q
    # Official-code compatibility (models.md §1.11); defaults follow the paper.
    cbn_variance: Literal["paper", "official_squared"] = "paper"  # Q1
    snlinear_init: Literal["truncated_normal", "glorot_uniform"] = "truncated_normal"  # Q8
    sn_grad_through_uv: bool = False  # Q10
    # BN of G's last block and of heads A, Q: Keras updates, or the official tf.contrib batch_norm's
    # (Bessel-corrected moving variance; the calls of one step all update from its starting value).
    bn_moving_stats: Literal["per_call", "official_tf1"] = "per_call"

    def validate(self) -> None:
        height, width = self.full_size
        micro, macro = self.micro_size, self.macro_size
        if not _is_power_of_two(micro):
            raise UserError(f"model.micro_size must be a power of two between 4 and 256, got {micro}")
        if macro % micro:
            raise UserError(f"model.micro_size ({micro}) must divide model.macro_size ({macro}); "
                            f"e.g. micro_size={macro // 2}")
        for name, side in (("height", height), ("width", width)):
            if side % micro:
                raise UserError(f"model.full_size {name} {side} must be a multiple of model.micro_size ({micro})")
            if side < macro:
                raise UserError(f"model.macro_size ({macro}) must not exceed the full {name} ({side})")
        if self.coordinate_system == "euclidean" and (height == macro or width == macro):
            raise UserError("model.macro_size must be smaller than model.full_size on both axes "
                            "(the macro coordinate needs at least two positions)")
        if self.coordinate_system == "cylindrical" and height == macro:
            raise UserError("model.macro_size must be smaller than the full height for cylindrical coordinates")
        if not _is_power_of_two(macro) or macro < 8:
            raise UserError(f"model.macro_size must be a power of two >= 8 (the discriminator halves it), got {macro}")


@dataclasses.dataclass
class CocoGanLossConfig:
    """Section ``loss``: WGAN-GP + spatial consistency (+ content) losses (models.md §1.7)."""

    gp_weight: float = bounded(10.0, min=0.0)  # lambda
    spatial_weight: float = bounded(100.0, min=0.0)  # alpha (10 000 for extrapolation presets)
    spatial_loss: Literal["mse", "l2_norm"] = "mse"  # Q12
    content_weight: float = bounded(0.0, min=0.0)  # weight of L_Q (needs model.content_head)
    gp_norm: Literal["per_sample", "official_axis1"] = "per_sample"  # Q2
    gp_alpha: Literal["per_sample", "per_element"] = "per_sample"  # Q2
    spatial_head_optimizers: Literal["d", "both"] = "d"  # Q4
    # > 0 turns on the paper's extrapolation fine-tuning: after each normal iteration, an
    # extra step on fake macro patches at coordinates up to this many steps beyond [-1, 1].
    extrapolation_steps: int = bounded(0, min=0, max=4)


@dataclasses.dataclass
class CocoGanOptimConfig:
    """Section ``optim``: Adam with TTUR learning rates (models.md §1.8)."""

    lr_g: float = bounded(1e-4, min=0.0)
    lr_d: float = bounded(4e-4, min=0.0)
    lr_q: float = bounded(1e-4, min=0.0)
    beta_1: float = bounded(0.0, min=0.0, max=1.0)
    beta_2: float = bounded(0.999, min=0.0, max=1.0)
    epsilon: float = bounded(1e-8, min=0.0)  # TF1 AdamOptimizer's default, as in the official code
    # Not in the paper (0 = off): sample from an exponential moving average of G's weights,
    # ``e <- d e + (1 - d) w`` after every step with ``d = min(g_ema_decay, (1 + step) / (10 + step))``.
    # Generation, samples and export then use the average.
    g_ema_decay: float = bounded(0.0, min=0.0, max=1.0)


DEFAULT_PRESET = "tiny"
SECTIONS = {"model": CocoGanConfig, "loss": CocoGanLossConfig, "optim": CocoGanOptimConfig}
