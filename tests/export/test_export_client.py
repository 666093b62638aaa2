"""The tiled client: the same image from gRPC, REST, a local SavedModel and TFLite; retries; clear errors."""

import numpy as np
import pytest
from PIL import Image

from conftest import run_module
from export.backends import GrpcBackend, RestBackend, RetryPolicy, SavedModelBackend, TfliteBackend, TransientError
from export.client import parse_args, render, render_bands
from export.client import main as client_main
from export.tiling import TilePlan
from export_cases import EXPORT_CASES, exported  # noqa: F401 (fixture)
from tests.support.serving import Failures, ModelStore, grpc_server, rest_server
from tfcoord.errors import UserError
from tfcoord.generation.tiles import Tile
from tfcoord.images import to_uint8

FAST_RETRY = dict(attempts=6, base_delay=0.001, max_delay=0.01)
INFINITYGAN = [case for case in EXPORT_CASES if case.model_type == "infinitygan"]
only_infinitygan = pytest.mark.parametrize("exported", INFINITYGAN, indirect=True, ids=lambda case: case.name)


def skip_unless_tileable(exported):
    if exported.case.untileable:
        pytest.skip(exported.case.untileable)


@pytest.fixture(scope="module")
def servers(exported):
    """gRPC and REST stand-ins on 127.0.0.1 serving the exported model as 'served'."""
    skip_unless_tileable(exported)
    store = ModelStore({"served": exported.serving_dir})
    with grpc_server(store) as target, rest_server(store) as url:
        yield store, target, url


@pytest.fixture(scope="module")
def local(exported):
    """The exported model run in this process: what local generation with the SavedModel draws."""
    skip_unless_tileable(exported)
    return SavedModelBackend(exported.serving_dir)


def backend_for(kind, exported, servers):
    _, target, url = servers
    return {"grpc": lambda: GrpcBackend(target, "served"), "rest": lambda: RestBackend(url, "served")}[kind]()


def draw(backend, width, height, seed=3, batch=5, in_flight=3, panorama=False):
    retry = RetryPolicy(**FAST_RETRY)
    plan = TilePlan(retry.call(backend.description), width, height, seed=seed, panorama=panorama)
    canvas = render(backend, plan, batch_size=batch, max_in_flight=in_flight, retry=retry, progress=False)
    return canvas, retry


def native_size(description):
    (tile_h, tile_w), (rows, cols) = description["tiling"]["tile_size"], description["tiling"]["native_tiles"]
    return rows * tile_h, cols * tile_w


def test_grpc_and_rest_draw_exactly_the_image_of_local_generation(exported, servers, local):
    height, width = native_size(exported.description)
    tile = exported.description["tiling"]["tile_size"][0]
    for size, steps in [((width, height), 0), ((width + 2 * tile, height + 2 * tile), 1)]:
        expected, _ = draw(local, *size)
        for kind in ("grpc", "rest"):
            remote, _ = draw(backend_for(kind, exported, servers), *size)
            np.testing.assert_array_equal(remote, expected, err_msg=kind)  # same signature, same batches
        if exported.case.model_type == "cocogan":  # beyond-boundary canvas = generate --extrapolate
            keras = exported.model.sampler.generate_full(exported.model.latents(3, 1),
                                                         extrapolation_steps=steps)[0]
            # A panorama extrapolates vertically only; its wider canvas continues around the cylinder.
            np.testing.assert_allclose(expected[:, :keras.shape[1]], keras, atol=1e-5, rtol=0)
            if keras.shape[1] < expected.shape[1]:
                np.testing.assert_allclose(expected[:, keras.shape[1]:], keras[:, :2 * tile], atol=1e-5, rtol=0)
        if exported.case.model_type == "cips" and steps == 0:  # the training grid, one call
            keras = exported.model.sampler.generate(exported.model.sampler.latents(3, 1), height, width)[0]
            np.testing.assert_allclose(expected, keras, atol=1e-4, rtol=0)
        if exported.case.model_type == "infinitygan":  # = generate: one patch, then 4 x 4 patches centre-cropped
            from tfcoord.models.infinitygan.infinite import generate_canvas

            keras = generate_canvas(exported.model, size[1], size[0], seed=3)
            np.testing.assert_allclose(expected, keras, atol=1e-5, rtol=0)


