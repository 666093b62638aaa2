"""The Python API for notebooks and scripts: train a model, open a run, draw, render, export.

Example::

    import tfcoord

    run = tfcoord.train(model="cips", preset="tiny", steps=500)      # or tfcoord.load_run("runs/cips-tiny")
    images = run.generate(seed=0, num=8)                              # (8, H, W, 3) uint8
    panorama = run.render(width=512, height=128)                      # any size, tile by tile: (128, 512, 3) uint8
    run.render(width=4096, height=1024, out="big.png")                # written to a file (resumable)
    tfcoord.export_saved_model(run.path, "serving/cips")              # TF Serving folder serving/cips/1
    tfcoord.export_tflite(run.path, "cips.tflite", patch=32)

Errors a user can fix raise :class:`tfcoord.UserError` with the same one-line message the
command lines print.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError

# train()'s keyword shortcuts: the command line's options of the same name.
SHORTCUTS = ("data", "steps", "batch_size", "seed", "strategy", "out", "config", "image_features")


class Run:
    """A trained run directory, its model restored from the newest intact checkpoint.

    Attributes:
        path: the run directory.
        model: the model object (``model.config`` is the run's resolved configuration).
        checkpoint: the checkpoint its networks were restored from.
    """

    def __init__(self, path):
        from tfcoord.runs import load_run

        self.path = Path(path)
        self.model, self.checkpoint = load_run(self.path)

    def __repr__(self):
        return f"Run({str(self.path)!r}, model={self.model.config.model_type!r}, checkpoint={Path(self.checkpoint).name!r})"

    @property
    def config(self):
        return self.model.config

    def generate(self, seed: int = 0, num: int = 8) -> np.ndarray:
        """``num`` images at the training size, as the sample grids draw them: (num, H, W, 3) uint8.

        GAWWN draws its conditions (caption, box or keypoints) from its data for the seed; use
        ``python -m tfcoord.generate`` for given captions and boxes.
        """
        from tfcoord.images import to_uint8
        from tfcoord.models.base import CoordinateGan

        if not isinstance(self.model, CoordinateGan):
            raise UserError(f"{self.model.name} does not generate images; use python -m tfcoord.generate --run "
                            f"{self.path}")
        if num < 1:
            raise UserError(f"num must be >= 1, got {num}")
        return to_uint8(np.asarray(self.model.sample_images(int(seed), int(num))))

    def render(self, width: int, height: int, out=None, *, seed: int = 0, tile: int | None = None,
               batch: int = 4, panorama: bool = False, progress: bool = True):
        """One image of any size, generated tile by tile by the canvas engine.

        With ``out`` (``.png``, ``.tif`` or ``.dzi``) the image is written there (resumable) and the path
        returned; without, it is returned as a (height, width, 3) uint8 array.
        """
        from tfcoord.generation.canvas import render_canvas

        from tfcoord.models import Capability, model_spec

        if not model_spec(self.model.name).can(Capability.CANVAS):
            raise UserError(f"{self.model.name} does not generate by coordinates, so it has no render(); "
                            "use generate()")
        renderer = self.model.canvas_renderer(int(width), int(height), int(seed), panorama=panorama, checkpoint=str(self.checkpoint))
        if out is not None:
            out = Path(out)
            fmt = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".dzi": "dzi"}.get(out.suffix.lower())
            if fmt is None:
                raise UserError(f"render(out={str(out)!r}): write .png, .tif or .dzi")
            return render_canvas(renderer, out, int(width), int(height), tile=tile, batch=batch, fmt=fmt,
                                 progress=progress)
        from PIL import Image

        with tempfile.TemporaryDirectory() as scratch:
            written = render_canvas(renderer, Path(scratch) / "canvas.png", int(width), int(height), tile=tile,
                                    batch=batch, fmt="png", progress=progress)
            with Image.open(written) as image:
                return np.asarray(image.convert("RGB"))


def load_run(path) -> Run:
    """Open a trained run directory (the ``--out`` folder of ``python -m tfcoord.train`` or of :func:`train`)."""
    return Run(path)


def train(model: str, preset: str | None = None, *, resume: bool = False, **overrides) -> Run:
    """Train ``model`` (its ``preset``, default the model's default) and return the trained :class:`Run`.

    ``overrides`` are the command line's shortcuts (``steps``, ``batch_size``, ``data``, ``seed``,
    ``strategy``, ``out``, ``config``, ``image_features``) and config values, either dotted as in
    ``--set`` (``**{"optim.lr_d": 1e-4}``) or with a double underscore (``optim__lr_d=1e-4``).
    ``resume=True`` continues the run in ``out``.

    Example:
        >>> run = tfcoord.train(model="cocogan", steps=200, batch_size=8, model__ngf=16)
    """
    import yaml

    from tfcoord import cli
    from tfcoord.train import parse_args, train_run

    argv = ["--model", model] + (["--preset", preset] if preset else []) + (["--resume"] if resume else [])
    for key, value in overrides.items():
        if key in SHORTCUTS:
            argv += [f"--{key.replace('_', '-')}", str(value)]
            continue
        dotted = key.replace("__", ".", 1)
        if "." not in dotted:
            raise UserError(f"train(): unknown option {key!r}; use one of {', '.join(SHORTCUTS)} or a config value "
                            "as section__key=value (e.g. optim__lr_d=1e-4)")
        argv += ["--set", f"{dotted}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
    args = parse_args(argv)
    cli.quiet_tensorflow()
    return Run(train_run(args))
