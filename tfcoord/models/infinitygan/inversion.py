"""GAN inversion, multi-modal outpainting and image inbetweening (Lin et al., ICLR 2022, §4.4; models.md §4.9).

:func:`invert` reconstructs a real image by optimising z_g and the local-latent canvas (one Adam,
lr x 0.1) and the w+ styles and every layer's noise canvas (a second Adam), with the official
losses and weights (``configs/test/inversion_256x256_L2R.yaml``): pixel L2 x 10, LPIPS x 10,
noise regularisation x 1000 (plus noise renormalisation after each step), priors |mean z_g| x 10
and RMS(z_l) x 10, and a Mahalanobis prior x 0.01 on the "Gaussianised" styles
(``leaky_relu(w, 5) / sqrt 2``, statistics of 10 000 mapped samples); random perturbations of
the latents that ramp to zero at 75 % of the steps; StyleGAN2's learning-rate ramp.
The official loss is the weighted sum of every term (``InversionManager._loss_agg`` over
``compute_losses``: ``pixel_dist`` is kept beside ``lpips_dist``, LPIPS v0.1 "net-lin" on VGG,
batch mean). LPIPS needs pretrained VGG16 and LPIPS weights that tfcoord cannot download: pass an
:class:`~tfcoord.metrics.lpips.Lpips` as ``lpips``; without it the inversion matches pixels only.
**Left out:** DiffAugment (applied officially to both images before the pixel and LPIPS terms).

:func:`outpaint` places an inverted image into a larger canvas (relative centre ``placement``)
and generates the rest; :func:`inbetween` places two inverted images (default at 5 % and 95 %
of the width) and generates the connection with spatial style fusion. The inverted latents are
moved by whole latents, so a placement snaps to the latent grid (16 px for the paper model).
The inversion is run with the coordinates the image will have in the final canvas (the
official ``future_placement``), so the structure stays consistent after placement.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfcoord.errors import UserError
from tfcoord.metrics.lpips import MIN_SIZE as LPIPS_MIN_SIZE
from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan, StyleCentre, generate_canvas


@dataclasses.dataclass
class InversionWeights:
    """Loss weights (official ``losses_weights``; ``lpips`` applies when an LPIPS network is given)."""

    pixel: float = 10.0
    lpips: float = 10.0
    noise_regularization: float = 1000.0
    global_prior: float = 10.0
    local_prior: float = 10.0
    style_prior: float = 0.01


@dataclasses.dataclass
class InversionResult:
    """The latents that reproduce an image on its own canvas (see :func:`invert`)."""

    global_latent: np.ndarray  # (D,)
    wplus: np.ndarray  # (n_latent, D)
    local_latent: np.ndarray  # (local rows, local cols, C) of ``plan``
    noises: list  # per conv: (rows, cols, 1) noise canvases of ``plan``
    plan: CanvasPlan  # the canvas the image was inverted on (image centre-cropped from it)
    reconstruction: np.ndarray  # (h, w, 3)
    losses: list  # total loss per step
    pixel_error: float  # mean absolute error of the reconstruction
    lpips: float | None = None  # LPIPS of the reconstruction, when inverted with an LPIPS network


def check_image(image, name: str = "image") -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"{name} must be an (height, width, 3) RGB array, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or array.min() < -1.0 - 1e-3 or array.max() > 1.0 + 1e-3:
        raise UserError(f"{name} must hold finite values in [-1, 1] (tfcoord's image range)")
    return array


def style_statistics(model, samples: int = 10000, seed: int = 0):
    """Mean style w and the mean / inverse covariance of the Gaussianised styles of ``samples`` z_g."""
    generator = model.sampler.generator
    dim = model.config.model.global_latent_dim
    z = np.random.default_rng([seed, 11]).standard_normal((samples, dim)).astype(np.float32)
    w = np.concatenate([np.asarray(generator.texture.map(z[i:i + 2000])) for i in range(0, samples, 2000)])
    gaussian = np.where(w >= 0, w, 5.0 * w) / math.sqrt(2.0)
    mean = gaussian.mean(0)
    covariance = np.cov(gaussian, rowvar=False) + 1e-6 * np.eye(dim)
    # De-Gaussianise the mean: the official starting style.
    start = mean * math.sqrt(2.0)
    start = np.where(start >= 0, start, 0.2 * start)
    return start.astype(np.float32), mean.astype(np.float32), np.linalg.inv(covariance).astype(np.float32)


def _noise_regularization(noise, ops):
    """StyleGAN2's multi-scale noise autocorrelation penalty (official ``noise_regularize``)."""
    loss = 0.0
    while True:
        height, width = int(noise.shape[1]), int(noise.shape[2])
        loss = loss + ops.square(ops.mean(noise * ops.roll(noise, 1, axis=2))) \
            + ops.square(ops.mean(noise * ops.roll(noise, 1, axis=1)))
        if min(height, width) <= 8:
            return loss
        noise = noise[:, :height - height % 2, :width - width % 2]
        noise = ops.mean(ops.reshape(noise, (1, height // 2, 2, width // 2, 2, 1)), axis=(2, 4))


def _learning_rate(progress: float, initial: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    ramp = min(1.0, (1.0 - progress) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial * ramp * min(1.0, progress / rampup)


def invert(model, image, *, steps: int = 3000, lr: float = 0.1, seed: int = 0, coords=None,
           weights: InversionWeights | None = None, perturbation_ramp: float = 0.75, style_perturbation: float = 0.05,
           latent_perturbation: float = 0.2, lpips=None, progress: bool = False) -> InversionResult:
    """Invert ``image`` ((h, w, 3) in [-1, 1]) into z_g, w+, a local-latent canvas and noise canvases.

    The image is centre-cropped from the reachable canvas of its size (:class:`CanvasPlan`);
    ``coords`` (the canvas' (rows, cols, coord_dim) coordinates) default to that canvas' own.
    ``lpips`` (a :class:`tfcoord.metrics.lpips.Lpips`) adds the perceptual term; without it the
    reconstruction matches pixels only.
    """
    import keras
    import tensorflow as tf
    from keras import ops

    image = check_image(image)
    if steps < 1:
        raise UserError(f"inversion steps must be >= 1, got {steps}")
    if not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"the inversion learning rate must be a positive number, got {lr}")
    if lpips is not None and min(image.shape[:2]) < LPIPS_MIN_SIZE:
        raise UserError(f"inverting with LPIPS needs an image of at least {LPIPS_MIN_SIZE} x {LPIPS_MIN_SIZE} "
                        f"pixels, got {image.shape[0]} x {image.shape[1]}")
    weights = weights or InversionWeights()
    generator = model.sampler.generator
    texture = generator.texture
    plan = CanvasPlan(model.geometry, image.shape[0], image.shape[1])
    start = CanvasLatents(model, plan, seed).whole()
    if coords is None:
        coords = start["coords"]
    elif tuple(coords.shape[:2]) != (plan.local_rows, plan.local_cols):
        raise UserError(f"inversion coordinates must cover the {plan.local_rows} x {plan.local_cols} latent canvas")
    mean_style, gauss_mean, gauss_inverse_cov = style_statistics(model, seed=seed)
    style_std = float(np.sqrt(np.mean(np.diag(np.linalg.inv(gauss_inverse_cov)))))

    global_latent = tf.Variable(model.global_latents(seed, 1), name="inv_global_latent")
    local_latent = tf.Variable(start["local_latent"][None], name="inv_local_latent")
    wplus = tf.Variable(np.repeat(mean_style[None, None], texture.n_latent, axis=1), name="inv_wplus")
    noises = [tf.Variable(n[None], name=f"inv_noise_{i}") for i, n in enumerate(start["noises"])]
    ss_optimizer = keras.optimizers.Adam(lr * 0.1)
    ts_optimizer = keras.optimizers.Adam(lr)
    ss_variables, ts_variables = [global_latent, local_latent], [wplus, *noises]
    ss_optimizer.build(ss_variables)
    ts_optimizer.build(ts_variables)
    target = tf.constant(image[None])
    coords_t = tf.constant(np.asarray(coords, np.float32)[None])
    top, left = plan.offset
    height, width = image.shape[:2]
    gauss_mean_t, inverse_cov_t = tf.constant(gauss_mean), tf.constant(gauss_inverse_cov)

    def render(z, z_local, styles, noise_maps):
        structure = generator.structure(z, z_local, coords_t)
        conv_styles, rgb_styles = texture.styles_from_wplus(styles)
        full = texture.synthesize(structure, conv_styles, rgb_styles, noise_maps)
        return full[:, top:top + height, left:left + width]

    @tf.function
    def step(step_seed, style_strength, latent_strength):
        seeds = tf.random.experimental.stateless_split(step_seed, 3)
        with tf.GradientTape() as tape:
            z = global_latent + latent_strength * tf.random.stateless_normal(tf.shape(global_latent), seeds[0])
            z_local = local_latent + latent_strength * tf.random.stateless_normal(tf.shape(local_latent), seeds[1])
            styles = wplus + style_strength * tf.random.stateless_normal(tf.shape(wplus), seeds[2])
            output = render(z, z_local, styles, list(noises))
            pixel = 0.5 * ops.mean(ops.square(output - target))
            # Official: lpips_dist = percept(inv_results, target_imgs).mean(), weighted beside pixel_dist.
            perceptual = ops.mean(lpips(output, target)) if lpips is not None else 0.0
            noise_reg = sum(_noise_regularization(n, ops) for n in noises)
            global_prior = ops.abs(ops.mean(z))
            local_prior = ops.sqrt(ops.mean(ops.square(z_local)))
            gaussianized = ops.leaky_relu(wplus, 5.0)[0] * (1.0 / math.sqrt(2.0))  # (n_latent, D)
            centred = gaussianized - gauss_mean_t
            mahalanobis = ops.sum(ops.matmul(centred, inverse_cov_t) * centred, axis=-1)
            style_prior = ops.mean(ops.sqrt(ops.maximum(mahalanobis, 1e-12)))
            total = (weights.pixel * pixel + weights.lpips * perceptual + weights.noise_regularization * noise_reg
                     + weights.global_prior * global_prior + weights.local_prior * local_prior
                     + weights.style_prior * style_prior)
        gradients = tape.gradient(total, ss_variables + ts_variables)
        ss_optimizer.apply_gradients(zip(gradients[:2], ss_variables))
        ts_optimizer.apply_gradients(zip(gradients[2:], ts_variables))
        for noise in noises:  # official noise renormalisation
            mean = tf.reduce_mean(noise)
            std = tf.maximum(tf.math.reduce_std(noise), 1e-4)
            noise.assign((noise - mean) / std)
        return total

    from tqdm import tqdm

    history = []
    for i in tqdm(range(steps), desc="inversion", unit="step", disable=not progress):
        t = i / steps
        ramp = max(0.0, 1.0 - t / perturbation_ramp) ** 2 if perturbation_ramp > 0 else 0.0
        ss_optimizer.learning_rate = _learning_rate(t, lr * 0.1)
        ts_optimizer.learning_rate = _learning_rate(t, lr)
        style_strength = tf.constant(style_std * style_perturbation * ramp, tf.float32)
        latent_strength = tf.constant(latent_perturbation * ramp, tf.float32)
        loss = float(step(tf.constant([seed, i], tf.int64), style_strength, latent_strength))
        if not math.isfinite(loss):
            raise UserError(f"inversion diverged at step {i} (loss {loss}); lower the learning rate (--inversion-lr)")
        history.append(loss)
    reconstruction = np.asarray(render(global_latent, local_latent, wplus, list(noises)))[0]
    return InversionResult(global_latent=global_latent.numpy()[0], wplus=wplus.numpy()[0],
                           local_latent=local_latent.numpy()[0], noises=[n.numpy()[0] for n in noises], plan=plan,
                           reconstruction=reconstruction, losses=history,
                           pixel_error=float(np.mean(np.abs(reconstruction - image))),
                           lpips=None if lpips is None else float(lpips.distance(reconstruction, image)))


def placement_origin(image_shape, canvas_height: int, canvas_width: int, placement, name: str = "placement"):
    """Top-left pixel of an image centred at relative ``placement`` (row, col) of the canvas; UserError if
    the image would leave the canvas."""
    values = np.asarray(placement, dtype=np.float64)
    if values.shape != (2,) or not np.all(np.isfinite(values)):
        raise UserError(f"{name} must be a (row, col) pair of relative positions, got {placement!r}")
    h, w = image_shape[:2]
    if h > canvas_height or w > canvas_width:
        raise UserError(f"the image ({h}x{w}) is larger than the canvas ({canvas_height}x{canvas_width}); "
                        "choose a larger --height/--width")
    top = int(round(values[0] * canvas_height - h / 2.0))
    left = int(round(values[1] * canvas_width - w / 2.0))
    if top < 0 or left < 0 or top + h > canvas_height or left + w > canvas_width:
        row_range = (h / 2.0 / canvas_height, 1 - h / 2.0 / canvas_height)
        col_range = (w / 2.0 / canvas_width, 1 - w / 2.0 / canvas_width)
        raise UserError(f"{name} ({values[0]:g}, {values[1]:g}): the image's top-left corner ({top}, {left}) puts it "
                        f"outside the {canvas_height}x{canvas_width} canvas; keep the relative centre within rows "
                        f"[{row_range[0]:.3f}, {row_range[1]:.3f}] and columns "
                        f"[{col_range[0]:.3f}, {col_range[1]:.3f}]")
    return top, left


@dataclasses.dataclass
class Placement:
    """Where an inverted image goes: a latent shift of its inversion canvas inside the target canvas."""

    shift_rows: int  # TS-input latents
    shift_cols: int
    pixel_top: int  # the image's top-left in the returned (cropped) canvas after snapping
    pixel_left: int


def _placement(model, plan: CanvasPlan, image, placement, name) -> tuple[Placement, CanvasPlan]:
    top, left = placement_origin(image.shape, plan.height, plan.width, placement, name)
    own = CanvasPlan(model.geometry, image.shape[0], image.shape[1])
    unit = model.geometry.pixels_per_latent
    canvas_top, canvas_left = top + plan.offset[0], left + plan.offset[1]  # in covered-canvas pixels
    shift_rows = int(round((canvas_top - own.offset[0]) / unit))
    shift_cols = int(round((canvas_left - own.offset[1]) / unit))
    # Snapping may push the image by up to half a latent: keep it inside the canvas.
    max_rows = (plan.canvas_height - image.shape[0] - own.offset[0]) // unit
    max_cols = (plan.canvas_width - image.shape[1] - own.offset[1]) // unit
    shift_rows = min(max(shift_rows, -(own.offset[0] // unit)), max_rows)
    shift_cols = min(max(shift_cols, -(own.offset[1] // unit)), max_cols)
    final_top = own.offset[0] + unit * shift_rows - plan.offset[0]
    final_left = own.offset[1] + unit * shift_cols - plan.offset[1]
    return Placement(shift_rows, shift_cols, final_top, final_left), own


def _place(latents: CanvasLatents, result: InversionResult, where: Placement, geometry) -> None:
    latents.local.override(where.shift_rows, where.shift_cols, result.local_latent)
    if latents.noise:
        for field, unit, noise in zip(latents.noises, geometry.output_units(), result.noises):
            field.override(unit * where.shift_rows, unit * where.shift_cols, noise)


def _future_coords(latents: CanvasLatents, own: CanvasPlan, where: Placement):
    return latents.coords(where.shift_rows, where.shift_cols, own.local_rows, own.local_cols)


def outpaint(model, image, height: int, width: int, *, placement=(0.5, 0.5), seed: int = 0, num: int = 1,
             steps: int = 3000, lr: float = 0.1, batch_patches: int = 4, lpips=None, progress: bool = False):
    """Invert ``image`` once and extend it to ``num`` different ``height`` x ``width`` canvases around it
    (multi-modal outpainting: canvas k draws the unknown region from ``seed + k``).

    Returns ``(canvases, inversion result, Placement)``; the image region of every canvas is the
    reconstruction (pixels of the real image are not pasted back). ``lpips`` as in :func:`invert`.
    """
    image = check_image(image)
    plan = CanvasPlan(model.geometry, int(height), int(width))
    where, own = _placement(model, plan, image, placement, "placement")
    coords = _future_coords(CanvasLatents(model, plan, seed), own, where)
    result = invert(model, image, steps=steps, lr=lr, seed=seed, coords=coords, lpips=lpips, progress=progress)
    canvases = []
    for k in range(num):
        latents = CanvasLatents(model, plan, seed + k)
        _place(latents, result, where, model.geometry)
        canvases.append(generate_canvas(model, plan.height, plan.width, seed=seed + k, latents=latents,
                                        styles=[StyleCentre(result.global_latent, result.wplus)],
                                        batch_patches=batch_patches, progress=progress))
    return canvases, result, where


def inbetween(model, image_a, image_b, height: int, width: int, *, placements=None, seed: int = 0, num: int = 1,
              steps: int = 3000, lr: float = 0.1, fusion_blur: int = 127, batch_patches: int = 4, lpips=None,
              progress: bool = False):
    """Invert two images, place them in a ``height`` x ``width`` canvas and generate ``num`` connections,
    each side in its own inverted style (spatial style fusion).

    ``placements`` are the relative centres (row, col) of the two images; by default they sit at
    the left and the right end of the canvas, vertically centred (the official 256 x 1280 task
    places 128 px wide images at 0.05 and 0.95, which is the same).
    Returns ``(canvases, [result_a, result_b], [Placement, Placement])``. ``lpips`` as in :func:`invert`.
    """
    images = [check_image(image_a, "image_a"), check_image(image_b, "image_b")]
    if placements is None:
        placements = [(0.5, images[0].shape[1] / 2.0 / width), (0.5, 1.0 - images[1].shape[1] / 2.0 / width)]
    if len(placements) != 2:
        raise UserError(f"inbetweening needs two placements, got {len(placements)}")
    plan = CanvasPlan(model.geometry, int(height), int(width))
    base = CanvasLatents(model, plan, seed)
    wheres, owns = [], []
    for i, (image, placement) in enumerate(zip(images, placements)):
        where, own = _placement(model, plan, image, placement, f"placement of image {'ab'[i]}")
        wheres.append(where)
        owns.append(own)
    a, b = wheres
    (ha, wa), (hb, wb) = images[0].shape[:2], images[1].shape[:2]
    if a.pixel_top < b.pixel_top + hb and b.pixel_top < a.pixel_top + ha and \
            a.pixel_left < b.pixel_left + wb and b.pixel_left < a.pixel_left + wa:
        raise UserError("the two images overlap at these placements; move them apart or enlarge the canvas")
    results = [invert(model, image, steps=steps, lr=lr, seed=seed + i, coords=_future_coords(base, own, where),
                      lpips=lpips, progress=progress)
               for i, (image, own, where) in enumerate(zip(images, owns, wheres))]
    centres = []
    for image, result, where in zip(images, results, wheres):
        row = (where.pixel_top + image.shape[0] / 2.0) / max(1, plan.height - 1)
        col = (where.pixel_left + image.shape[1] / 2.0) / max(1, plan.width - 1)
        centres.append(StyleCentre(result.global_latent, result.wplus, (min(1.0, row), min(1.0, col))))
    canvases = []
    for k in range(num):
        latents = CanvasLatents(model, plan, seed + k)
        for result, where in zip(results, wheres):
            _place(latents, result, where, model.geometry)
        canvases.append(generate_canvas(model, plan.height, plan.width, seed=seed + k, latents=latents,
                                        styles=centres, fusion_blur=fusion_blur, batch_patches=batch_patches,
                                        progress=progress))
    return canvases, results, wheres