def test_client_cli_writes_the_same_png_over_grpc_as_from_the_saved_model(exported, servers, local, tmp_path):
    _, target, _ = servers
    common = ["--width", "37", "--height", "29", "--seed", "5", "--batch", "3", "--quiet"]  # cropped last tiles
    client_main([*common, "--out", str(tmp_path / "grpc.png"), "--grpc", target, "--model-name", "served"])
    client_main([*common, "--out", str(tmp_path / "local.png"), "--saved-model", str(exported.serving_dir)])
    remote = np.asarray(Image.open(tmp_path / "grpc.png"))
    assert remote.shape == (29, 37, 3)
    np.testing.assert_array_equal(remote, np.asarray(Image.open(tmp_path / "local.png")))
    canvas, _ = draw(local, 37, 29, seed=5)
    np.testing.assert_array_equal(remote, to_uint8(canvas))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grpc.png", "local.png"]  # no .tmp left


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_a_server_failing_transiently_still_yields_the_full_image(exported, servers, local, kind):
    store = servers[0]
    tile_height, tile_width = exported.description["tiling"]["tile_size"]
    size = (4 * tile_width, 3 * tile_height)  # 12 requests of one tile
    expected, _ = draw(local, *size, batch=1)
    store.failures = Failures(every=3)
    try:
        image, retry = draw(backend_for(kind, exported, servers), *size, batch=1)
    finally:
        failed, store.failures = store.failures.failed, Failures()
    assert failed >= 3 and retry.retries == failed
    np.testing.assert_array_equal(image, expected)


def test_a_server_that_never_recovers_is_reported_after_the_retries(exported, servers):
    store = servers[0]
    store.failures = Failures(every=1)
    try:
        with pytest.raises(UserError, match="UNAVAILABLE.*after 3 attempts"):
            RetryPolicy(attempts=3, base_delay=0.001).call(backend_for("grpc", exported, servers).description)
    finally:
        store.failures = Failures()


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_a_server_without_the_model_or_the_signature_gives_a_clear_error(exported, servers, kind, tmp_path):
    _, target, url = servers
    where = ["--grpc", target] if kind == "grpc" else ["--rest", url]
    common = ["--width", "16", "--height", "16", "--out", str(tmp_path / "x.png"), "--quiet", *where]
    with pytest.raises(UserError, match="has no model 'other'.*--model-name"):
        client_main([*common, "--model-name", "other"])
    with pytest.raises(UserError, match="has no signature 'generate_nothing'.*generate_patch"):
        client_main([*common, "--model-name", "served", "--signature", "generate_nothing"])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_served_signatures_refuse_bad_input(exported, servers):
    backend = backend_for("grpc", exported, servers)
    tile_height, tile_width = exported.description["tiling"]["tile_size"]
    plan = TilePlan(backend.description(), 2 * tile_width, tile_height)
    inputs = plan.inputs(plan.tiles())
    latent = next(n for n, r in plan.recipes.items() if r["source"] == "latent")
    for bad in (dict(inputs, **{latent: np.full_like(inputs[latent], np.nan)}),
                dict(inputs, **{latent: inputs[latent][:, :-1]})):
        with pytest.raises(UserError, match="refused the inputs"):
            backend.predict("generate_patch", bad)


