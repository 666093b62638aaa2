"""InfinityGAN's portable seeding (issue 19, item 3): the documented integer recipe, reimplemented here on plain
Python integers (no NumPy generator, no tfcoord helper), gives the library's fields bit for bit; the legacy
seeding still gives the images of seeds drawn before it; clients follow the description's generator."""

import math
import re
import struct

import numpy as np
import pytest

from export.tiling import TilePlan
from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.generation.fields import PositionalField
from tfcoord.models import section_classes
from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan
from tfcoord.models.infinitygan.model import InfinityGan

# -- the recipe as the README and the serving description state it, on Python integers -----------------------
MASK = (1 << 64) - 1
GAMMA, MULTIPLIER_1, MULTIPLIER_2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix(z):
    z = ((z ^ (z >> 30)) * MULTIPLIER_1) & MASK
    z = ((z ^ (z >> 27)) * MULTIPLIER_2) & MASK
    return z ^ (z >> 31)


def recipe_hash(words):
    h = 0
    for w in words:
        h = mix((h + (w + 1) * GAMMA) & MASK)
    return h


def float32_bits(value):
    return struct.unpack("<I", struct.pack("<f", value))[0]  # round to the nearest float32


def recipe_bits(words):
    """float32 bits of normal(hash(words)): float64 uniforms from the two 32-bit halves, Box-Muller's cosine."""
    h = recipe_hash(words)
    u1 = ((h >> 32) + 1) * 2.0 ** -32
    u2 = (h & 0xFFFFFFFF) * 2.0 ** -32
    return float32_bits(math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2))


def recipe_window(seed, seed_path, top, left, height, width, channels):
    return np.array([[[recipe_bits([seed, *seed_path, y, x, c]) for c in range(channels)]
                      for x in range(left, left + width)] for y in range(top, top + height)], np.uint32)


def bits(array):
    return np.ascontiguousarray(array, np.float32).view(np.uint32)


LOCAL, GLOBAL = (1,), (7,)


def noise(layer):
    return (2, layer)


@pytest.fixture(scope="module")
def model():
    """The tiny preset (z_g 32, z_l 16 channels); the fields need no network."""
    return InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="tiny"))


# -- (a) bit for bit --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,seed_path,channels,top,left", [
    (0, LOCAL, 16, 0, 0),
    (1, LOCAL, 16, 37, 1_000_003),  # far from the origin, across a cache tile boundary (16)
    (2**31 + 5, noise(0), 1, 125, 250),  # across a noise tile boundary (128)
    (9, noise(7), 1, (1 << 20) - 3, 12_345),
    (123456789, GLOBAL, 32, 0, 0),
])
def test_positional_fields_match_the_recipe_bit_for_bit(seed, seed_path, channels, top, left):
    field = PositionalField(seed, seed_path, channels, tile=16 if channels > 1 else 128)
    height, width = 6, 9
    expected = recipe_window(seed, seed_path, top, left, height, width, channels)
    np.testing.assert_array_equal(bits(field.window(top, left, height, width)), expected)


def test_many_values_match_the_recipe_bit_for_bit():
    """20,000 values of one noise field: a platform's float64 log/cos rarely moves a float32 result, so check many."""
    field = PositionalField(77, noise(3), 1, tile=128)
    expected = recipe_window(77, noise(3), 500, 7_000, 100, 200, 1)
    got = bits(field.window(500, 7_000, 100, 200))
    assert np.count_nonzero(got != expected) == 0


