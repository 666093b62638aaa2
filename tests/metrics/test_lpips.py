"""LPIPS v0.1, VGG16 trunk (Zhang et al. 2018; tfcoord.metrics.lpips): equals a NumPy transcription of the
paper's definition on made-up weights, reads torchvision's .pth (legacy and zip) and Keras's .h5 into one
network, is a distance (0 for identical images, symmetric), and names what is wrong with a weight folder."""

import dataclasses
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the .pth writer

from torch_pickle_writer import write_legacy, write_zip  # noqa: E402

from tfcoord.errors import UserError  # noqa: E402
from tfcoord.metrics import lpips as lpips_module  # noqa: E402
from tfcoord.metrics.lpips import Lpips, load_weights  # noqa: E402

# A VGG16 with few channels: same 13 convolutions, pools and taps, fast on CPU.
SMALL_CHANNELS = (4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8)
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
KERAS_CONVS = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
               "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
               "block5_conv3"]
TAPS = (1, 3, 6, 9, 12)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


def made_up_vgg(seed=0, channels=SMALL_CHANNELS):
    """torch-layout (out, in, 3, 3) kernels, biases and the five (1, C, 1, 1) linear weights (>= 0)."""
    rng = np.random.default_rng(seed)
    kernels, biases, previous = [], [], 3
    for out in channels:
        kernels.append((rng.standard_normal((out, previous, 3, 3)) * np.sqrt(2.0 / (9 * previous))).astype("f4"))
        biases.append((0.1 * rng.standard_normal(out)).astype("f4"))
        previous = out
    linear = [rng.uniform(0.0, 1.0, (1, channels[t], 1, 1)).astype("f4") for t in TAPS]
    return kernels, biases, linear


def torchvision_state(kernels, biases):
    state = {}
    for index, kernel, bias in zip(TORCHVISION_CONVS, kernels, biases):
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = kernel, bias
    state["classifier.0.bias"] = np.zeros(5, "f4")  # the rest of the file is ignored
    return state


def linear_state(linear):
    return {f"lin{i}.model.1.weight": w for i, w in enumerate(linear)}


def write_keras_h5(path, kernels, biases, bgr=True):
    """Keras's layout: one group per layer, ``weight_names`` attribute, (kh, kw, in, out) kernels; the first
    kernel reads Caffe's BGR input (so the RGB torch kernel's input channels are reversed)."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [b"input_1"] + [n.encode() for n in KERAS_CONVS]
        file.create_group("input_1").attrs["weight_names"] = []
        for i, (name, kernel, bias) in enumerate(zip(KERAS_CONVS, kernels, biases)):
            keras_kernel = kernel.transpose(2, 3, 1, 0)
            if i == 0 and bgr:
                keras_kernel = keras_kernel[:, :, ::-1]
            group = file.create_group(name)
            group.attrs["weight_names"] = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
            group[f"{name}_W_1:0"], group[f"{name}_b_1:0"] = keras_kernel, bias


@pytest.fixture(scope="module")
def weights_dirs(tmp_path_factory):
    """Three folders with the same made-up network: torchvision .pth (legacy format, as the real file),
    torchvision .pth (zip format), Keras .h5; each with the LPIPS vgg.pth."""
    kernels, biases, linear = made_up_vgg()
    root = tmp_path_factory.mktemp("lpips")
    dirs = {name: root / name for name in ("legacy", "zip", "keras")}
    for folder in dirs.values():
        folder.mkdir()
        write_legacy(folder / "vgg.pth", linear_state(linear))
    write_legacy(dirs["legacy"] / "vgg16-397923af.pth", torchvision_state(kernels, biases))
    write_zip(dirs["zip"] / "vgg16-397923af.pth", torchvision_state(kernels, biases))
    write_keras_h5(dirs["keras"] / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", kernels, biases)
    return dirs, (kernels, biases, linear)


# -- NumPy transcription of LPIPS v0.1 (lpips/lpips.py, pretrained_networks.vgg16), NCHW like the paper's code
def _conv3x3(x, kernel, bias):  # x (N, C, H, W); kernel torch (out, in, 3, 3); zero padding 1; cross-correlation
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    height, width = x.shape[2:]
    out = np.zeros((x.shape[0], kernel.shape[0], height, width))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nchw,oc->nohw", padded[:, :, dy:dy + height, dx:dx + width], kernel[:, :, dy, dx])
    return out + bias[None, :, None, None]


def _max_pool(x):  # 2x2, stride 2, floor
    n, c, h, w = x.shape
    x = x[:, :, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def reference_lpips(image0, image1, kernels, biases, linear, caffe=False):
    """LPIPS of two (H, W, 3) images in [-1, 1]; ``caffe``: the Keras/Caffe VGG16 (BGR kernels, 0..255
    input minus the BGR mean) instead of torchvision's with the ScalingLayer."""
    def trunk_input(image):
        x = image.astype(np.float64).transpose(2, 0, 1)[None]
        if caffe:
            bgr = (x[:, ::-1] + 1.0) * 127.5
            return bgr - np.array([103.939, 116.779, 123.68])[None, :, None, None]
        shift = np.array([-.030, -.088, -.188])[None, :, None, None]
        scale = np.array([.458, .448, .450])[None, :, None, None]
        return (x - shift) / scale

    if caffe:  # the kernel as the .h5 holds it: input channels in BGR order
        kernels = [kernels[0][:, ::-1]] + list(kernels[1:])

    def features(image):
        x, taps = trunk_input(image), []
        for i, (kernel, bias) in enumerate(zip(kernels, biases)):
            if i in (2, 4, 7, 10):
                x = _max_pool(x)
            x = np.maximum(_conv3x3(x, kernel.astype(np.float64), bias), 0.0)
            if i in TAPS:
                taps.append(x)
        return taps

    total = 0.0
    for f0, f1, weight in zip(features(image0), features(image1), linear):
        n0 = f0 / (np.sqrt((f0 ** 2).sum(axis=1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1 ** 2).sum(axis=1, keepdims=True)) + 1e-10)
        total += (((n0 - n1) ** 2) * weight.reshape(1, -1, 1, 1)).sum(axis=1).mean()
    return total


