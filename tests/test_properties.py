"""Property-based tests: the config parser, the command lines and the coordinate functions, fed random,
extreme and malformed input, either work or raise the documented UserError -- never another exception,
never a hang."""

import dataclasses
import math
import os
import string
import typing

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tfcoord import coords
from tfcoord.config import SHARED_SECTIONS, build_section, load_config, parse_override, read_yaml
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.cocogan.coordinates import CocoGanCoordinates

SECTIONS = section_classes("cocogan")
ALL_SECTIONS = {**SECTIONS, **SHARED_SECTIONS}
# derandomize: the same examples on every run (deterministic CI); no deadline (first TF op traces).
FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=25, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

# Values a user might type, including the extremes and the malformed.
EXTREME_NUMBERS = st.sampled_from([0, -1, 1, 2**31, -(2**63), 10**400, 1e308, -1e-308, 5e-324,
                                   float("nan"), float("inf"), -float("inf"), 0.5, 1e-4])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    EXTREME_NUMBERS, st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=8)
YAML_SOUP = st.text(alphabet=string.printable + "äé€\u2028", max_size=60)


def field_names(section):
    return [f.name for f in dataclasses.fields(ALL_SECTIONS[section])]


@st.composite
def overrides(draw):
    """``section.key=value``: mostly valid sections and keys, values from anywhere, sometimes raw text."""
    section = draw(st.one_of(st.sampled_from(sorted(ALL_SECTIONS)), st.text(max_size=8)))
    keys = field_names(section) if section in ALL_SECTIONS else []
    key = draw(st.one_of(st.sampled_from(keys), st.text(max_size=8)) if keys else st.text(max_size=8))
    if draw(st.booleans()):
        value = yaml.safe_dump(draw(VALUES), default_flow_style=True).strip().removesuffix("...").strip()
    else:
        value = draw(YAML_SOUP)
    return f"{section}.{key}={value}"


def check_config(config):
    """A config that loaded respects every declared type and range."""
    for name, section in config.sections.items():
        hints = typing.get_type_hints(type(section))
        for field in dataclasses.fields(section):
            value = getattr(section, field.name)
            low, high = field.metadata.get("min"), field.metadata.get("max")
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, float):
                    assert math.isfinite(item), (name, field.name, value)
                if low is not None and isinstance(item, (int, float)):
                    assert item >= low, (name, field.name, value)
                if high is not None and isinstance(item, (int, float)):
                    assert item <= high, (name, field.name, value)
            if hints[field.name] is int:
                assert isinstance(value, int) and not isinstance(value, bool)


@FAST
@given(st.text(max_size=40))
@example(".=")  # empty section and key (were accepted)
def test_parse_override_accepts_or_explains_any_text(text):
    try:
        section, key, _ = parse_override(text)
    except UserError as err:
        assert "--set" in str(err)
        return
    assert text.split("=", 1)[0].strip().startswith(section) and key


@FAST
@given(st.lists(overrides(), max_size=3))
@example(["optim.lr_g=" + "1" * 400])  # an int beyond the float range (was an OverflowError)
@example(["data.source=0\x0c"])  # a control character (was an AttributeError)
@example(["0\n.0="])  # a newline in a section name (broke the one-line error)
def test_load_config_with_random_overrides_works_or_raises_user_error(texts):
    try:
        config = load_config("cocogan", SECTIONS, preset="tiny", overrides=texts)
    except UserError as err:
        assert str(err) and "\n" not in str(err).strip()
        return
    check_config(config)
    geometry = config.model
    assert geometry.macro_size % geometry.micro_size == 0  # the documented cross-field check held


@FAST
@given(st.sampled_from(sorted(ALL_SECTIONS)), st.dictionaries(st.text(max_size=12), VALUES, max_size=4))
def test_build_section_with_random_mappings(section, values):
    # Mostly valid keys with random values, plus unknown keys.
    cls = ALL_SECTIONS[section]
    names = field_names(section)
    values = {names[hash(k) % len(names)] if k and k[0] < "m" else k: v for k, v in values.items()}
    try:
        instance = build_section(cls, values, section)
    except UserError:
        return
    assert isinstance(instance, cls)