def test_canvas_inputs_and_global_latents_are_the_recipe_at_their_positions(model):
    """A patch away from the canvas origin: its z_l window starts at latent_step * (row, col), noise layer l's at
    noise_step_l * (row, col); z_g of image k is row k, column 0 of the z_g field."""
    g = model.geometry
    plan = CanvasPlan(g, g.canvas_pixels(4), g.canvas_pixels(5))
    latents = CanvasLatents(model, plan, seed=11)
    row, col = 2, 3
    patch = latents.patch(row, col)
    top, left = row * g.latent_step, col * g.latent_step
    np.testing.assert_array_equal(bits(patch["local_latent"]),
                                  recipe_window(11, LOCAL, top, left, g.window, g.window, 16))
    for layer in (0, g.num_convs - 1):
        size, step = g.conv_output_sizes()[layer], g.noise_steps()[layer]
        np.testing.assert_array_equal(bits(patch["noises"][layer]),
                                      recipe_window(11, noise(layer), step * row, step * col, size, size, 1),
                                      err_msg=f"noise_{layer}")
    dim = model.config.model.global_latent_dim
    z = model.global_latents(11, 3)
    for k in range(3):
        np.testing.assert_array_equal(bits(z[k]), [recipe_bits([11, *GLOBAL, k, 0, c]) for c in range(dim)])


def test_reference_values_of_the_readme():
    """The values the README gives to check a port with (also pinned: a change of recipe must be deliberate)."""
    assert hex(recipe_hash([0, 1, 0, 0, 0])) == "0x7d3ed32edbff2631"
    assert [hex(recipe_bits([0, 1, 0, 0, c])) for c in range(3)] == ["0x3f422cd9", "0x3fee1d43", "0xbe3e2acc"]
    assert hex(recipe_bits([3, 2, 5, 1000, 2000, 0])) == "0xbefd57cc"
    field = PositionalField(0, LOCAL, 3, tile=16)
    np.testing.assert_array_equal(field.window(0, 0, 1, 1)[0, 0], np.float32([0.7584968, 1.860268, -0.18571013]))


def test_the_serving_description_states_the_recipe(model):
    """Clients in other languages read the recipe from the description: its constants are this test's."""
    description = model.serving_description()
    tiling = description["tiling"]
    text = tiling["recipe"]
    for constant in (GAMMA, MULTIPLIER_1, MULTIPLIER_2):
        assert f"0x{constant:X}" in text
    assert re.search(r">> 30.*>> 27.*>> 31", text) and "6.283185307179586" in text and "2^-32" in text
    inputs = tiling["inputs"]
    generators = {name: recipe.get("generator") for name, recipe in inputs.items() if "seed_path" in recipe}
    layers = model.geometry.num_convs
    assert set(generators) == {"global_latent", "local_latent", *(f"noise_{i}" for i in range(layers))}
    assert set(generators.values()) == {"splitmix64-boxmuller/1"}
    assert inputs["local_latent"]["seed_path"] == list(LOCAL)
    assert inputs[f"noise_{layers - 1}"]["seed_path"] == list(noise(layers - 1))
    assert inputs["global_latent"]["seed_path"] == list(GLOBAL)


