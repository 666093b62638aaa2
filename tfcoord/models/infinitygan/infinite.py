"""Infinite generation: any H x W canvas, patch by patch, seam-free, with bounded memory (models.md §4.9).

Everything a patch needs is indexed by its absolute canvas position, so two patches agree
exactly where they overlap (every layer is padding-free):

* the local latent z_l and every layer's noise are :class:`~tfcoord.generation.fields.PositionalField` s:
  Gaussian values, each a hash of ``(seed, field, row, column, channel)`` (a recipe any language
  reimplements; the fields' seed paths: :mod:`.sampling`), computed tile by tile on demand (an LRU
  cache keeps the tiles of the current patch rows), so no canvas-sized latent array is ever held;
* the coordinates are a formula of the position (:meth:`.geometry.InfinityGanCoordinates.canvas_coords`);
* z_g (or one style per centre, see :mod:`.fusion`) is shared by the canvas.

A canvas of n x m patches covers ``P + step (n - 1)`` x ``P + step (m - 1)`` pixels (P = 101,
step = 96 for the paper model; :class:`~.geometry.PatchGeometry`). Other sizes are **rounded
up** to the next reachable size and **centre-cropped** (the image returned has exactly the
requested size). Panorama mode (``panorama=True``) makes the canvas periodic horizontally
with period = the requested width (which must be a multiple of the pixels per latent, 16 for
the paper model): coordinates use ``u = 2 j / P - 1`` and z_l / noise columns are taken
modulo the width, so the image closes on itself.

Memory: the output array plus one batch of patches (``batch_patches``) plus the tile caches;
``direct=True`` instead feeds the whole canvas through the network in one call (memory
O(canvas), the official "direct generation"), which gives the same image.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from tfcoord.errors import UserError
from tfcoord.generation import tiles as planner
from tfcoord.generation.fields import PositionalField, check_seeding
from tfcoord.models.infinitygan.sampling import FIELD_LOCAL, FIELD_NOISE, LOCAL_FIELD_TILE, NOISE_FIELD_TILE


@dataclasses.dataclass(frozen=True, init=False)
class CanvasPlan(planner.TileGrid):
    """Which patches make a ``height`` x ``width`` canvas and where they go (see the module docstring): the
    shared planner's grid of patches at the patch stride, centre-cropped. ``offset`` is the top-left pixel of
    the returned image inside the covered canvas; a panorama starts at canvas column 0, so that image column x
    is canvas column x and columns x and x + period get the same inputs."""

    geometry: object = None  # PatchGeometry
    period_width: int | None = None  # panorama period in px (default: the width)

    def __init__(self, geometry, height: int, width: int, panorama: bool = False, period_width: int | None = None):
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "period_width", period_width)
        super().__init__(height, width, (geometry.patch_size,) * 2, (geometry.pixel_step,) * 2, "center", panorama)
        if panorama:
            planner.panorama_period(period_width or width, geometry.pixels_per_latent)

    @property
    def num_patches(self) -> int:
        return self.num_tiles

    @property
    def canvas_height(self) -> int:
        """Pixels the patches cover vertically (>= height: the reachable size rounded up)."""
        return self.covered_height

    @property
    def canvas_width(self) -> int:
        return self.covered_width

    @property
    def local_rows(self) -> int:
        return self.geometry.canvas_local_latents(self.rows)

    @property
    def local_cols(self) -> int:
        return self.geometry.canvas_local_latents(self.cols)

    @property
    def period(self) -> int | None:
        """Horizontal period in TS-input latents (panorama mode), else None."""
        return (self.period_width or self.width) // self.geometry.pixels_per_latent if self.panorama else None


class CanvasLatents:
    """Position-indexed inputs of one canvas: z_l, coordinates and per-layer noise (``noise=False``: none);
    ``seeding`` picks the fields' recipe (:mod:`.sampling`: ``portable``, or ``legacy`` for images made before it)."""

    def __init__(self, model, plan: CanvasPlan, seed: int, noise: bool = True, seeding: str = "portable"):
        self.plan, self.noise, self.geometry, self.coordinates = plan, noise, plan.geometry, model.coordinates
        period, local_dim = plan.period, model.config.model.local_latent_dim
        self.local = PositionalField(seed, (FIELD_LOCAL,), local_dim, tile=LOCAL_FIELD_TILE, period=period,
                                     cache_tiles=max(64, 4 * (plan.local_cols // LOCAL_FIELD_TILE + 2)),
                                     seeding=seeding)
        self.noises = [PositionalField(seed, (FIELD_NOISE, i), 1, tile=NOISE_FIELD_TILE,
                                       period=None if period is None else unit * period,
                                       cache_tiles=max(16, 3 * (unit * plan.local_cols // NOISE_FIELD_TILE + 2)),
                                       seeding=seeding)
                       for i, unit in enumerate(self.geometry.output_units())]

    def coords(self, top: int, left: int, size_rows: int, size_cols: int) -> np.ndarray:
        return self.coordinates.canvas_coords(top, size_rows, left, size_cols, total_rows=self.plan.local_rows,
                                              period=self.plan.period)

    def patch(self, row: int, col: int) -> dict:
        """Inputs of patch (row, col): windows of every canvas."""
        g = self.geometry
        top, left = row * g.latent_step, col * g.latent_step
        inputs = {"local_latent": self.local.window(top, left, g.window, g.window),
                  "coords": self.coords(top, left, g.window, g.window)}
        if self.noise:
            sizes, steps = g.conv_output_sizes(), g.noise_steps()
            inputs["noises"] = [field.window(row * step, col * step, size, size)
                                for field, size, step in zip(self.noises, sizes, steps)]
        return inputs

    def whole(self) -> dict:
        """Inputs of the whole canvas at once (for direct generation and inversion)."""
        p, g = self.plan, self.geometry
        inputs = {"local_latent": self.local.window(0, 0, p.local_rows, p.local_cols),
                  "coords": self.coords(0, 0, p.local_rows, p.local_cols)}
        if self.noise:
            heights, widths = g.canvas_noise_sizes(p.rows), g.canvas_noise_sizes(p.cols)
            inputs["noises"] = [field.window(0, 0, h, w) for field, h, w in zip(self.noises, heights, widths)]
        return inputs


def check_latent(name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as float32 of exactly ``shape`` (None = any), finite; UserError otherwise."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        expected = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise UserError(f"{name} must have shape {expected}, got {tuple(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{name} contains NaN or infinite values; pass finite latents")
    return array


@dataclasses.dataclass
class StyleCentre:
    """One style of a canvas: its z_g, optionally an explicit w+ (e.g. from inversion), and for
    spatial style fusion its relative position (row, col) in [0, 1] x [0, 1] of the canvas."""

    global_latent: np.ndarray
    wplus: np.ndarray | None = None
    position: tuple[float, float] = (0.5, 0.5)


class PatchRenderer:
    """Renders patches (row, col) of one canvas: its latents, its style(s) and, for fusion, its style maps."""

    def __init__(self, model, plan: CanvasPlan, latents: CanvasLatents, styles, fusion_blur: int = 127,
                 fusion_blur_type: str = "mean", xla: bool = False):
        from tfcoord.models.infinitygan import fusion

        self.model, self.plan, self.latents, self.geometry = model, plan, latents, plan.geometry
        dim = model.config.model.global_latent_dim
        n_latent = model.sampler.generator.texture.n_latent
        if not styles:
            raise UserError("styles must hold at least one style centre")
        for i, centre in enumerate(styles):
            centre.global_latent = check_latent(f"styles[{i}].global_latent", centre.global_latent, (dim,))
            centre.wplus = model.sampler.style_wplus(centre.global_latent) if centre.wplus is None else \
                check_latent(f"styles[{i}].wplus", centre.wplus, (n_latent, dim))
        self.fused = len(styles) > 1
        if self.fused and plan.panorama:
            raise UserError("spatial style fusion is not available in panorama mode; use one style")
        self.maps = fusion.fusion_maps(plan, [c.position for c in styles], fusion_blur, fusion_blur_type) \
            if self.fused else None
        self.centre_latents = np.stack([c.global_latent for c in styles])  # (K, D)
        self.centre_wplus = np.stack([c.wplus for c in styles])  # (K, n_latent, D)
        self.renderers = model.sampler.functions(xla)
        # Rendered patches kept for neighbouring tiles of the canvas engine (0 = no cache).
        self.cache, self.cache_patches = collections.OrderedDict(), 0

    def run(self, inputs: list, windows=None) -> np.ndarray:
        """One network call on a list of patch inputs (and their fusion-map windows)."""
        count = len(inputs)
        local = np.stack([b["local_latent"] for b in inputs])
        coords = np.stack([b["coords"] for b in inputs])
        noises = [np.stack([b["noises"][i] for b in inputs]) for i in range(self.geometry.num_convs)] \
            if self.latents.noise else []
        if self.fused:
            ss_map = np.stack([w["ss"] for w in windows])
            conv_maps = [np.stack([w["convs"][i] for w in windows]) for i in range(self.geometry.num_convs)]
            rgb = self.renderers["render_fused"](np.repeat(self.centre_latents[None], count, 0),
                                                 np.repeat(self.centre_wplus[None], count, 0), ss_map, conv_maps,
                                                 local, coords, noises)
        else:
            rgb = self.renderers["render"](np.repeat(self.centre_latents[:1], count, 0),
                                           np.repeat(self.centre_wplus[:1], count, 0), local, coords, noises)
        return np.asarray(rgb)

    def patches(self, indices, batch_patches: int):
        """Yields ``((row, col), image)`` for the patches ``indices``, ``batch_patches`` per network call."""
        cached = [index for index in indices if index in self.cache]
        for index in cached:
            self.cache.move_to_end(index)
            yield index, self.cache[index]
        todo = [index for index in indices if index not in self.cache]
        for start in range(0, len(todo), batch_patches):
            chunk = todo[start:start + batch_patches]
            windows = [self.maps.patch(r, c) for r, c in chunk] if self.fused else None
            images = self.run([self.latents.patch(r, c) for r, c in chunk], windows)
            for index, image in zip(chunk, images):
                if self.cache_patches:
                    self.cache[index] = image
                    while len(self.cache) > self.cache_patches:
                        self.cache.popitem(last=False)
                yield index, image

    def whole(self) -> np.ndarray:
        """The covered canvas in one network call (direct generation)."""
        return self.run([self.latents.whole()], [self.maps.whole()] if self.fused else None)[0]

    def covering(self, top: int, left: int, height: int, width: int) -> list:
        """Patches whose pixels cover covered-canvas rows top..top+height and columns left..left+width.

        Patch (r, c) is read for canvas pixels [step r, step r + step) (the last one for all P), so
        every pixel comes from exactly one patch; overlapping patches agree there anyway."""
        step, plan = self.geometry.pixel_step, self.plan
        rows = range(min(top // step, plan.rows - 1), min((top + height - 1) // step, plan.rows - 1) + 1)
        cols = range(min(left // step, plan.cols - 1), min((left + width - 1) // step, plan.cols - 1) + 1)
        return [(r, c) for r in rows for c in cols]

    def paint(self, out, top: int, left: int, batch_patches: int, progress=None) -> None:
        """Fill ``out`` (h, w, 3) with covered-canvas pixels starting at (top, left)."""
        height, width = out.shape[:2]
        patch, step = self.geometry.patch_size, self.geometry.pixel_step
        for (r, c), image in self.patches(self.covering(top, left, height, width), batch_patches):
            y0, x0 = r * step - top, c * step - left  # patch origin in ``out``
            ys, xs = max(0, y0), max(0, x0)
            ye, xe = min(height, y0 + patch), min(width, x0 + patch)
            if ye > ys and xe > xs:
                out[ys:ye, xs:xe] = image[ys - y0:ye - y0, xs - x0:xe - x0]
            if progress is not None:
                progress.update(1)


def generate_canvas(model, height: int, width: int, *, seed: int = 0, global_latent=None, styles=None,
                    fusion_blur: int = 127, fusion_blur_type: str = "mean", panorama: bool = False,
                    panorama_period: int | None = None, noise: bool = True, batch_patches: int = 4,
                    direct: bool = False, latents=None, out=None, progress: bool = False,
                    seeding: str = "portable") -> np.ndarray:
    """A ``height`` x ``width`` RGB canvas (float32, nominally [-1, 1]) generated patch by patch.

    Args:
        model: an :class:`~tfcoord.models.infinitygan.model.InfinityGan` with built networks
            (its EMA generator is used).
        height, width: output size in pixels; sizes between the reachable ones are rounded up
            and centre-cropped (:class:`CanvasPlan`).
        seed: decides z_g (unless given), z_l and the noise.
        global_latent: z_g (D,) shared by the canvas (default: drawn from ``seed``).
        styles: several :class:`StyleCentre` s for spatial style fusion (or one, e.g. an
            inverted w+); overrides ``global_latent``.
        fusion_blur, fusion_blur_type: smoothing of the style boundaries (``mean`` or ``gaussian``).
        panorama: 360 degree canvas, horizontally periodic with period ``width``
            (or ``panorama_period`` px, e.g. to render more than one turn).
        noise: per-pixel noise on (False: the noise inputs are left out).
        batch_patches: patches per network call (parallel batching).
        direct: generate the whole canvas in one network call (memory O(canvas)).
        latents: a :class:`CanvasLatents` to use (e.g. with overridden regions), else made from ``seed``.
        out: optional (height, width, 3) array-like (e.g. ``np.memmap``) to write into.
        progress: show a progress bar.
        seeding: ``portable`` (:mod:`.sampling`, what clients in any language reproduce) or
            ``legacy`` (NumPy's generators, the images of seeds before the portable recipe).
    """
    plan = CanvasPlan(model.geometry, int(height), int(width), panorama, panorama_period)
    if batch_patches < 1:
        raise UserError(f"batch_patches must be >= 1, got {batch_patches}")
    if styles is None:
        if global_latent is None:
            global_latent = model.global_latents(seed, 1, seeding=seeding)[0]
        styles = [StyleCentre(global_latent)]
    if latents is None:
        latents = CanvasLatents(model, plan, seed, noise, seeding=seeding)
    elif latents.plan != plan:
        raise UserError("the given canvas latents were made for another canvas size")
    renderer = PatchRenderer(model, plan, latents, styles, fusion_blur, fusion_blur_type)
    top, left = plan.offset
    if out is None:
        out = np.empty((plan.height, plan.width, 3), np.float32)
    elif tuple(out.shape) != (plan.height, plan.width, 3):
        raise UserError(f"out must have shape ({plan.height}, {plan.width}, 3), got {tuple(out.shape)}")
    if direct:
        out[...] = renderer.whole()[top:top + plan.height, left:left + plan.width]
        return out
    from tqdm import tqdm

    with tqdm(total=plan.num_patches, desc=f"canvas {plan.height}x{plan.width}", unit="patch",
              disable=not progress) as bar:
        renderer.paint(out, top, left, batch_patches, bar)
    return out


class CanvasRenderer:
    """InfinityGAN on the canvas engine (:func:`tfcoord.generation.canvas.render_canvas`).

    Tiles are multiples of the patch stride (96 px for the paper model); each tile renders the
    patches covering it (``batch_patches`` per network call) from the canvas' position-indexed
    latents, so a pixel does not depend on the tile size, the batch or the order.
    """

    def __init__(self, model, width: int, height: int, seed: int, panorama: bool = False, checkpoint: str = "",
                 batch_patches: int = 4, xla: bool = False, seeding: str = "portable"):
        self.model, self.seed, self.checkpoint, self.batch_patches = model, int(seed), checkpoint, batch_patches
        self.plan = CanvasPlan(model.geometry, int(height), int(width), panorama)
        self.tile_quantum = model.geometry.pixel_step
        self.default_tile = 4 * model.geometry.pixel_step
        self.seeding = check_seeding(seeding)
        latents = CanvasLatents(model, self.plan, seed, seeding=seeding)
        style = StyleCentre(model.global_latents(seed, 1, seeding=seeding)[0])
        self.patch_renderer = PatchRenderer(model, self.plan, latents, [style], xla=xla)

    def describe(self) -> dict:
        g = self.model.geometry
        return {"model": "infinitygan", "checkpoint": self.checkpoint, "seed": self.seed,
                "panorama": self.plan.panorama, "patch": g.patch_size, "stride": g.pixel_step,
                "seeding": self.seeding}

    def render(self, tiles):
        top, left = self.plan.offset
        # Keep the patches of two tile rows: tiles that share a patch (the crop offset need not be a
        # multiple of the stride) render it once.
        tallest = max(tile.height for tile in tiles)
        self.patch_renderer.cache_patches = max(self.patch_renderer.cache_patches,
                                                (tallest // self.tile_quantum + 2) * (self.plan.cols + 1))
        images = []
        for tile in tiles:
            out = np.empty((tile.height, tile.width, 3), np.float32)
            self.patch_renderer.paint(out, top + tile.top, left + tile.left, self.batch_patches)
            images.append(out)
        return images


def patch_count(model, height: int, width: int) -> int:
    """Patches needed for a height x width canvas (1024 x 2048 -> 242 for the paper model)."""
    return CanvasPlan(model.geometry, height, width).num_patches


def example_inputs(model, description: dict, signature: str, batch: int, seed: int = 0) -> dict | None:
    """Inputs of a patch signature for ``batch`` rows: one canvas row of ``batch`` patches, so that the windows
    have the sizes the signature requires (tests, benchmarks); None for ``map_latent``, which takes any z_g."""
    if signature == "map_latent":
        return None
    geometry = model.geometry
    plan = CanvasPlan(geometry, geometry.canvas_pixels(1), geometry.canvas_pixels(batch))
    latents = CanvasLatents(model, plan, seed, noise=signature != "generate_patch_nonoise")
    patches = [latents.patch(0, col) for col in range(batch)]
    inputs = {"global_latent": model.global_latents(seed, batch),
              "local_latent": np.stack([p["local_latent"] for p in patches]),
              "coords": np.stack([p["coords"] for p in patches])}
    for i in range(len(patches[0].get("noises", []))):
        inputs[f"noise_{i}"] = np.stack([p["noises"][i] for p in patches])
    return {name: value.astype("float32") for name, value in inputs.items()}