def test_rest_row_and_columnar_formats_agree(exported, servers):
    import json
    import urllib.request

    _, _, url = servers
    tile_height, tile_width = exported.description["tiling"]["tile_size"]
    plan = TilePlan(exported.description, 2 * tile_width, tile_height)
    inputs = plan.inputs(plan.tiles())

    def post(body):
        request = urllib.request.Request(f"{url}/v1/models/served:predict", data=json.dumps(body).encode(),
                                         method="POST")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    columnar = post({"signature_name": "generate_patch", "inputs": {k: v.tolist() for k, v in inputs.items()}})
    rows = post({"signature_name": "generate_patch",
                 "instances": [{k: v[i].tolist() for k, v in inputs.items()} for i in range(plan.num_tiles)]})
    np.testing.assert_array_equal(np.asarray(columnar["outputs"]), np.asarray(rows["predictions"]))


@pytest.mark.parametrize("exported", EXPORT_CASES[:1], indirect=True, ids=lambda case: case.name)  # model-agnostic
def test_tflite_backend_tiles_like_the_saved_model(exported, local, tmp_path):
    from export.tflite import export_tflite

    path, _ = export_tflite(exported.run_dir, tmp_path / "patch.tflite", exported.description["tiling"]["tile_size"][0],
                            batch=2)
    height, width = native_size(exported.description)
    expected, _ = draw(local, width + 5, height)
    image, _ = draw(TfliteBackend(path), width + 5, height, batch=3)  # 3 tiles per request, 2 per invoke
    np.testing.assert_allclose(image, expected, atol=1e-4, rtol=0)


@only_infinitygan
def test_infinitygan_client_draws_the_canvas_of_generate_canvas(exported, local, tmp_path):
    """Reachable (2 x 3 patches) and unreachable (centre-cropped) sizes, any batch: the library's canvas."""
    from tfcoord.models.infinitygan.infinite import generate_canvas

    g = exported.model.geometry
    reachable = (g.canvas_pixels(3), g.canvas_pixels(2))  # (width, height)
    unreachable = (reachable[0] + 21, reachable[1] - 11)  # 4 x 2 patches, cropped by 13 and 5 px
    for width, height in (reachable, unreachable):
        expected = generate_canvas(exported.model, height, width, seed=3)
        for batch, in_flight in ((1, 1), (4, 3)):
            image, _ = draw(local, width, height, seed=3, batch=batch, in_flight=in_flight)
            np.testing.assert_allclose(image, expected, atol=1e-5, rtol=0, err_msg=f"{width}x{height} batch {batch}")
    client_main(["--width", str(width), "--height", str(height), "--seed", "3", "--batch", "2", "--quiet",
                 "--out", str(tmp_path / "x.png"), "--saved-model", str(exported.serving_dir)])
    png = np.asarray(Image.open(tmp_path / "x.png")).astype(int)
    assert png.shape == (height, width, 3)
    assert np.abs(png - to_uint8(expected).astype(int)).max() <= 1


@only_infinitygan
def test_infinitygan_client_draws_panoramas_like_generate_canvas(exported, local, tmp_path):
    from tfcoord.models.infinitygan.infinite import generate_canvas

    g = exported.model.geometry
    width, height = 16 * g.pixels_per_latent, g.canvas_pixels(2) - 7  # 128 x 94 for the tiny model
    expected = generate_canvas(exported.model, height, width, seed=2, panorama=True)
    image, _ = draw(local, width, height, seed=2, batch=3, panorama=True)
    np.testing.assert_allclose(image, expected, atol=1e-5, rtol=0)
    client_main(["--width", str(width), "--height", str(height), "--seed", "2", "--panorama", "--quiet",
                 "--out", str(tmp_path / "x.png"), "--saved-model", str(exported.serving_dir)])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), to_uint8(image))
    unit = g.pixels_per_latent
    with pytest.raises(UserError, match=f"multiple of {unit} px.*use {width - unit} or {width}"):
        TilePlan(exported.description, width - 3, height, panorama=True)