# -- the legacy seeding and the clients -------------------------------------------------------------------------
def legacy_window(seed, seed_path, tile, channels, top, left, height, width):
    """The seeding before the portable recipe, written out: default_rng per field tile."""
    out = np.empty((height, width, channels), np.float32)
    for y in range(top, top + height):
        for x in range(left, left + width):
            rng = np.random.default_rng([seed, *seed_path, y // tile, x // tile])
            out[y - top, x - left] = rng.standard_normal((tile, tile, channels), dtype=np.float32)[y % tile, x % tile]
    return out


def test_legacy_seeding_keeps_the_fields_of_old_seeds(model):
    g = model.geometry
    plan = CanvasPlan(g, g.canvas_pixels(2), g.canvas_pixels(3))
    legacy, portable = CanvasLatents(model, plan, 5, seeding="legacy"), CanvasLatents(model, plan, 5)
    patch = legacy.patch(1, 2)
    top, left = g.latent_step, 2 * g.latent_step
    np.testing.assert_array_equal(patch["local_latent"], legacy_window(5, LOCAL, 16, 16, top, left, g.window, g.window))
    size, step = g.conv_output_sizes()[2], g.noise_steps()[2]
    np.testing.assert_array_equal(patch["noises"][2], legacy_window(5, noise(2), 128, 1, step, 2 * step, size, size))
    dim = model.config.model.global_latent_dim
    np.testing.assert_array_equal(model.global_latents(5, 2, seeding="legacy"),
                                  np.random.default_rng([5, 7]).standard_normal((2, dim)).astype(np.float32))
    assert np.abs(portable.patch(1, 2)["local_latent"] - patch["local_latent"]).max() > 1.0
    with pytest.raises(UserError, match="seeding must be one of portable, legacy"):
        CanvasLatents(model, plan, 5, seeding="numpy")


def description_of(model, generator=None):
    description = {"format": "tfcoord-serving/1", **model.serving_description()}
    for recipe in description["tiling"]["inputs"].values():
        if "generator" in recipe:
            if generator is None:
                del recipe["generator"]  # as exported before the portable recipe
            else:
                recipe["generator"] = generator
    return description


@pytest.mark.parametrize("case", ["portable", "legacy flag", "old description", "old description, portable flag"])
def test_client_tile_inputs_follow_the_description_or_the_seeding_flag(model, case):
    description, seeding, library_seeding = {
        "portable": (description_of(model, "splitmix64-boxmuller/1"), None, "portable"),
        "legacy flag": (description_of(model, "splitmix64-boxmuller/1"), "legacy", "legacy"),
        "old description": (description_of(model), None, "legacy"),
        "old description, portable flag": (description_of(model), "portable", "portable"),
    }[case]
    g = model.geometry
    width, height = g.canvas_pixels(3) + 10, g.canvas_pixels(2)
    plan = TilePlan(description, width, height, seed=6, seeding=seeding)
    latents = CanvasLatents(model, CanvasPlan(g, height, width), 6, seeding=library_seeding)
    tiles = plan.tiles()[-2:]
    inputs = plan.inputs(tiles)
    np.testing.assert_array_equal(inputs["global_latent"][0], model.global_latents(6, 1, seeding=library_seeding)[0])
    for k, tile in enumerate(tiles):
        patch = latents.patch(tile.row, tile.col)
        np.testing.assert_array_equal(inputs["local_latent"][k], patch["local_latent"])
        last = g.num_convs - 1
        np.testing.assert_array_equal(inputs[f"noise_{last}"][k], patch["noises"][last])


def test_a_description_with_an_unknown_generator_is_refused(model):
    with pytest.raises(UserError, match="generator 'philox/9', unknown to this client.*update tfcoord"):
        TilePlan(description_of(model, "philox/9"), 100, 100)


def test_generate_cli_refuses_legacy_seeding_for_inversions(tmp_path):
    from tfcoord.models.infinitygan.generate import add_arguments, check_arguments
    from tfcoord import cli

    image = tmp_path / "photo.png"
    image.write_bytes(b"")
    parser = cli.ArgumentParser(prog="test")
    for name in ("--width", "--height", "--tile"):
        parser.add_argument(name, type=int)
    parser.add_argument("--panorama", action="store_true")
    parser.add_argument("--format", default="png")
    add_arguments(parser)
    args = parser.parse_args(["--invert", str(image), "--seeding", "legacy"])
    with pytest.raises(UserError, match="--seeding legacy reproduces plain canvases"):
        check_arguments(args)
    args = parser.parse_args(["--seeding", "legacy", "--width", "200", "--height", "100"])
    check_arguments(args)  # a plain canvas with legacy seeding: InfinityGAN's own writer (not the canvas engine)
    assert args.canvas_size == (100, 200) and args.width is None
    args = parser.parse_args(["--seeding", "legacy", "--width", "200", "--format", "tiff"])
    with pytest.raises(UserError, match="--format tiff applies to plain canvases"):
        check_arguments(args)


def test_export_client_takes_the_seeding_flag(tmp_path):
    from export.client import parse_args

    common = ["--width", "64", "--height", "64", "--out", str(tmp_path / "x.png"), "--saved-model", str(tmp_path)]
    assert parse_args(common + ["--seeding", "legacy"]).seeding == "legacy"
    assert parse_args(common).seeding is None  # as the model description says
