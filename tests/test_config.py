"""Configs: presets load, bad keys and values are refused with a clear message, resolved configs round-trip."""

import pytest

from tfcoord.config import list_presets, load_config, load_run_config, parse_override
from tfcoord.errors import UserError
from tfcoord.models import section_classes

SECTIONS = section_classes("cocogan")


def load(*overrides, preset="tiny"):
    return load_config("cocogan", SECTIONS, preset=preset, overrides=list(overrides))


@pytest.mark.parametrize("preset", list_presets("cocogan"))
def test_every_preset_loads(preset):
    config = load(preset=preset)
    assert config.model.full_size[0] % config.model.micro_size == 0


def test_overrides_are_typed():
    config = load("train.steps=7", "optim.lr_d=1e-3", "model.full_size=[64, 64]", "model.macro_size=32")
    assert config.train.steps == 7 and config.optim.lr_d == 1e-3 and config.model.full_size == (64, 64)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown key 'model.micro_sise'.*did you mean 'micro_size'.*valid keys"):
        load("model.micro_sise=8")


def test_unknown_section():
    with pytest.raises(UserError, match="did you mean 'train'"):
        load("trian.steps=3")


@pytest.mark.parametrize("override, message", [
    ("train.steps=abc", "train.steps must be an integer"),
    ("train.steps=0", "train.steps must be >= 1"),
    ("optim.lr_g=.nan", "finite"),
    ("model.coordinate_system=spherical", "one of 'euclidean', 'cylindrical'"),
    ("log.progress_bar=3", "true or false"),
    ("model.full_size=[32]", "2 items"),
])
def test_bad_values(override, message):
    with pytest.raises(UserError, match=message):
        load(override)


def test_micro_must_divide_macro():
    with pytest.raises(UserError, match=r"micro_size \(8\) must divide model.macro_size \(12\)"):
        load("model.macro_size=12")


def test_impossible_patch_sizes():
    with pytest.raises(UserError, match="must not exceed"):
        load("model.macro_size=64")
    with pytest.raises(UserError, match="power of two"):
        load("model.micro_size=6")


def test_set_needs_section_and_key():
    with pytest.raises(UserError, match="section.key=value"):
        parse_override("steps=3")


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config("cocogan", SECTIONS, preset="tiny", config_file=bad)
    with pytest.raises(UserError, match="does not exist"):
        load_config("cocogan", SECTIONS, preset="tiny", config_file=tmp_path / "missing.yaml")
    other = tmp_path / "other.yaml"
    other.write_text("model_type: cips\n")
    with pytest.raises(UserError, match="is for model 'cips'"):
        load_config("cocogan", SECTIONS, preset="tiny", config_file=other)


def test_unknown_preset():
    with pytest.raises(UserError, match="did you mean 'tiny'"):
        load(preset="tyni")


def test_resolved_config_round_trip(tmp_path):
    config = load("train.steps=11", "model.coordinate_system=euclidean", preset="celeba64")
    config.save(tmp_path / "config.yaml")
    again = load_run_config(tmp_path, section_classes)
    assert again.to_dict() == config.to_dict()
    assert again.preset == "celeba64"
