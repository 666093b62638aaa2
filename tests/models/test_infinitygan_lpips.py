"""InfinityGAN's inversion with the paper's LPIPS term (Lin et al. 2022 §4.4; official losses_weights lpips_dist 10):
inverting with LPIPS reconstructs with a lower LPIPS than inverting on pixels only; outpainting and inbetweening
pass it on; the CLI's --lpips-weights loads it, and without it the CLI says once that it matches pixels only."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: conftest, the .pth writer, made-up VGG

from conftest import make_run  # noqa: E402
from metrics.test_lpips import linear_state, made_up_vgg, torchvision_state  # noqa: E402
from torch_pickle_writer import write_zip  # noqa: E402

from tfcoord import cli  # noqa: E402
from tfcoord import generate as generate_cli  # noqa: E402
from tfcoord.config import load_config  # noqa: E402
from tfcoord.errors import UserError  # noqa: E402
from tfcoord.metrics.lpips import Lpips, load_weights  # noqa: E402
from tfcoord.models import section_classes  # noqa: E402
from tfcoord.models.infinitygan.infinite import generate_canvas  # noqa: E402
from tfcoord.models.infinitygan.model import InfinityGan  # noqa: E402

SMALL = ["model.ts_channels=[16,16,8]", "model.global_latent_dim=16", "model.local_latent_dim=8", "model.n_mlp=2"]


@pytest.fixture(scope="module")
def model():
    config = load_config("infinitygan", section_classes("infinitygan"), preset="tiny", overrides=SMALL)
    keras.utils.set_random_seed(0)
    model = InfinityGan(config)
    model.build_networks()
    for weight in model.generator_ema.weights:  # non-zero noise strengths and biases, as in test_infinitygan
        if weight.path.endswith(("strength", "activation_bias")):
            weight.assign(np.random.default_rng(len(weight.path)).normal(0, 0.3, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def lpips_dir(tmp_path_factory):
    """A made-up VGG16 (few channels) and LPIPS layers, as the files --lpips-weights expects."""
    kernels, biases, linear = made_up_vgg()
    folder = tmp_path_factory.mktemp("lpips_weights")
    write_zip(folder / "vgg16-397923af.pth", torchvision_state(kernels, biases))
    write_zip(folder / "vgg.pth", linear_state(linear))
    return folder


@pytest.fixture(scope="module")
def lpips(lpips_dir):
    return Lpips(load_weights(lpips_dir))


@pytest.fixture(scope="module")
def target(model):
    return np.clip(generate_canvas(model, 40, 48, seed=11), -1.0, 1.0)


def test_inverting_with_lpips_lowers_the_lpips_of_the_reconstruction(model, target, lpips):
    from tfcoord.models.infinitygan.inversion import invert

    pixels_only = invert(model, target, steps=20, lr=0.1, seed=1)
    perceptual = invert(model, target, steps=20, lr=0.1, seed=1, lpips=lpips)
    assert pixels_only.lpips is None
    measured = [float(lpips.distance(r.reconstruction, target)) for r in (pixels_only, perceptual)]
    assert perceptual.lpips == pytest.approx(measured[1], rel=1e-5)
    print(f"LPIPS of the reconstruction: pixels only {measured[0]:.3f}, with LPIPS {measured[1]:.3f}")
    assert measured[1] < 0.6 * measured[0], measured


def test_outpainting_and_inbetweening_pass_lpips_on(model, target, lpips, monkeypatch):
    from tfcoord.models.infinitygan import inversion

    given = []

    def recording_invert(*args, **kwargs):
        given.append(kwargs.get("lpips"))
        raise StopIteration  # the wiring is what is tested; test_infinitygan runs both for real

    monkeypatch.setattr(inversion, "invert", recording_invert)
    with pytest.raises(StopIteration):
        inversion.outpaint(model, target, 100, 160, steps=1, lpips=lpips)
    with pytest.raises(StopIteration):
        inversion.inbetween(model, target, target[:, ::-1], 60, 260, steps=1, lpips=lpips)
    assert given == [lpips, lpips]


def test_images_too_small_for_lpips_are_refused(model, lpips):
    from tfcoord.models.infinitygan.inversion import invert

    with pytest.raises(UserError, match="at least 16 x 16"):
        invert(model, np.zeros((12, 40, 3), "float32"), steps=1, lpips=lpips)


# -- the command line ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_and_image(tmp_path_factory, target):
    from tfcoord.images import save_png

    root = tmp_path_factory.mktemp("infinitygan_run")
    run = make_run(root / "run", model_type="infinitygan", overrides=SMALL, train_steps=0)
    return run, save_png(target, root / "photo.png")


def test_cli_inverts_with_lpips_weights(run_and_image, lpips_dir, tmp_path, capsys):
    run, image = run_and_image
    code = cli.run(generate_cli.main, ["--run", str(run), "--invert", str(image), "--inversion-steps", "2",
                                       "--lpips-weights", str(lpips_dir), "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "pixels + LPIPS" in out and ", LPIPS " in out and "pixels only" not in err
    assert (tmp_path / "inverted_reconstruction.png").is_file()


def test_cli_says_once_that_it_inverts_on_pixels_only(run_and_image, target, tmp_path, capsys):
    from tfcoord.images import save_png

    run, image = run_and_image
    other = save_png(target[:, ::-1], tmp_path / "other.png")
    code = cli.run(generate_cli.main, ["--run", str(run), "--inbetween", str(image), str(other), "--width", "128",
                                       "--height", "60", "--inversion-steps", "1", "--num", "1",
                                       "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.count("pixels only") == 1 and "--lpips-weights" in err  # two inversions, one line
    assert "LPIPS " not in out


@pytest.mark.parametrize("extra,match", [
    (["--lpips-weights", "nowhere"], "does not exist"),
    (["--lpips-weights", "EMPTY"], "holds no VGG16 weights"),
    (["--lpips-weights", "WEIGHTS", "--no-invert"], "applies to --invert, --outpaint and --inbetween only"),
])
def test_cli_refuses_bad_lpips_options(run_and_image, lpips_dir, tmp_path, capsys, extra, match):
    run, image = run_and_image
    (tmp_path / "empty").mkdir()
    extra = [{"EMPTY": str(tmp_path / "empty"), "WEIGHTS": str(lpips_dir)}.get(e, e) for e in extra]
    invert = [] if "--no-invert" in extra else ["--invert", str(image)]
    extra = [e for e in extra if e != "--no-invert"]
    code = cli.run(generate_cli.main, ["--run", str(run), *invert, *extra, "--out", str(tmp_path / "out")])
    assert code == 2
    assert match in capsys.readouterr().err