def image_pair(seed=1, size=(32, 40)):
    rng = np.random.default_rng(seed)
    a = np.clip(rng.normal(0.0, 0.5, (*size, 3)), -1, 1).astype("f4")
    b = np.clip(a + rng.normal(0.0, 0.3, a.shape), -1, 1).astype("f4")
    return a, b


# -- the distance ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", ["legacy", "zip"])
def test_torchvision_weights_give_the_paper_lpips(weights_dirs, folder):
    dirs, (kernels, biases, linear) = weights_dirs
    lpips = Lpips(load_weights(dirs[folder]))
    assert lpips.weights.preprocessing == "lpips"
    for seed, size in ((1, (32, 40)), (2, (16, 16)), (3, (37, 23))):  # odd sizes: floor pooling
        a, b = image_pair(seed, size)
        expected = reference_lpips(a, b, kernels, biases, linear)
        assert expected > 1e-3
        np.testing.assert_allclose(lpips.distance(a, b), expected, rtol=1e-4)


def test_keras_weights_give_the_caffe_trunk(weights_dirs):
    dirs, (kernels, biases, linear) = weights_dirs
    lpips = Lpips(load_weights(dirs["keras"]))
    assert lpips.weights.preprocessing == "caffe"
    a, b = image_pair()
    expected = reference_lpips(a, b, kernels, biases, linear, caffe=True)
    np.testing.assert_allclose(lpips.distance(a, b), expected, rtol=1e-4)


def test_torchvision_and_keras_files_load_into_the_same_network(weights_dirs):
    dirs, _ = weights_dirs
    torch_weights, keras_weights = load_weights(dirs["legacy"]), load_weights(dirs["keras"])
    for ours, theirs in zip(torch_weights.kernels + torch_weights.biases + torch_weights.linear,
                            keras_weights.kernels + keras_weights.biases + keras_weights.linear):
        np.testing.assert_array_equal(ours, theirs)
    # The networks differ only in the input each trunk was trained on: with one preprocessing, one LPIPS.
    a, b = image_pair()
    same_input = dataclasses.replace(keras_weights, preprocessing="lpips")
    np.testing.assert_allclose(Lpips(same_input).distance(a, b), Lpips(torch_weights).distance(a, b), rtol=1e-6)


def test_lpips_is_zero_for_identical_images_and_symmetric(weights_dirs):
    lpips = Lpips(load_weights(weights_dirs[0]["zip"]))
    a, b = image_pair(4)
    batch_a, batch_b = np.stack([a, b, a]), np.stack([b, a, a])
    distances = lpips.distance(batch_a, batch_b)
    assert distances.shape == (3,)
    assert distances[2] == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(distances[0], distances[1], rtol=1e-6)
    assert distances[0] > 1e-3


def test_lpips_gradient_is_finite_where_features_vanish(weights_dirs):
    import tensorflow as tf

    weights = load_weights(weights_dirs[0]["zip"])
    dead_last_layer = weights.biases[:-1] + (np.full_like(weights.biases[-1], -1e3),)  # relu5_3 all 0
    lpips = Lpips(dataclasses.replace(weights, biases=dead_last_layer))
    image = tf.Variable(image_pair(5, (16, 16))[0][None])
    with tf.GradientTape() as tape:
        distance = lpips(image, tf.zeros((1, 16, 16, 3)))
    gradient = tape.gradient(distance, image).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