@only_infinitygan
def test_infinitygan_tile_inputs_are_windows_of_the_library_canvas(exported):
    """Every input of every tile (noise too, which the untrained model ignores) is the library's, also for torus
    coordinates (the maps configuration, its description only)."""
    from tfcoord.config import load_config
    from tfcoord.models import section_classes
    from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan
    from tfcoord.models.infinitygan.model import InfinityGan

    maps = InfinityGan(load_config("infinitygan", section_classes("infinitygan"), preset="maps"))
    cases = [(exported.model, exported.description, 170, 90, False, 4),
             (exported.model, exported.description, 128, 101, True, 4),
             (maps, {"format": "tfcoord-serving/1", **maps.serving_description()}, 150, 101, False, 1)]
    for model, description, width, height, panorama, batch in cases:
        plan = TilePlan(description, width, height, seed=4, panorama=panorama)
        library = CanvasPlan(model.geometry, height, width, panorama)
        assert (plan.rows, plan.cols) == (library.rows, library.cols)
        assert (plan.crop_top, plan.crop_left) == library.offset
        latents = CanvasLatents(model, library, 4)
        for tiles in plan.batches(batch):
            inputs = plan.inputs(tiles)
            np.testing.assert_array_equal(inputs["global_latent"], np.repeat(model.global_latents(4, 1), len(tiles), 0))
            for k, tile in enumerate(tiles):
                patch = latents.patch(tile.row, tile.col)
                np.testing.assert_array_equal(inputs["local_latent"][k], patch["local_latent"])
                np.testing.assert_array_equal(inputs["coords"][k], patch["coords"])
                for i, noise in enumerate(patch["noises"]):
                    np.testing.assert_array_equal(inputs[f"noise_{i}"][k], noise, err_msg=f"noise_{i}")


@only_infinitygan
def test_infinitygan_tiles_of_a_huge_canvas_need_little_memory(exported):
    """A 2^20 px square canvas: its first batch and its last tile come from per-position fields, not whole canvases
    (the local latent canvas alone would be 2^40 x 16 floats)."""
    import tracemalloc

    from tfcoord.models.infinitygan.infinite import CanvasLatents, CanvasPlan

    side = 1 << 20
    tracemalloc.start()
    try:
        plan = TilePlan(exported.description, side, side, seed=1)
        first = plan.inputs(next(plan.batches(4)))
        last = Tile(plan.rows - 1, plan.cols - 1, 0, 0, 1, 1)
        far = plan.inputs([last])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    assert first["local_latent"].shape[0] == 4
    canvas = CanvasPlan(exported.model.geometry, side, side)
    library = CanvasLatents(exported.model, canvas, 1).patch(last.row, last.col)
    np.testing.assert_array_equal(far["local_latent"][0], library["local_latent"])
    np.testing.assert_array_equal(far["coords"][0], library["coords"])
    np.testing.assert_array_equal(far["noise_0"][0], library["noises"][0])


@only_infinitygan
def test_infinitygan_tflite_backend_draws_the_canvas_of_generate_canvas(exported, tmp_path):
    from export.tflite import export_tflite
    from tfcoord.models.infinitygan.infinite import generate_canvas

    g = exported.model.geometry
    path, _ = export_tflite(exported.run_dir, tmp_path / "patch.tflite", g.patch_size, batch=2)  # static patch
    width, height = g.canvas_pixels(3) + 21, g.canvas_pixels(2) - 11
    expected = generate_canvas(exported.model, height, width, seed=3)
    image, _ = draw(TfliteBackend(path), width, height, seed=3, batch=3)  # 3 tiles per request, 2 per invoke
    np.testing.assert_allclose(image, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())), rtol=0)


def test_tile_plan_reproduces_the_model_coordinate_grid():
    from tfcoord.config import load_config
    from tfcoord.models import section_classes
    from tfcoord.models.cocogan.model import CocoGan

    for preset in ("tiny", "panorama_tiny"):
        model = CocoGan(load_config("cocogan", section_classes("cocogan"), preset=preset))
        description = {"format": "tfcoord-serving/1", **model.serving_description()}
        micro = model.config.model.micro_size
        for steps in (0, 1, 2):
            grid = np.asarray(model.geometry.full_micro_grid(steps))
            plan = TilePlan(description, grid.shape[1] * micro, grid.shape[0] * micro, seed=4)
            coords = plan.inputs(plan.tiles())["micro_coords"]
            np.testing.assert_array_equal(coords, grid.reshape(-1, grid.shape[-1]), err_msg=f"{preset} {steps}")
            np.testing.assert_array_equal(plan.inputs(plan.tiles()[:2])["z"], np.repeat(model.latents(4, 1), 2, 0))