@FEW
@given(st.one_of(YAML_SOUP.map(str.encode), st.binary(max_size=80)))
@example(b"\x80")  # not UTF-8 (was a UnicodeDecodeError)
def test_read_yaml_of_any_file_content(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_bytes(content)
    try:
        data = read_yaml(path)
    except UserError as err:
        assert str(path) in str(err)
        return
    assert isinstance(data, dict)


# -- command lines -------------------------------------------------------------------------
ARG_VOCABULARY = ["--model", "cocogan", "cocogn", "--steps", "--batch-size", "--set", "train.steps=3",
                  "model.micro_size=7", "optim.lr_g=-1", "--data", "folder:/nonexistent", "synthetic-landscapes",
                  "--out", "--resume", "--seed", "-5", "0", "1e9", "x", "--strategy", "mirrored", "--preset",
                  "--config", "", "=", "--", "--unknown", "2147483648", "nan"]


@FEW
@given(st.lists(st.sampled_from(ARG_VOCABULARY), max_size=8))
def test_train_command_line_validates_or_explains(tmp_path_factory, argv):
    from tfcoord import train

    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))  # default run folders are relative to the working directory
    try:
        args = train.parse_args(argv)
        train.resolve(args)
    except UserError as err:
        assert str(err)
    finally:
        os.chdir(previous)


@FEW
@given(st.lists(st.sampled_from(["--metric", "fid", "kid", "pr", "patch-fid", "fdi", "--num", "0", "1", "3",
                                 "-2", "50001", "--batch", "--num-real", "--pr-k", "--kid-subset-size",
                                 "--scale", "0.5", "inf", "--fov", "--run", "RUN", "NORUN", "--seed", "x"]),
                max_size=10))
def test_evaluate_command_line_validates_or_explains(tmp_path_factory, argv):
    from tfcoord import evaluate

    run = tmp_path_factory.mktemp("run")
    (run / "checkpoints").mkdir()
    (run / "config.yaml").write_text("model_type: cocogan\n")
    argv = [str(run) if a == "RUN" else str(run / "missing") if a == "NORUN" else a for a in argv]
    try:
        args = evaluate.parse_args(argv)
    except UserError as err:
        assert str(err)
        return
    assert 2 <= args.num <= evaluate.MAX_IMAGES and 1 <= args.batch <= evaluate.MAX_BATCH and args.scale >= 1


# -- coordinates ---------------------------------------------------------------------------
def as_array(x):
    return np.asarray(x, np.float64)


@FAST
@given(st.integers(1, 512), st.integers(-600, 600))
def test_linear_position_is_an_affine_grid_over_minus_one_to_one(n, index):
    value = float(as_array(coords.linear_position(index, n)))
    if n == 1:
        assert value == 0.0
        return
    assert value == pytest.approx(-1.0 + 2.0 * index / (n - 1), abs=1e-5 * max(1, abs(index)))
    if 0 <= index < n:
        assert -1.0 - 1e-6 <= value <= 1.0 + 1e-6
    assert float(as_array(coords.linear_position(0, n))) == -1.0
    assert float(as_array(coords.linear_position(n - 1, n))) == pytest.approx(1.0, abs=1e-6)


@FAST
@given(st.integers(1, 64), st.integers(1, 64))
def test_normalized_grid_spans_the_square_in_x_y_order(height, width):
    grid = coords.normalized_grid(height, width)
    assert grid.shape == (height, width, 2) and grid.dtype == np.float32
    assert np.all(np.abs(grid) <= 1.0)
    if width > 1:
        assert grid[0, 0, 0] == -1.0 and grid[0, -1, 0] == 1.0 and np.all(np.diff(grid[0, :, 0]) > 0)
    if height > 1:
        assert grid[0, 0, 1] == -1.0 and grid[-1, 0, 1] == 1.0 and np.all(np.diff(grid[:, 0, 1]) > 0)


@FAST
@given(st.floats(-1e3, 1e3), st.floats(-50, 50))
def test_cylindrical_coordinates_lie_on_the_unit_circle_and_are_periodic(vertical, theta):
    point = as_array(coords.cylindrical(vertical, theta))
    assert point[0] == pytest.approx(vertical, rel=1e-6, abs=1e-4)
    assert point[1] ** 2 + point[2] ** 2 == pytest.approx(1.0, abs=1e-5)
    shifted = as_array(coords.cylindrical(vertical, theta + 2.0))
    np.testing.assert_allclose(point[1:], shifted[1:], atol=1e-3)