def test_images_below_16_pixels_are_refused(weights_dirs):
    lpips = Lpips(load_weights(weights_dirs[0]["zip"]))
    with pytest.raises(UserError, match="at least 16 x 16"):
        lpips.distance(np.zeros((15, 32, 3), "f4"), np.zeros((15, 32, 3), "f4"))


# -- loading errors name the file and the tensor ----------------------------------------------------------------
def _folder(tmp_path, state=None, linear=None, keras=False):
    kernels, biases, lin = made_up_vgg()
    if keras:
        write_keras_h5(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", kernels, biases)
    elif state is not False:
        write_zip(tmp_path / "vgg16-397923af.pth", state if state is not None else torchvision_state(kernels, biases))
    if linear is not False:
        write_zip(tmp_path / "vgg.pth", linear if linear is not None else linear_state(lin))
    return tmp_path


def _bad(tmp_path, name, **options):
    (tmp_path / name).mkdir()
    return _folder(tmp_path / name, **options)


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_weights(tmp_path / "nowhere")
    with pytest.raises(UserError, match="vgg16-397923af.pth or vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        load_weights(_bad(tmp_path, "no_trunk", state=False))
    with pytest.raises(UserError, match=r"has no vgg\.pth"):
        load_weights(_bad(tmp_path, "no_linear", linear=False))


def test_bad_tensors_are_named(tmp_path):
    kernels, biases, linear = made_up_vgg()
    state = torchvision_state(kernels, biases)
    del state["features.28.weight"]
    with pytest.raises(UserError, match=r"no tensor features\.28\.weight"):
        load_weights(_bad(tmp_path, "missing", state=state))

    state = torchvision_state(kernels, biases)
    state["features.5.weight"] = state["features.5.weight"][:, :3]  # in-channels do not chain
    with pytest.raises(UserError, match=r"block2_conv1 \(torchvision features\.5\) kernel has shape"):
        load_weights(_bad(tmp_path, "chain", state=state))

    state = torchvision_state(kernels, biases)
    state["features.0.bias"] = np.zeros(7, "f4")
    with pytest.raises(UserError, match=r"block1_conv1 .* bias has shape \(7,\)"):
        load_weights(_bad(tmp_path, "bias", state=state))

    lin = linear_state(linear)
    del lin["lin3.model.1.weight"]
    with pytest.raises(UserError, match=r"vgg\.pth has no tensor lin3\.model\.1\.weight"):
        load_weights(_bad(tmp_path, "nolin", linear=lin))

    lin = linear_state(linear)
    lin["lin1.model.1.weight"] = np.ones((1, 5, 1, 1), "f4")
    with pytest.raises(UserError, match=r"lin1\.model\.1\.weight has shape \(1, 5, 1, 1\), expected \(1, 6, 1, 1\)"):
        load_weights(_bad(tmp_path, "linshape", linear=lin))

    lin = linear_state(linear)
    lin["lin2.model.1.weight"] = np.ones((1, 8, 1, 1), "int64")
    with pytest.raises(UserError, match=r"lin2\.model\.1\.weight is not a floating-point tensor"):
        load_weights(_bad(tmp_path, "lintype", linear=lin))

    lin = linear_state(linear)
    lin["lin0.model.1.weight"] = -lin["lin0.model.1.weight"]
    with pytest.raises(UserError, match=r"lin0\.model\.1\.weight holds negative"):
        load_weights(_bad(tmp_path, "linsign", linear=lin))


def test_bad_keras_files_are_named(tmp_path):
    folder = _bad(tmp_path, "keras", keras=True)
    path = folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "a") as file:
        del file["block4_conv2"]
    with pytest.raises(UserError, match="has no layer block4_conv2"):
        load_weights(folder)
    path.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        load_weights(folder)


def test_truncated_pth_is_refused(tmp_path):
    folder = _bad(tmp_path, "cut", state=False)
    write_legacy(folder / "vgg16-397923af.pth", torchvision_state(*made_up_vgg()[:2]))
    path = folder / "vgg16-397923af.pth"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_weights(folder)


def test_the_paper_network_shapes_are_accepted():
    """The real VGG16's channels (64 ... 512) chain and give the LPIPS layer widths of vgg.pth."""
    kernels = [np.zeros((3, 3, i, o), "f4") for i, o in zip((3,) + lpips_module.VGG16_CHANNELS[:-1],
                                                            lpips_module.VGG16_CHANNELS)]
    lpips_module.check_trunk(kernels, [np.zeros(k.shape[3], "f4") for k in kernels], "vgg16")
    assert lpips_module.layer_channels(kernels) == [64, 128, 256, 512, 512]
