"""What a metric compares: full images, patches, or InfinityGAN's scale-invariant view.

Every view says at which size the real images are loaded (through the training data
pipeline: centre crop to the aspect ratio, antialiased bilinear resize, [-1, 1]),
how they are cut, and how the generated images are made. Generation uses only the
model interface, never the model's name:

* ``sample_images(seed, num)`` (every model) -- full images;
* ``patch_size`` (optional; an int attribute, property or method) and
  ``sample_patches(seed, num)`` (optional) -- the model's native training patches, for
  patch FID; without ``sample_patches``, patches are centre crops of ``sample_images``;
* ``sample_images_at(seed, num, (height, width))`` (optional) -- images of any size,
  for ScaleInv FID; ``field_of_view()`` (optional, default 1.0) -- the ratio of the
  generator's full training size to the real image size ``image_size()``
  (InfinityGAN: 197/128).

ScaleInv FID x k (Lin et al., InfinityGAN, ICLR 2022, §4.1; official ``eval_fids.py``):
real images at R = ``image_size()``; generate at ``ceil(R k fov)``, rescale by ``1/fov``
(bilinear, corners aligned), centre-crop ``R k``, resize to ``R`` (bilinear, corners
aligned), then FID against the real images. At k = 1 and fov = 1 it is plain FID.
Patch FID (InfinityGAN's model selection): generated patches against centre-cropped
real patches of the same size, the real images loaded at ``image_size() x fov`` (the
generator's pixel scale: InfinityGAN's 197 x 197 training images).
"""

from __future__ import annotations

import math
import typing

import numpy as np

from tfcoord.errors import UserError


def centre_crop(images, height: int, width: int) -> np.ndarray:
    """The centred ``height`` x ``width`` window of (B, H, W, C) images (top-left offset rounded down)."""
    images = np.asarray(images)
    h, w = images.shape[1:3]
    if height > h or width > w:
        raise ValueError(f"cannot crop {height}x{width} from {h}x{w} images")
    top, left = (h - height) // 2, (w - width) // 2
    return images[:, top:top + height, left:left + width]


def resize_corners_aligned(images, size) -> np.ndarray:
    """Bilinear resize with corner pixels aligned (PyTorch ``align_corners=True``), float32."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.raw_ops.ResizeBilinear(images=images, size=list(size), align_corners=True,
                                     half_pixel_centers=False).numpy()


def scaleinv_sizes(real_size, scale: float, fov: float):
    """(generated size, size after the 1/fov rescale, crop size) per axis for ScaleInv FID x ``scale``."""
    crop = tuple(int(round(side * scale)) for side in real_size)
    generated = tuple(int(math.ceil(side * scale * fov - 1e-9)) for side in real_size)
    rescaled = tuple(int(math.floor(side / fov + 1e-9)) for side in generated)
    return generated, rescaled, crop


def scaleinv_postprocess(images, real_size, scale: float, fov: float) -> np.ndarray:
    """Generated images of ``scaleinv_sizes(...)[0]`` -> the real size, per the official protocol."""
    _, rescaled, crop = scaleinv_sizes(real_size, scale, fov)
    images = resize_corners_aligned(images, rescaled)
    images = centre_crop(images, *crop)
    return resize_corners_aligned(images, real_size)


@typing.runtime_checkable
class SamplesAnySize(typing.Protocol):
    """A model that draws images larger than its training size (ScaleInv FID; InfinityGAN)."""

    def sample_images_at(self, seed: int, num: int, size: tuple[int, int]) -> np.ndarray: ...


@typing.runtime_checkable
class HasFieldOfView(typing.Protocol):
    """A model whose generated pixels cover less than a real pixel: generator pixels per real pixel."""

    def field_of_view(self) -> float: ...


@typing.runtime_checkable
class HasPatchSize(typing.Protocol):
    """A model trained on patches: patch FID compares patches of this side (pixels)."""

    patch_size: int


@typing.runtime_checkable
class SamplesPatches(typing.Protocol):
    """A model that draws its patches directly (else patch FID centre-crops its images)."""

    def sample_patches(self, seed: int, num: int) -> np.ndarray: ...


def _field_of_view(model, options) -> float:
    return float(options.get("fov") or (model.field_of_view() if isinstance(model, HasFieldOfView) else 1.0))


class FullImages:
    """Plain FID/KID/PR: ``sample_images`` against real images at the model's image size."""

    kind = "images"

    def __init__(self, model, options):
        self.model = model
        self.real_size = tuple(int(s) for s in model.image_size())

    def describe(self) -> dict:
        """What identifies the real side (part of the statistics cache key)."""
        return {"view": self.kind}

    def summary(self) -> dict:
        """What identifies the comparison (recorded with the result)."""
        return self.describe()

    def cut_real(self, images):
        return images

    def generate(self, seed: int, num: int):
        return self.model.sample_images(seed, num)


class Patches(FullImages):
    """Patch FID: the model's patches against centre crops of real images of the same size."""

    kind = "patches"

    def __init__(self, model, options):
        super().__init__(model, options)
        self.fov = _field_of_view(model, options)
        self.real_size = tuple(max(1, int(round(side * self.fov))) for side in self.real_size)
        size = options.get("patch_size") or (model.patch_size if isinstance(model, HasPatchSize) else None)
        if not size:
            raise UserError(f"patch-fid needs --patch-size: the {model.name} model does not define patch_size()")
        self.size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        if self.size[0] > self.real_size[0] or self.size[1] > self.real_size[1] or min(self.size) < 1:
            raise UserError(f"--patch-size {self.size[0]}x{self.size[1]} must fit inside the "
                            f"{self.real_size[0]}x{self.real_size[1]} images of the {model.name} model")
        self.sample_patches = model.sample_patches if isinstance(model, SamplesPatches) else None

    def describe(self) -> dict:
        return {"view": self.kind, "crop": f"centre {self.size[0]}x{self.size[1]}"}

    def summary(self) -> dict:
        return {**self.describe(), "real_size": list(self.real_size), "fov": self.fov,
                "native_patches": self.sample_patches is not None}

    def cut_real(self, images):
        return centre_crop(images, *self.size)

    def generate(self, seed, num):
        return centre_crop((self.sample_patches or self.model.sample_images)(seed, num), *self.size)


class ScaleInvariant(FullImages):
    """ScaleInv FID x ``scale`` (see the module docstring)."""

    kind = "scaleinv"

    def __init__(self, model, options):
        super().__init__(model, options)
        self.scale = float(options.get("scale") or 2)
        self.fov = _field_of_view(model, options)
        if not isinstance(model, SamplesAnySize):
            raise UserError(f"scaleinv-fid generates images larger than the training size, which the {model.name} "
                            "model does not offer (it has no sample_images_at(seed, num, size)); use fid or patch-fid")
        self.generated_size, _, _ = scaleinv_sizes(self.real_size, self.scale, self.fov)

    def describe(self) -> dict:
        return {"view": "images"}  # the real side is plain images at real_size: FID's cache entry

    def summary(self) -> dict:
        return {"view": self.kind, "scale": self.scale, "fov": self.fov,
                "generated_size": list(self.generated_size), "real_size": list(self.real_size)}

    def generate(self, seed, num):
        images = self.model.sample_images_at(seed, num, self.generated_size)
        return scaleinv_postprocess(images, self.real_size, self.scale, self.fov)


VIEWS = {"images": FullImages, "patches": Patches, "scaleinv": ScaleInvariant}
