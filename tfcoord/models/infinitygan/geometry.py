"""InfinityGAN's geometry: patch and canvas sizes (models.md §4.2, §4.9) and coordinates (§4.3).

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

The coordinates of the local-latent grid (:class:`InfinityGanCoordinates`, paper §3.1, official
coord_handler.py) are ``[tanh(v), cos(pi u), sin(pi u)]``: the jittered training meta-grid,
test-time canvas windows, panorama mode (period = canvas width), torus (maps).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfcoord.errors import UserError
from tfcoord.generation.tiles import covered_pixels

# InfinityGanCoordinates imports keras.ops where it uses them: config validation imports this module
# (PatchGeometry) before TensorFlow starts, and importing keras would start it.


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

    def canvas_local_latents(self, patches: int) -> int:
        """Side of the local-latent (and coordinate) canvas for ``patches`` patches (35 + 6 (n - 1))."""
        return self.window + self.latent_step * (patches - 1)

    def canvas_noise_sizes(self, patches: int) -> list[int]:
        """Side of every conv's noise canvas for ``patches`` patches."""
        return [size + step * (patches - 1) for size, step in zip(self.conv_output_sizes(), self.noise_steps())]

    def canvas_input_sizes(self, patches: int) -> list[int]:
        """Side of every conv's input canvas (what spatial style maps are cut from)."""
        return [size + step * (patches - 1) for size, step in zip(self.conv_input_sizes(), self.input_steps())]


