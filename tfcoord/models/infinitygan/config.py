"""InfinityGAN configuration sections (defaults = the paper's 101/197 Flickr-Landscape model).

models.md §4.2-4.8 and the official ``configs/model/InfinityGAN.yaml``: global latent 512,
local latent 256, 8-layer mapping, 4-layer structure synthesiser with unfold radius 3,
texture synthesiser of four 512-channel up blocks (11 -> 101 px), real images resized to 128
then 197 and cut into 101 px patches; R1 10 every 16 steps, path length 2 every 4 steps,
diversity 1, vertical coordinate loss 1; Adam 0.002, betas (0, 0.99), batch 16.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from tfcoord.config import bounded
from tfcoord.errors import UserError


@dataclasses.dataclass
class InfinityGanConfig:
    """Section ``model``: architecture, patch geometry and coordinates (models.md §4.2-4.6)."""

    full_size: int = bounded(197, min=8)  # side of the real images patches are cut from
    extra_pre_resize: int = bounded(128, min=0)  # resize real images to this side first (0 = off)
    ts_input_size: int = bounded(11, min=4)  # side of the structure latent
    # Width of each texture-synthesiser up block (up conv + conv + ToRGB); the number of blocks
    # sets the patch size: 4 -> 101, 5 -> 197, 6 -> 389, 7 -> 773 (TS input 11).
    ts_channels: tuple[int, ...] = (512, 512, 512, 512)
    global_latent_dim: int = bounded(512, min=1)
    local_latent_dim: int = bounded(256, min=1)
    n_mlp: int = bounded(8, min=1, max=16)
    lr_mlp: float = bounded(0.01, min=0.0)
    ss_layers: int = bounded(4, min=1, max=16)
    ss_unfold_radius: int = bounded(3, min=1, max=8)
    # Structure-synthesiser layers as feature unfolding + matmul (the paper's formulation) or as
    # the equivalent 'valid' k x k conv (same numbers up to round-off, same variables). conv is
    # the default: as fast at the paper size, and one CONV_2D in TFLite where unfolding is 49
    # strided slices per layer (TFLite per patch 3.45 -> 1.47 ms for the tiny preset).
    ss_implementation: Literal["unfold", "conv"] = "conv"
    # Coordinates (models.md §4.3): landscape = [tanh v, cos pi u, sin pi u]; torus = maps config.
    coord_system: Literal["landscape", "torus"] = "landscape"
    coord_vertical_positions: int = bounded(10, min=1)  # V, coord_vert_sample_size
    coord_horizontal_occupy_ratio: float = bounded(0.25, min=0.01, max=1.0)
    coord_vertical_cut: float = bounded(3.0, min=0.01)
    coord_jitter: Literal["shared", "official_per_channel"] = "shared"  # quirk I5
    coord_head: bool = True  # D's auxiliary coordinate head (off for the torus maps model)
    # Discriminator (StyleGAN2 residual D, models.md §4.6).
    d_channel_multiplier: int = bounded(2, min=1)
    d_width_multiplier: float = bounded(1.0, min=0.001)
    # Minibatch-stddev group: 4 (StyleGAN2), 0 = the whole (per-replica) batch, or "official"
    # (quirk I3: the official helper returns the whole batch for batch 16).
    stddev_group: int | Literal["official"] = 4

    def geometry(self):
        from tfcoord.models.infinitygan.geometry import PatchGeometry

        return PatchGeometry(self.ts_input_size, len(self.ts_channels), self.ss_layers, self.ss_unfold_radius)

    def coordinates(self):
        from tfcoord.models.infinitygan.geometry import InfinityGanCoordinates

        return InfinityGanCoordinates(
            window=self.geometry().window, ts_input_size=self.ts_input_size,
            vertical_positions=self.coord_vertical_positions,
            horizontal_occupy_ratio=self.coord_horizontal_occupy_ratio, vertical_cut=self.coord_vertical_cut,
            system=self.coord_system, jitter=self.coord_jitter)

    def validate(self) -> None:
        if not self.ts_channels or any(c < 1 for c in self.ts_channels):
            raise UserError(f"model.ts_channels must list at least one positive width, got {list(self.ts_channels)}")
        geometry = self.geometry()
        geometry.validate()
        if self.full_size < geometry.patch_size:
            raise UserError(f"model.full_size ({self.full_size}) must be >= the patch size ({geometry.patch_size} px "
                            f"for ts_input_size {self.ts_input_size} and {len(self.ts_channels)} up blocks)")
        if isinstance(self.stddev_group, int) and self.stddev_group < 0:
            raise UserError(f"model.stddev_group must be >= 0 or 'official', got {self.stddev_group}")
        if self.coord_system == "torus" and self.coord_head:
            raise UserError("model.coord_head needs the landscape coordinates (the torus maps model has no "
                            "vertical coordinate to regress); set model.coord_head=false")


@dataclasses.dataclass
class InfinityGanLossConfig:
    """Section ``loss``: L_D = adv + ar + R1, L_G = -adv + ar + div + path (models.md §4.7)."""

    r1_gamma: float = bounded(10.0, min=0.0)
    r1_every: int = bounded(16, min=1)  # lazy regularisation interval (0-th step included)
    path_weight: float = bounded(2.0, min=0.0)
    path_every: int = bounded(4, min=1)
    path_batch_shrink: int = bounded(2, min=1)
    path_decay: float = bounded(0.01, min=0.0, max=1.0)
    style_mixing: float = bounded(0.9, min=0.0, max=1.0)  # probability per batch
    coord_weight: float = bounded(1.0, min=0.0)  # auxiliary (vertical) coordinate loss
    coord_vertical_only: bool = True  # coord_ac_vert_only
    # Target of a fake's coordinate loss: the window it was generated from ("paired": odd samples share
    # their pair's coordinates), or, quirk I8, the window drawn for it before the pairing replaced it.
    fake_coord_targets: Literal["paired", "official_drawn"] = "paired"
    diversity_weight: float = bounded(1.0, min=0.0)
    # Quirk I1: the paper divides L1 distances; the official code uses an angular *similarity*.
    diversity_distance: Literal["l1", "official_angular"] = "l1"


@dataclasses.dataclass
class InfinityGanOptimConfig:
    """Section ``optim``: Adam with StyleGAN2's lazy-regularisation ratios, G EMA."""

    lr: float = bounded(0.002, min=0.0)
    beta_1: float = bounded(0.0, min=0.0, max=1.0)
    beta_2: float = bounded(0.99, min=0.0, max=1.0)
    epsilon: float = bounded(1e-8, min=0.0)  # torch.optim.Adam's, added where PyTorch adds it (PyTorchAdam)
    ema_decay: float = bounded(0.5 ** (32 / 10000), min=0.0, max=1.0)  # official accumulate() factor


DEFAULT_PRESET = "tiny"
SECTIONS = {"model": InfinityGanConfig, "loss": InfinityGanLossConfig, "optim": InfinityGanOptimConfig}