@st.composite
def cocogan_geometries(draw):
    micro = draw(st.sampled_from([1, 2, 4, 8, 16]))
    per_macro = draw(st.integers(1, 4))
    rows = draw(st.integers(per_macro, 8))
    cols = draw(st.integers(per_macro, 8))
    system = draw(st.sampled_from(["euclidean", "cylindrical"]))
    return CocoGanCoordinates(rows * micro, cols * micro, per_macro * micro, micro, system)


@FAST
@given(cocogan_geometries(), st.integers(0, 3))
def test_cocogan_micro_grid_shape_range_and_symmetry(geometry, steps):
    grid = as_array(geometry.full_micro_grid(steps))
    rows = geometry.micro_rows + 2 * steps
    cols = geometry.micro_cols + (0 if geometry.system == "cylindrical" else 2 * steps)
    assert grid.shape == (rows, cols, geometry.coord_dim)
    inner = as_array(geometry.full_micro_grid(0))
    assert np.all(np.abs(inner) <= 1.0 + 1e-6)
    np.testing.assert_allclose(inner[::-1, :, 0], -inner[:, :, 0], atol=1e-5)  # vertical axis is symmetric
    if steps:  # extrapolation extends the same spacing outwards
        np.testing.assert_allclose(grid[steps:rows - steps, :, 0][:, :1], inner[:, :1, 0], atol=1e-5)


@FAST
@given(cocogan_geometries(), st.data())
def test_cocogan_macro_offsets_and_micro_patches_agree(geometry, data):
    row = data.draw(st.integers(0, geometry.macro_rows() - 1))
    col = data.draw(st.integers(0, geometry.macro_cols() - 1))
    top, left = geometry.macro_pixel_offset(row, col)
    if geometry.system == "euclidean":
        macro = as_array(geometry.macro_coords(row, col))
        span = (geometry.full_height - geometry.macro_size, geometry.full_width - geometry.macro_size)
        assert top == pytest.approx((macro[0] + 1) / 2 * span[0], abs=1e-3)
        assert left == pytest.approx((macro[1] + 1) / 2 * span[1], abs=1e-3)
    micro = as_array(geometry.micro_coords_of_macro(np.array([row]), np.array([col])))[0]
    n = geometry.micro_per_macro
    first = as_array(geometry.micro_coords(row, col))
    np.testing.assert_allclose(micro[0], first, atol=1e-6)
    assert micro.shape == (n * n, geometry.coord_dim)


@FAST
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))
def test_merge_and_split_patches_are_inverse(batch, rows, cols, height, width):
    images = np.random.default_rng(0).random((batch, rows * height, cols * width, 2)).astype(np.float32)
    patches = as_array(coords.split_patches(images, rows, cols))
    assert patches.shape == (batch * rows * cols, height, width, 2)
    np.testing.assert_array_equal(as_array(coords.merge_patches(patches, rows, cols)), images)


@FAST
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 6), st.booleans(), st.data())
def test_crop_patches_equals_slicing(height, width, size, wrap, data):
    assume(size <= height and (size <= width or wrap))
    top = data.draw(st.integers(0, height - size))
    left = data.draw(st.integers(0, width - 1 if wrap else width - size))
    image = np.arange(height * width, dtype=np.float32).reshape(1, height, width, 1)
    crop = as_array(coords.crop_patches(image, np.array([top]), np.array([left]), size, wrap_columns=wrap))
    columns = [(left + i) % width for i in range(size)]
    np.testing.assert_array_equal(crop[0, :, :, 0], image[0, top:top + size][:, columns, 0])


@FEW
@given(st.lists(st.integers(-3, 300), min_size=2, max_size=2), st.integers(-2, 130), st.integers(-2, 70),
       st.sampled_from(["euclidean", "cylindrical", "spherical", ""]))
def test_any_cocogan_geometry_in_a_config_is_consistent_or_refused(full_size, macro, micro, system):
    texts = [f"model.full_size={full_size}", f"model.macro_size={macro}", f"model.micro_size={micro}",
             f"model.coordinate_system={system or 'null'}"]
    try:
        config = load_config("cocogan", SECTIONS, preset="tiny", overrides=texts)
    except UserError:
        return
    from tfcoord.models.cocogan.model import geometry_of

    geometry = geometry_of(config.model)
    assert geometry.micro_rows * micro == full_size[0] and geometry.micro_cols * micro == full_size[1]
    assert geometry.macro_rows() >= 1 and geometry.macro_cols() >= 1
    assert as_array(geometry.full_micro_grid()).shape[:2] == (geometry.micro_rows, geometry.micro_cols)