@dataclasses.dataclass(frozen=True)
class InfinityGanCoordinates:
    """InfinityGAN's coordinates of the local-latent grid, ``[tanh(v), cos(pi u), sin(pi u)]``.

    v is vertical (rows), u horizontal (columns); the paper writes
    ``c = (tanh(i_y), cos(i_x / T), sin(i_x / T))``. The vertical coordinate saturates
    (sky stays up, ground down), the horizontal one is periodic (scenery repeats sideways).

    * Training meta-grid: ``meta_rows`` x ``meta_cols`` = (window + V) x round(window / 0.25)
      = 45 x 140 for the paper, ``v_raw(i) = step * (i - (meta_rows - 1) / 2)`` with
      ``step = 2 * cut / (ts_input_size + V - 1)`` = 0.3 (so v_raw in [-6.6, 6.6]) and
      ``u(j) = 2 j / (meta_cols - 1) - 1``. Each sample takes a window x window crop at row
      ``row_start`` in 0..V-1 and column ``col_start`` in 0..meta_cols-1 (columns wrap), plus a
      uniform jitter of +-half a step on v_raw and on u (quirk I5: the official code jitters the
      cos and the sin channel independently, ``jitter="official_per_channel"``).
    * Test time (no jitter): for a canvas of R latent rows, ``v_raw(i) = step * (i - (R-1)/2)``
      (vertically centred) and ``u(j) = 2 j / (meta_cols - 1) - 1`` (period ``meta_cols - 1``
      columns, starting at -1); in panorama mode ``u(j) = 2 j / P - 1`` with P the canvas width,
      so a 360 degree canvas closes on itself.
    * ``system="torus"`` (the maps configuration): ``[cos pi v, sin pi v, cos pi u, sin pi u]`` with
      ``v(i) = 2 i / (meta_cols - 1) - 1`` on a meta_cols x meta_cols meta-grid that wraps on both axes.
    """

    window: int = 35  # local-latent window side: ts_input_size + 2 * structure padding
    ts_input_size: int = 11
    vertical_positions: int = 10  # V, coord_vert_sample_size
    horizontal_occupy_ratio: float = 0.25
    vertical_cut: float = 3.0  # coord_vert_cut_pt
    system: str = "landscape"  # or "torus"
    jitter: str = "shared"  # or "official_per_channel" (quirk I5)

    @property
    def coord_dim(self) -> int:
        return 4 if self.system == "torus" else 3

    @property
    def meta_cols(self) -> int:
        return int(round(self.window / self.horizontal_occupy_ratio))

    @property
    def meta_rows(self) -> int:
        return self.meta_cols if self.system == "torus" else self.window + self.vertical_positions

    @property
    def row_starts(self) -> int:
        """Number of training window rows (V; every row of the torus)."""
        return self.meta_rows if self.system == "torus" else self.vertical_positions

    @property
    def vertical_step(self) -> float:
        """Spacing of v_raw between latent rows (0.3 for the paper)."""
        return 2.0 * self.vertical_cut / (self.ts_input_size + self.vertical_positions - 1)

    @property
    def horizontal_step(self) -> float:
        return 2.0 / (self.meta_cols - 1)

    # -- raw (pre-activation) values ----------------------------------------------------------
    def vertical_raw(self, rows, total_rows: int):
        """v_raw of latent rows ``rows`` of a grid with ``total_rows`` rows (centred)."""
        from keras import ops

        if self.system == "torus":
            return ops.cast(rows, "float32") * self.horizontal_step - 1.0
        return (ops.cast(rows, "float32") - (total_rows - 1) / 2.0) * self.vertical_step

    def horizontal_raw(self, cols, period: int | None = None):
        """u of latent columns ``cols``: ``2 j / (meta_cols - 1) - 1``, or ``2 j / period - 1``."""
        from keras import ops

        scale = self.horizontal_step if period is None else 2.0 / period
        return ops.cast(cols, "float32") * scale - 1.0

    def encode(self, vertical, horizontal_cos, horizontal_sin=None):
        """Raw values -> coordinate channels (last axis). ``horizontal_sin`` defaults to the cos input.

        Landscape: ``[tanh(v), cos(pi u_c), sin(pi u_s)]``; torus: ``[cos pi v, sin pi v, cos pi u, sin pi u]``
        (for the torus ``vertical`` may be a pair (v_cos, v_sin) of raw inputs).
        """
        from keras import ops

        if horizontal_sin is None:
            horizontal_sin = horizontal_cos
        if self.system == "torus":
            v_cos, v_sin = vertical if isinstance(vertical, tuple) else (vertical, vertical)
            return ops.stack([ops.cos(math.pi * v_cos), ops.sin(math.pi * v_sin),
                              ops.cos(math.pi * horizontal_cos), ops.sin(math.pi * horizontal_sin)], axis=-1)
        return ops.stack([ops.tanh(vertical), ops.cos(math.pi * horizontal_cos),
                          ops.sin(math.pi * horizontal_sin)], axis=-1)

    # -- training ------------------------------------------------------------------------------
    def training_coords(self, row_start, col_start, jitter):
        """Coordinates of training windows: (B, window, window, coord_dim).

        Args:
            row_start, col_start: (B,) integer window origins on the meta-grid
                (``0 <= row_start < row_starts``, ``0 <= col_start < meta_cols``).
            jitter: (B, 4) uniform draws in [-1, 1], scaled here to +-half a grid step:
                column 0 jitters v (the torus' cos-v channel), 1 jitters u (cos channel), and with
                ``jitter="official_per_channel"`` 2 jitters the sin-u channel and 3 the torus'
                sin-v channel independently (quirk I5); otherwise columns 2 and 3 are unused.
        """
        from keras import ops

        n = self.window
        offsets = ops.arange(n, dtype="int32")
        rows = ops.expand_dims(ops.cast(row_start, "int32"), -1) + offsets  # (B, n)
        cols = (ops.expand_dims(ops.cast(col_start, "int32"), -1) + offsets) % self.meta_cols
        if self.system == "torus":
            rows = rows % self.meta_rows
        half_v = (self.horizontal_step if self.system == "torus" else self.vertical_step) / 2.0
        half_u = self.horizontal_step / 2.0
        jitter = ops.cast(jitter, "float32")
        per_channel = self.jitter == "official_per_channel"
        v = self.vertical_raw(rows, self.meta_rows) + ops.expand_dims(jitter[:, 0] * half_v, -1)  # (B, n)
        u = self.horizontal_raw(cols) + ops.expand_dims(jitter[:, 1] * half_u, -1)
        u_sin = self.horizontal_raw(cols) + ops.expand_dims(jitter[:, 2] * half_u, -1) if per_channel else u
        v_rows = ops.expand_dims(v, 2) * ops.ones((1, 1, n))  # (B, n, n)
        u_cols = ops.expand_dims(u, 1) * ops.ones((1, n, 1))
        u_sin_cols = ops.expand_dims(u_sin, 1) * ops.ones((1, n, 1))
        if self.system == "torus":
            v_sin = self.vertical_raw(rows, self.meta_rows) + ops.expand_dims(jitter[:, 3] * half_v, -1) \
                if per_channel else v
            v_sin_rows = ops.expand_dims(v_sin, 2) * ops.ones((1, 1, n))
            return self.encode((v_rows, v_sin_rows), u_cols, u_sin_cols)
        return self.encode(v_rows, u_cols, u_sin_cols)

    def fake_ac_targets(self, row_start, col_start):
        """Targets of D's coordinate head for generated windows: (B, 3) = [2 r / (V-1) - 1, cos, sin]."""
        from keras import ops

        vertical = 2.0 * ops.cast(row_start, "float32") / max(1, self.row_starts - 1) - 1.0
        angle = math.pi * self.horizontal_raw(col_start)
        return ops.stack([vertical, ops.cos(angle), ops.sin(angle)], axis=-1)

    # -- test time -----------------------------------------------------------------------------
    def canvas_coords(self, row_start: int, num_rows: int, col_start: int, num_cols: int, total_rows: int,
                      period: int | None = None) -> np.ndarray:
        """Coordinates of rows ``row_start..+num_rows`` and columns ``col_start..+num_cols`` of a canvas
        of ``total_rows`` latent rows, (num_rows, num_cols, coord_dim) float32 NumPy.

        Every value depends only on its absolute canvas position, so the windows of two
        overlapping patches agree exactly. ``period`` (panorama mode) makes u periodic in the
        canvas width: column j and j + period get the same coordinate.
        """
        return canvas_coords(self.system, self.vertical_step, self.meta_cols - 1, row_start, num_rows, col_start,
                             num_cols, total_rows, period)