def test_bands_are_handed_to_the_writer_while_later_tiles_are_still_requested(exported, local):
    class Counting:
        name, calls = "counting", 0

        def predict(self, signature, inputs):
            Counting.calls += 1
            return local.predict(signature, inputs)

        def metadata(self):
            return local.metadata()

    tile_height, tile_width = exported.description["tiling"]["tile_size"]
    plan = TilePlan(exported.description, 4 * tile_width, 3 * tile_height)
    bands = render_bands(Counting(), plan, batch_size=1, max_in_flight=2, progress=False)
    calls_at_band = [Counting.calls for _ in bands]
    assert len(calls_at_band) == plan.rows
    assert calls_at_band[0] <= plan.cols + 2 < plan.num_tiles  # the first band left before the last request
    assert Counting.calls == plan.num_tiles


def test_client_writes_tiff_and_refuses_sizes_png_cannot_hold(exported, local, tmp_path):
    import tifffile

    client_main(["--width", "24", "--height", "16", "--seed", "2", "--quiet", "--out", str(tmp_path / "x.tif"),
                 "--saved-model", str(exported.serving_dir)])
    plan = TilePlan(exported.description, 24, 16, seed=2)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "x.tif"), to_uint8(render(local, plan, progress=False)))
    with pytest.raises(UserError, match="tiff"):
        parse_args(["--width", "40000", "--height", "8", "--saved-model", str(exported.serving_dir),
                    "--out", str(tmp_path / "big.png")])


def test_retry_policy_backs_off_exponentially(monkeypatch):
    import export.backends as backends

    delays = []
    monkeypatch.setattr(backends.time, "sleep", delays.append)
    calls = iter([TransientError("busy")] * 4 + ["done"])

    def flaky():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0)
    assert policy.call(flaky) == "done"
    assert delays == [0.5, 1.0, 2.0, 3.0] and policy.retries == 4


@pytest.mark.parametrize("argv, message", [
    (["--width", "0", "--height", "8", "--saved-model", "."], "--width"),
    (["--width", "8", "--height", "2000000", "--saved-model", "."], "--height"),
    (["--width", "8", "--height", "8", "--saved-model", ".", "--batch", "0"], "--batch"),
    (["--width", "8", "--height", "8", "--saved-model", ".", "--max-in-flight", "0"], "--max-in-flight"),
    (["--width", "8", "--height", "8", "--saved-model", ".", "--seed", "-1"], "--seed"),
    (["--width", "8", "--height", "8", "--grpc", "localhost:8500"], "needs --model-name"),
    (["--width", "8", "--height", "8", "--grpc", "localhost", "--model-name", "m"], "HOST:PORT"),
    (["--width", "8", "--height", "8", "--rest", "localhost:8501", "--model-name", "m"], "URL"),
    (["--width", "8", "--height", "8", "--rest", "http://h:1", "--model-name", "a/b"], "valid model name"),
    (["--width", "8", "--height", "8", "--saved-model", "no/such/dir"], "not a folder"),
    (["--width", "8", "--height", "8", "--tflite", "no.tflite"], "does not exist"),
    (["--width", "8", "--height", "8", "--saved-model", ".", "--grpc", "h:1"], "not allowed with"),
    (["--width", "8", "--height", "8"], "one of the arguments"),
    (["--width", "8", "--height", "8", "--saved-model", ".", "--out", "x.jpg"], "must end in .png"),
])
def test_client_validates_its_arguments(argv, message, tmp_path):
    with pytest.raises(UserError, match=message):
        parse_args(argv if "--out" in argv else [*argv, "--out", str(tmp_path / "x.png")])


