"""Run configuration: YAML presets mapped onto typed dataclasses.

A run is described by sections. Three are shared by every model:

* ``data``  — where images come from (:class:`DataConfig`),
* ``train`` — steps, batch, strategy, checkpoints (:class:`TrainConfig`),
* ``log``   — progress, TensorBoard scalars and sample grids (:class:`LogConfig`),

and each model adds its own (``model``, ``loss``, ``optim``), declared by the model
(see :mod:`tfcoord.models`). Dataclass defaults hold the paper's values; a YAML
preset under ``configs/<model>/<preset>.yaml`` only states what differs.

Values are resolved in this order, later winning: dataclass defaults, the model's
default preset (or ``--config FILE``), command-line shortcuts (``--steps`` ...),
``--set section.key=value`` overrides. Unknown keys, wrong types and values out of
range raise :class:`~tfcoord.errors.UserError` naming the key, the valid choices
and the closest valid key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml

from tfcoord.errors import UserError

# train.precision, generate --precision and export.saved_model --precision (tfcoord.training.precision says
# what each keeps in float32). Here, not there, so that command lines list them without importing Keras.
Precision = Literal["float32", "mixed_bfloat16", "mixed_float16"]
PRECISIONS = typing.get_args(Precision)

CONFIG_ROOT_CANDIDATES = (
    Path(__file__).resolve().parent.parent / "configs",  # source checkout / editable install
    Path(__file__).resolve().parent / "configs",  # regular install (package_dir mapping)
)


def bounded(default, *, min=None, max=None, doc=""):
    """A dataclass field with an inclusive numeric range checked on load."""
    return dataclasses.field(default=default, metadata={"min": min, "max": max, "doc": doc})


@dataclasses.dataclass
class DataConfig:
    """Where training images come from, and how a photo becomes one (each paper's recipe is in its preset).

    Order (:func:`tfcoord.data.pipeline.fit_to_size`): ``resize`` -> ``crop`` -> resize to the model's
    image size -> ``flip``. Evaluation uses the same resize and the non-random form of the crop
    (random_largest and random: centred) and never flips. Presized sources (synthetic-landscapes)
    are rendered at the model's size: none of this applies to them.
    """

    # synthetic-landscapes | synthetic-birds | folder:PATH | tfds:NAME[/CONFIG][:SPLIT], where SPLIT
    # may be a tfds split expression: tfds:celeb_a:train[:152599], tfds:celeb_a:train[152599:]+test
    source: str = "synthetic-landscapes"
    # Resize before cropping (0 = no resize): shorter_side scales the shorter side to `resize` px and
    # keeps the aspect (the longer side rounded down, as torchvision's Resize(int)); square scales
    # the whole image to resize x resize (Torch7's image.scale(img, n, n), GAWWN).
    resize: int = bounded(0, min=0)
    resize_mode: Literal["shorter_side", "square"] = "shorter_side"
    # random_largest: the largest window of the model's aspect ratio at a random offset;
    # centre: crop_size x crop_size at ((H - crop_size) // 2, (W - crop_size) // 2), or without
    #   crop_size the largest window of the model's aspect ratio at ((H - h) // 2, (W - w) // 2);
    # random: crop_size x crop_size at a random offset; fixed: crop_size x crop_size at crop_offset;
    # none: the whole image (its aspect ratio is not kept when it differs from the model's).
    # H, W: the image after `resize`. The window is then resized to the model's image size.
    crop: Literal["random_largest", "centre", "random", "fixed", "none"] = "random_largest"
    crop_size: int = bounded(0, min=0)  # pixels of the image after `resize` (0: not used)
    crop_offset: tuple[int, int] = bounded((0, 0), min=0)  # crop: fixed only, (top, left)
    flip: bool = True  # random horizontal flip (p = 0.5) when training; boxes and keypoints follow

    def validate(self) -> None:
        sized = ("centre", "random", "fixed")
        if self.crop in ("random", "fixed") and not self.crop_size:
            raise UserError(f"data.crop: {self.crop} needs data.crop_size > 0 (the side of the square crop)")
        if self.crop_size and self.crop not in sized:
            raise UserError(f"data.crop_size is only used by crop: {', '.join(sized)}; "
                            f"remove it or choose one of those crops (data.crop is {self.crop})")
        if tuple(self.crop_offset) != (0, 0) and self.crop != "fixed":
            raise UserError(f"data.crop_offset is only used by crop: fixed (data.crop is {self.crop}); remove it")
        if self.resize_mode != "shorter_side" and not self.resize:
            raise UserError("data.resize_mode: square needs data.resize > 0 (the side to scale the image to)")
        if self.resize and self.crop_size > self.resize:
            raise UserError(f"data.crop_size {self.crop_size} does not fit in an image resized to data.resize "
                            f"{self.resize}; lower crop_size or raise resize")


@dataclasses.dataclass
class TrainConfig:
    """The training loop, shared by every model."""

    steps: int = bounded(1000, min=1)
    batch_size: int = bounded(16, min=1)  # global batch, split across replicas
    seed: int = bounded(0, min=0, max=2**31 - 1)
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker"] = "auto"
    # Layers compute in float32, or in bfloat16 / float16 with float32 master weights, optimiser state,
    # EMA, losses and normalisation statistics (tfcoord.training.precision); float16 adds Keras's dynamic
    # loss scaling. Checkpoints are float32 in every precision. Runs saved before the key trained in float32.
    precision: Precision = "float32"
    checkpoint_every: int = bounded(500, min=1)
    keep_checkpoints: int = bounded(3, min=1)
    # Restore network weights (not optimizer state or step) from another run before training,
    # e.g. for COCO-GAN's extrapolation fine-tuning of a converged model.
    init_from: str = ""
    # A NaN/inf loss: "stop" (naming the step; the last good checkpoint stays intact) or
    # "restore": reload the last good checkpoint, multiply every optimizer's learning rate by
    # nonfinite_lr_factor and go on, at most max_restores times (docs/reliability.md).
    on_nonfinite: Literal["stop", "restore"] = "stop"
    nonfinite_lr_factor: float = bounded(0.5, min=1e-6, max=1.0)
    max_restores: int = bounded(3, min=1)
    # Periodic evaluation during training (off when fid_every = 0): fid_metric of fid_num samples
    # against fid_real (default: data.source); the best checkpoint is kept in checkpoints/best/.
    fid_every: int = bounded(0, min=0)
    fid_metric: Literal["fid", "kid"] = "fid"
    fid_num: int = bounded(5000, min=2, max=1_000_000)
    fid_real: str = ""
    fid_inception_weights: str = ""  # default: the Keras cache (see tfcoord.metrics.inception)


@dataclasses.dataclass
class LogConfig:
    """What a run reports while it trains."""

    scalars_every: int = bounded(10, min=1)
    samples_every: int = bounded(250, min=1)
    num_samples: int = bounded(16, min=1, max=256)
    progress_bar: bool = True


SHARED_SECTIONS = {"data": DataConfig, "train": TrainConfig, "log": LogConfig}


@dataclasses.dataclass
class RunConfig:
    """A whole run: the model's name, its preset and one dataclass instance per section."""

    model_type: str
    preset: str
    sections: dict[str, Any]

    def __getattr__(self, name):
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    def to_dict(self) -> dict:
        return {"model_type": self.model_type, "preset": self.preset,
                **{name: _to_plain(dataclasses.asdict(section)) for name, section in self.sections.items()}}

    def save(self, path: Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def closest(name: str, valid) -> str:
    """' (did you mean X?)' for the closest valid name, or ''."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _describe_type(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_describe_type(args[0])}" if args else "a list"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, str(tp))


def _coerce(value, tp, where: str):
    """Check ``value`` against the annotation ``tp``; return it converted (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    wrong = UserError(f"{where} must be {_describe_type(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise wrong
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            with contextlib.suppress(UserError):
                return _coerce(value, arg, where)
        raise wrong
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise UserError(f"{where} must have {len(args)} items, got {value!r}")
        items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        return tuple(items) if origin is tuple else items
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads 1e-4 without a dot as a string.
            try:
                value = float(value)
            except ValueError:
                raise wrong from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        try:
            as_float = float(value)
        except OverflowError:  # an integer beyond the float range
            as_float = float("inf")
        if not math.isfinite(as_float):
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return as_float
    if tp in (int, bool, str, type(None)):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise wrong
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {where}")


def _check_range(value, field: dataclasses.Field, where: str):
    lo, hi = field.metadata.get("min"), field.metadata.get("max")
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if lo is not None and item < lo:
            raise UserError(f"{where} must be >= {lo}, got {value!r}")
        if hi is not None and item > hi:
            raise UserError(f"{where} must be <= {hi}, got {value!r}")


def build_section(cls, values: dict, section_name: str):
    """Instantiate the dataclass ``cls`` from a mapping, checking keys, types and ranges."""
    if not isinstance(values, dict):
        raise UserError(f"config section '{section_name}' must be a mapping of key: value, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise UserError(
                f"unknown key {f'{section_name}.{key}'!r}{closest(str(key), fields)}; "
                f"valid keys of '{section_name}': {', '.join(sorted(fields))}")
        where = f"{section_name}.{key}"
        kwargs[key] = _coerce(value, hints[key], where)
        _check_range(kwargs[key], fields[key], where)
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate()
    return instance


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``section.key=value``; the value is parsed as YAML (so 1e-4, true, [32, 32] work)."""
    path, equals, raw = text.partition("=")
    section, _, key = path.strip().partition(".")
    if not equals or not section or not key:
        raise UserError(f"--set expects section.key=value (e.g. train.steps=100), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:  # ReaderError (control characters) has no .problem
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"--set {text!r}: the value is not valid YAML ({problem})") from None
    return section, key, value


def config_root() -> Path:
    for root in CONFIG_ROOT_CANDIDATES:
        if root.is_dir():
            return root
    raise UserError("the configs/ folder was not found next to the tfcoord package; reinstall with 'pip install -e .'")


def list_presets(model_type: str) -> list[str]:
    folder = config_root() / model_type
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def read_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"config file {path} is not UTF-8 text ({err.reason} at byte {err.start}); "
                        "pass a YAML file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path} is not valid YAML{line}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of sections (model:, data:, train:, ...)")
    return data


def load_config(model_type: str, section_classes: dict[str, type], *, preset: str,
                config_file: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Resolve a run's configuration.

    Args:
        model_type: the registered model name (``cocogan``).
        section_classes: the model's own sections, e.g. ``{"model": CocoGanConfig, ...}``.
        preset: preset name used when ``config_file`` is not given.
        config_file: a YAML file replacing the preset.
        overrides: ``section.key=value`` strings applied last.
    """
    classes = {**section_classes, **SHARED_SECTIONS}
    if config_file is not None:
        path = Path(config_file)
        preset_name = path.stem
    else:
        path = config_root() / model_type / f"{preset}.yaml"
        if not path.is_file():
            raise UserError(f"no preset '{preset}' for model '{model_type}'{closest(preset, list_presets(model_type))}; "
                            f"available: {', '.join(list_presets(model_type)) or 'none'}")
        preset_name = preset
    raw = read_yaml(path)
    if "model_type" in raw:  # the config.yaml of a run (presets name no model_type)
        fill_added_keys(raw, classes)
    file_model = raw.pop("model_type", model_type)
    if file_model != model_type:
        raise UserError(f"config file {path} is for model '{file_model}', not '{model_type}'; "
                        f"pass --model {file_model} or a {model_type} config")
    preset_name = raw.pop("preset", None) or preset_name
    for section_name in raw:
        if section_name not in classes:
            raise UserError(f"unknown config section {str(section_name)!r} in {path}{closest(str(section_name), classes)}; "
                            f"valid sections: {', '.join(classes)}")
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in classes:
            raise UserError(f"unknown config section {section!r} in --set {text!r}{closest(section, classes)}; "
                            f"valid sections: {', '.join(classes)}")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise UserError(f"config section '{section}' must be a mapping")
        raw[section][key] = value
    move_renamed_keys(raw, classes)
    sections = {name: build_section(cls, raw.get(name) or {}, name) for name, cls in classes.items()}
    return RunConfig(model_type=model_type, preset=preset_name, sections=sections)


def fill_added_keys(raw: dict, classes: dict[str, type]) -> None:
    """A run saved before a field existed keeps the behaviour it trained with: the value a section class
    lists in ``ADDED_KEYS`` (``{"key": value before the field existed}``), not today's default."""
    for section_name, cls in classes.items():
        values = raw.get(section_name)
        if isinstance(values, dict):
            for key, legacy in getattr(cls, "ADDED_KEYS", {}).items():
                values.setdefault(key, legacy)


def move_renamed_keys(raw: dict, classes: dict[str, type]) -> None:
    """Moves old spellings that a section class lists in ``RENAMED_KEYS`` (``{"old_key": "section.key"}``)
    to their new place, with a FutureWarning, so old presets and the config.yaml of existing runs still load."""
    for section_name, cls in classes.items():
        values = raw.get(section_name)
        for old_key, new_path in getattr(cls, "RENAMED_KEYS", {}).items():
            if not isinstance(values, dict) or old_key not in values:
                continue
            new_section, new_key = new_path.split(".")
            target = raw.get(new_section) or {}
            if not isinstance(target, dict):
                continue  # build_section reports the section that is not a mapping
            value = values.pop(old_key)
            if new_key in target and target[new_key] != value:
                raise UserError(f"{section_name}.{old_key} (old spelling of {new_path}) is {value!r} but {new_path} "
                                f"is {target[new_key]!r}; keep only {new_path}")
            raw[new_section] = {**target, new_key: value}
            warnings.warn(f"{section_name}.{old_key} is deprecated and now sets {new_path}; write {new_path} instead",
                          FutureWarning, stacklevel=3)


def read_run_yaml(run_dir) -> dict:
    """The resolved ``config.yaml`` a run directory keeps, checked to name its model."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a tfcoord run directory (no config.yaml); pass the --out folder of a training run")
    raw = read_yaml(path)
    if not isinstance(raw.get("model_type"), str):
        raise UserError(f"{path} has no model_type; it was not written by tfcoord.train")
    return raw


def load_run_config(run_dir: str | Path, section_classes_for) -> RunConfig:
    """Read the resolved ``config.yaml`` a run directory keeps.

    ``section_classes_for(model_type)`` returns that model's section classes.
    """
    raw = read_run_yaml(run_dir)
    model_type = raw["model_type"]
    return load_config(model_type, section_classes_for(model_type), preset=raw.get("preset", "custom"),
                       config_file=Path(run_dir) / "config.yaml")