def canvas_coords(system: str, vertical_step: float, horizontal_period: int, row_start: int, num_rows: int,
                  col_start: int, num_cols: int, total_rows: int, period: int | None = None) -> np.ndarray:
    """:meth:`InfinityGanCoordinates.canvas_coords` from the numbers a serving description carries
    (``coordinate_system``, ``vertical_step``, ``horizontal_period`` = meta_cols - 1), so that
    a client builds exactly the library's coordinates without the model's config (:func:`tile_coordinates`)."""
    rows = np.arange(row_start, row_start + num_rows, dtype=np.float64)
    cols = np.arange(col_start, col_start + num_cols, dtype=np.float64)
    if period is not None:
        cols = np.mod(cols, period)
    horizontal_step = 2.0 / horizontal_period
    if system == "torus":
        v = rows * horizontal_step - 1.0
        v_channels = [np.cos(np.pi * v), np.sin(np.pi * v)]
    else:
        v_channels = [np.tanh((rows - (total_rows - 1) / 2.0) * vertical_step)]
    u = cols * (horizontal_step if period is None else 2.0 / period) - 1.0
    channels = [np.repeat(c[:, None], num_cols, axis=1) for c in v_channels]
    channels += [np.repeat(f(np.pi * u)[None, :], num_rows, axis=0) for f in (np.cos, np.sin)]
    return np.stack(channels, axis=-1).astype(np.float32)


def tile_coordinates(recipe: dict, tile_size, rows, cols, plan):
    """Windows of the canvas coordinates (:func:`canvas_coords`) of tile grid indices (rows, cols) of the client's
    tile plan: ``window`` latents at ``stride`` latents per tile, v centred on the canvas' latent rows."""
    window, stride = int(recipe["window"]), int(recipe["stride"])
    total_rows = window + stride * (plan.rows - 1)  # latent rows of the covered canvas: the horizon's centre
    tiles = [canvas_coords(recipe["coordinate_system"], float(recipe["vertical_step"]), int(recipe["horizontal_period"]),
                           int(r) * stride, window, int(c) * stride, window, total_rows, plan.period_latents)
             for r, c in zip(np.ravel(rows), np.ravel(cols))]
    return np.stack(tiles).astype("float32")