def test_client_cli_reports_errors_in_one_line(tmp_path):
    done = run_module("export.client", "--width", "8", "--height", "8", "--out", tmp_path / "x.png",
                      "--grpc", "localhost:8500")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --grpc needs --model-name")


def test_overlapping_tiles_contribute_a_partition_of_the_canvas():
    description = {"format": "tfcoord-serving/1", "model_type": "test", "tiling": {
        "signature": "generate_patch", "tile_size": [8, 8], "stride": [6, 5], "native_tiles": [1, 1],
        "anchor": ["start", "start"], "inputs": {}}}
    centred = {**description, "tiling": {**description["tiling"], "crop": "center"}}
    for width, height in [(20, 15), (8, 8), (5, 3), (31, 14)]:
        plan = TilePlan(description, width, height)
        covered = np.zeros((height, width), int)
        for tile in plan.tiles():
            assert tile.top == tile.row * 6 and tile.left == tile.col * 5  # each tile starts on the stride grid
            assert 0 < tile.height <= 8 and 0 < tile.width <= 8  # and contributes pixels it generated
            covered[tile.top:tile.top + tile.height, tile.left:tile.left + tile.width] += 1
        np.testing.assert_array_equal(covered, 1)
        # Centre crop: the same tiles cover the next reachable size (8 + 6 (rows - 1)), the image is its middle.
        plan = TilePlan(centred, width, height)
        assert (plan.crop_top, plan.crop_left) == ((8 + 6 * (plan.rows - 1) - height) // 2,
                                                   (8 + 5 * (plan.cols - 1) - width) // 2)
        covered = np.zeros((height, width), int)
        for tile in plan.tiles():
            assert tile.top + plan.crop_top == tile.row * 6 + tile.crop_top  # the same pixel of the covered canvas
            assert tile.left + plan.crop_left == tile.col * 5 + tile.crop_left
            assert 0 < tile.height and tile.crop_top + tile.height <= 8 and 0 < tile.width
            assert tile.crop_left + tile.width <= 8
            covered[tile.top:tile.top + tile.height, tile.left:tile.left + tile.width] += 1
        np.testing.assert_array_equal(covered, 1)


def test_a_description_the_client_cannot_build_is_refused_clearly():
    tiling = {"signature": "generate_patch", "tile_size": [8, 8], "native_tiles": [1, 1], "anchor": ["start"] * 2}
    old_field = {"source": "canvas_field", "distribution": "normal", "channels": 1, "window": 8, "stride": 6}
    old_coords = {"source": "tile_coordinates", "system": "infinitygan", "window": 8, "stride": 6}
    for inputs, message in [({"noise": {"source": "hologram"}}, "source 'hologram'.*update tfcoord"),
                            ({"c": {"source": "tile_coordinates", "system": "moebius"}}, "'moebius', unknown"),
                            ({"noise": old_field}, "'noise'.*lacks 'seed_path', 'field_tile'.*re-export"),
                            ({"c": old_coords}, "'c'.*lacks 'coordinate_system'.*re-export")]:
        with pytest.raises(UserError, match=message):
            TilePlan({"format": "tfcoord-serving/1", "tiling": {**tiling, "inputs": inputs}}, 8, 8)
    with pytest.raises(UserError, match="re-export"):
        TilePlan({"format": "tfcoord-serving/0"}, 8, 8)
    with pytest.raises(UserError, match="crop 'middle'"):
        TilePlan({"format": "tfcoord-serving/1", "tiling": {**tiling, "crop": "middle", "inputs": {}}}, 8, 8)
    with pytest.raises(UserError, match="cannot render a 360 degree panorama.*leave out --panorama"):
        TilePlan({"format": "tfcoord-serving/1", "model_type": "cips", "tiling": {**tiling, "inputs": {}}}, 8, 8,
                 panorama=True)
