"""InfinityGAN's patch geometry: feature sizes, steps between patches, canvas sizes (models.md §4.2, §4.9).

Every layer of the generator is padding-free, so each output side is an affine function of
the texture-synthesiser input side n: a plain 3x3 conv maps n -> n - 2, an up conv
n -> 2n - 3; the structure synthesiser eats ``radius`` latents per side per layer. For the
paper's 101 model (TS input 11, 4 up blocks)::

    z_l 35 -> 29 -> 23 -> 17 -> 11 (structure latent) -> 19, 17, 31, 29, 55, 53, 103, 101 px

One TS-input latent is 2^blocks = 16 px at the output, ``unit(layer)`` px at a layer. Two
patches ``latent_step`` latents apart (the largest step whose pixel step does not exceed the
patch: 6 latents = 96 px) overlap by 5 px and agree there exactly, so a canvas of
``n`` patches per axis has ``11 + 6 (n - 1)`` TS-input latents (+ 24 for z_l), ``101 + 96 (n - 1)``
pixels, and layer l's noise canvas has ``size_l + step_l (n - 1)`` samples.
"""

from __future__ import annotations

import dataclasses

from tfcoord.errors import UserError
from tfcoord.generation.tiles import covered_pixels


@dataclasses.dataclass(frozen=True)
class PatchGeometry:
    """Sizes of one patch and of a canvas of patches.

    Args:
        ts_input_size: side of the structure latent (texture-synthesiser input), 11 in the paper.
        num_blocks: up blocks of the texture synthesiser (each: up conv + conv + ToRGB).
        ss_layers: structure-synthesiser layers (4).
        unfold_radius: their feature-unfolding radius (3: 7x7 neighbourhoods).
    """

    ts_input_size: int = 11
    num_blocks: int = 4
    ss_layers: int = 4
    unfold_radius: int = 3

    # -- one patch ---------------------------------------------------------------------------
    @property
    def ss_padding(self) -> int:
        """Latents the structure synthesiser consumes per side (12)."""
        return self.ss_layers * self.unfold_radius

    @property
    def window(self) -> int:
        """Side of one patch's local-latent (and coordinate) window (35)."""
        return self.ts_input_size + 2 * self.ss_padding

    @property
    def num_convs(self) -> int:
        return 2 * self.num_blocks

    def conv_output_sizes(self, ts_input_size: int | None = None) -> list[int]:
        """Output side of every texture-synthesiser conv for a TS input side (19, 17, ..., 101)."""
        side = self.ts_input_size if ts_input_size is None else ts_input_size
        sizes = []
        for i in range(self.num_convs):
            side = 2 * side - 3 if i % 2 == 0 else side - 2
            sizes.append(side)
        return sizes

    def conv_input_sizes(self, ts_input_size: int | None = None) -> list[int]:
        """Input side of every conv (11, 19, 17, ..., 103)."""
        side = self.ts_input_size if ts_input_size is None else ts_input_size
        return [side] + self.conv_output_sizes(side)[:-1]

    def ss_sizes(self) -> list[int]:
        """Structure-synthesiser feature sides after each layer (29, 23, 17, 11)."""
        return [self.window - 2 * self.unfold_radius * (i + 1) for i in range(self.ss_layers)]

    @property
    def patch_size(self) -> int:
        return self.conv_output_sizes()[-1]

    @property
    def pixels_per_latent(self) -> int:
        return 2 ** self.num_blocks

    def output_units(self) -> list[int]:
        """Samples per TS-input latent at each conv output (2, 2, 4, 4, ..., 16, 16)."""
        return [2 ** (i // 2 + 1) for i in range(self.num_convs)]

    def input_units(self) -> list[int]:
        """Samples per TS-input latent at each conv input (1, 2, 2, 4, ..., 16)."""
        return [1] + self.output_units()[:-1]

    @property
    def latent_step(self) -> int:
        """TS-input latents between neighbouring patches (6): the largest whose pixel step fits the patch."""
        return self.patch_size // self.pixels_per_latent

    @property
    def pixel_step(self) -> int:
        return self.latent_step * self.pixels_per_latent

    def noise_steps(self) -> list[int]:
        """Per-patch step of every conv's noise (= output) canvas (12, 12, 24, 24, 48, 48, 96, 96)."""
        return [self.latent_step * unit for unit in self.output_units()]

    def input_steps(self) -> list[int]:
        """Per-patch step of every conv's input canvas (6, 12, 12, 24, 24, 48, 48, 96)."""
        return [self.latent_step * unit for unit in self.input_units()]

    def validate(self) -> None:
        if self.ts_input_size < 4:
            raise UserError(f"model.ts_input_size must be >= 4 (a smaller input does not grow through the up "
                            f"convs), got {self.ts_input_size}")
        if self.latent_step < 1:
            raise UserError(f"the patch ({self.patch_size} px) is smaller than one latent "
                            f"({self.pixels_per_latent} px); raise model.ts_input_size")

    # -- canvases ----------------------------------------------------------------------------
    def canvas_pixels(self, patches: int) -> int:
        """Pixels covered by ``patches`` patches along an axis (the reachable canvas sides)."""
        return covered_pixels(patches, self.patch_size, self.pixel_step)

    def canvas_ts_latents(self, patches: int) -> int:
        return self.ts_input_size + self.latent_step * (patches - 1)

    def canvas_local_latents(self, patches: int) -> int:
        """Side of the local-latent (and coordinate) canvas for ``patches`` patches (35 + 6 (n - 1))."""
        return self.window + self.latent_step * (patches - 1)

    def canvas_noise_sizes(self, patches: int) -> list[int]:
        """Side of every conv's noise canvas for ``patches`` patches."""
        return [size + step * (patches - 1) for size, step in zip(self.conv_output_sizes(), self.noise_steps())]

    def canvas_input_sizes(self, patches: int) -> list[int]:
        """Side of every conv's input canvas (what spatial style maps are cut from)."""
        return [size + step * (patches - 1) for size, step in zip(self.conv_input_sizes(), self.input_steps())]
