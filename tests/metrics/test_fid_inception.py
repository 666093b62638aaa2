"""pytorch-fid's FID Inception network in Keras: the network papers' FIDs come from, loaded from its .pth without torch.

The official fixture (``fid_inception_formula``) holds pool3 features computed by pytorch-fid's
own code with every weight replaced by a formula of the tensor's name and shape; the test
rebuilds that state dict under pytorch-fid's names and loads it as a user's file is loaded.
"""

import io
import json
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tfcoord import torch_pickle
from tfcoord.errors import UserError
from tfcoord.metrics import fid, fid_inception, get_metric, stats_cache
from tfcoord.metrics.evaluation import Evaluation, featurize
from tfcoord.metrics.inception import (FEATURE_EXTRACTOR_ENV, InceptionV3Features, feature_network,
                                       is_pytorch_fid_weights, load_extractor)

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "official" / "fid_inception_formula"
needs_fixture = pytest.mark.skipif(not FIXTURE.with_suffix(".npz").is_file(), reason="official fixture missing")


def formula_tensor(name: str, shape) -> np.ndarray:
    """The fixture's weight formula (fid_inception_formula.json, "weight_formula")."""
    shape = tuple(shape)
    base = np.sin(np.arange(int(np.prod(shape)), dtype=np.float64) * 0.7
                  + (zlib.crc32(name.encode()) % 1000) * 0.001).reshape(shape)
    if len(shape) == 4:
        value = base * np.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
    elif name.endswith("num_batches_tracked"):
        value = np.zeros(shape)
    elif name == "fc.weight":
        value = base / np.sqrt(2048.0)
    elif name.endswith(("running_mean", "bn.bias", "fc.bias")):
        value = 0.1 * base
    elif name.endswith("running_var"):
        value = 0.75 + 0.25 * base
    elif name.endswith("bn.weight"):
        value = 1.0 + 0.1 * base
    else:
        raise ValueError(f"no formula for {name}")
    return value.astype(np.float32)


def formula_state() -> dict:
    names = json.loads(FIXTURE.with_suffix(".json").read_text())["state_dict_names"]
    return {name: formula_tensor(name, shape) for name, shape in names.items()}


def write_torch_zip(path, state: dict) -> None:
    """A ``torch.save`` zip file of a state dict, written opcode by opcode (no torch here).

    ``archive/data.pkl`` is a protocol-2 pickle of an OrderedDict whose values are
    ``torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())``; each
    storage is a persistent id ``("storage", torch.FloatStorage, key, "cpu", numel)`` whose bytes
    are ``archive/data/<key>``.
    """
    pickle_bytes = io.BytesIO()
    put = pickle_bytes.write

    def global_(module, name):
        put(b"c" + f"{module}\n{name}\n".encode())

    def text(value):
        data = value.encode()
        put(b"X" + struct.pack("<I", len(data)) + data)

    def integers(values):
        put(b"(")
        for value in values:
            put(b"J" + struct.pack("<i", value))
        put(b"t")

    put(b"\x80\x02")
    global_("collections", "OrderedDict")
    put(b")R(")
    storages = {}
    for key, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array)
        storage_type = {np.float32: "FloatStorage", np.int64: "LongStorage"}[array.dtype.type]
        storages[str(key)] = array.astype(array.dtype.newbyteorder("<")).tobytes()
        text(name)
        global_("torch._utils", "_rebuild_tensor_v2")
        put(b"((")
        text("storage")
        global_("torch", storage_type)
        text(str(key))
        text("cpu")
        put(b"J" + struct.pack("<i", max(array.size, 1)) + b"tQ")
        put(b"J" + struct.pack("<i", 0))
        integers(array.shape)
        integers([s // array.itemsize for s in array.strides])
        put(b"\x89")
        global_("collections", "OrderedDict")
        put(b")Rt")  # args tuple
        put(b"R")  # rebuild the tensor
    put(b"u.")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, payload in storages.items():
            archive.writestr(f"archive/data/{key}", payload)
        archive.writestr("archive/version", "3\n")


@pytest.fixture(scope="module")
def state():
    if not FIXTURE.with_suffix(".json").is_file():
        pytest.skip("official fixture missing")
    return formula_state()


@pytest.fixture(scope="module")
def extractor(state):
    """The network with the formula weights, through the path a user's file takes after it is read."""
    return fid_inception.FIDInceptionFeatures(state, fingerprint="formula", source="formula state")


def onednn_convolutions() -> bool:
    """Whether TensorFlow runs its CPU kernels through oneDNN (its default on x86; off with TF_ENABLE_ONEDNN_OPTS=0)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


@needs_fixture
def test_pool3_features_equal_pytorch_fids_on_the_formula_weights(extractor):
    """Every feature of both pairs (64x64 and 80x120, upsampled to 299) within the fixture's 1e-4 of the largest.

    The formula weights make the network ill-conditioned (activations reach ~590 in Mixed_6d and
    cancel to ~10 at pool3), so float32 details that round differently show. Max |error| / max
    |pool3|, pair 0 / pair 1, measured with pytorch-fid 0.3.0 on an H200 (bench/results/fidcheck):
    torch CPU float32 6.4e-5 / 5.8e-5, CUDA float32 6.8e-5 / 2.6e-5, CUDA TF32 1.8e-2 / 3.9e-2,
    float64 1.4e-3 / 7.5e-4 (our float64 equals torch's to 3e-12): the fixture is plain float32,
    and its 1e-3 offset from exact is torch's float32 resize positions (_torch_bilinear_taps). Ours:
    8.0e-5 / 3.6e-5 (oneDNN convolutions, 1 or 2 threads); 2.4e-4 / 8.1e-5 with TensorFlow's Eigen
    convolutions, whose float32 sums round differently: 3e-4 there. With Keras' rsqrt BatchNorm
    1.5e-4 / 8.1e-5; with tf.image.resize 3.5e-4. Structural slips are >= 4e-2 (count_include_pad=True
    4e-2/7e-2; BatchNorm eps 1e-5 5e-2/6e-2; Mixed_7c average-pooled 0.33/0.31; align_corners=True 0.72/0.63).
    """
    tolerance = 1e-4 if onednn_convolutions() else 3e-4
    fixture = np.load(FIXTURE.with_suffix(".npz"))
    for pair in (0, 1):
        unit_images = np.transpose(fixture[f"images_{pair}"], (0, 2, 3, 1))  # NCHW -> NHWC
        expected = fixture[f"pool3_{pair}"]
        features = extractor.features_of_unit_images(unit_images)
        assert features.shape == expected.shape == (2, 2048)
        error = np.abs(features - expected) / np.abs(expected).max()
        assert error.max() < tolerance, (pair, error.max())
        assert np.median(error) < 5e-6, (pair, np.median(error))


def torch_bilinear_resize(image, out_h, out_w, float32_positions=False):
    """torch ``F.interpolate(mode="bilinear", align_corners=False)`` by its definition (float64, one image).

    ``float32_positions``: source positions rounded once to float32 as torch's float32 kernels
    round them (``scale = float32(in) / out``; ``scale * (i + 0.5) - 0.5`` fused).
    """
    def taps(in_size, out_size):
        if float32_positions:
            scale = np.float64(np.float32(in_size) / np.float32(out_size))
            source = (scale * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32).astype(np.float64)
        else:
            source = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
        source = np.maximum(source, 0.0)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, in_size - 1), source - low

    top, bottom, row_weight = taps(image.shape[0], out_h)
    left, right, col_weight = taps(image.shape[1], out_w)
    rows = image[top] * (1 - row_weight)[:, None, None] + image[bottom] * row_weight[:, None, None]
    return rows[:, left] * (1 - col_weight)[None, :, None] + rows[:, right] * col_weight[None, :, None]


def test_resize_samples_like_torch_interpolate_when_enlarging_and_when_shrinking():
    """The fixture only enlarges; generated 512 px images shrink, where antialiasing would differ.

    Within float32 rounding of the values at torch's float32 source positions; the exact positions
    are up to ~1e-5 of a pixel away (and tf.image.resize's, rounded twice, as far), which the
    network magnifies to 5e-4 of pool3 on the official fixture.
    """
    rng = np.random.default_rng(0)
    for height, width in ((64, 80), (80, 120), (512, 384), (300, 700)):
        images = rng.uniform(0, 1, (1, height, width, 3)).astype(np.float32)
        resized = np.asarray(fid_inception.resize_like_pytorch_fid(images))[0]
        image = images[0].astype(np.float64)
        np.testing.assert_allclose(resized, torch_bilinear_resize(image, 299, 299, float32_positions=True),
                                   atol=5e-7, rtol=0, err_msg=f"{height}x{width}")
        np.testing.assert_allclose(resized, torch_bilinear_resize(image, 299, 299), atol=1e-4, rtol=0,
                                   err_msg=f"{height}x{width}")


def test_tfcoord_images_reach_the_network_as_pytorch_fid_reads_saved_8_bit_images():
    levels = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    tfcoord_images = levels / 127.5 - 1.0 + np.float32(0.003)  # [-1, 1], off the 8-bit grid by < half a level
    np.testing.assert_array_equal(fid_inception.unit_range_images(tfcoord_images), levels / 255.0)
    np.testing.assert_array_equal(fid_inception.unit_range_images([[[[-3.0, 2.0, 0.0]]]]),
                                  np.float32([[[[0.0, 1.0, 128 / 255]]]]))


def test_a_pth_file_is_read_without_torch_and_recognised_by_name_or_content(state, extractor, tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv(FEATURE_EXTRACTOR_ENV, raising=False)
    path = tmp_path / fid_inception.FID_WEIGHTS_FILE
    write_torch_zip(path, {**state, "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(0, np.int64)})
    read = torch_pickle.load(path)
    assert list(read) == list(state) and all(np.array_equal(read[k], state[k]) for k in state if "num_batches" not in k)
    renamed = tmp_path / "fid_weights.bin"  # no telling suffix: the zip content decides
    os.symlink(path, renamed)
    assert is_pytorch_fid_weights(path) and is_pytorch_fid_weights(renamed)
    started = time.perf_counter()
    loaded = load_extractor(renamed)
    assert isinstance(loaded, fid_inception.FIDInceptionFeatures), type(loaded)
    print(f"read, hashed and loaded the 95 MB file in {time.perf_counter() - started:.1f} s")
    for (name, ours), (_, theirs) in zip(fid_inception.basic_convs(loaded.network),
                                         fid_inception.basic_convs(extractor.network)):
        for mine, reference in zip(ours.weights, theirs.weights):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(reference), err_msg=name)
    assert feature_network(loaded) == "pytorch-fid" and loaded.fingerprint.startswith("pytorch-fid-inception")
    small = tmp_path / "two_tensors.pth"
    write_torch_zip(small, {name: state[name] for name in list(state)[:2]})
    with pytest.raises(UserError, match=r"two_tensors\.pth is not pytorch-fid's .*missing 468: Conv2d_1a_3x3\.bn\.bias"):
        load_extractor(small)


def test_missing_misnamed_and_misshaped_tensors_are_named_and_nothing_is_assigned(state, extractor):
    network = extractor.network
    kernel = network.stages[0].conv.kernel
    before = np.asarray(kernel).copy()
    broken = {name: value for name, value in state.items() if name != "Mixed_6e.branch7x7dbl_3.conv.weight"}
    broken["Mixed_7c.branch_pool.conv.weights"] = broken.pop("Mixed_7c.branch_pool.conv.weight")
    with pytest.raises(UserError) as error:
        fid_inception.load_state_dict(network, broken, "broken.pth")
    message = str(error.value)
    assert "missing 2: Mixed_6e.branch7x7dbl_3.conv.weight, Mixed_7c.branch_pool.conv.weight" in message
    assert "unexpected 1: Mixed_7c.branch_pool.conv.weights" in message and fid_inception.FID_WEIGHTS_URL in message
    misshaped = {**state, "Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 3, 3), np.float32),  # fits, comes first
                 "Mixed_5b.branch_pool.conv.weight": np.zeros((64, 192, 1, 1), np.float32)}
    with pytest.raises(UserError, match=r"Mixed_5b\.branch_pool\.conv\.weight has shape \(64, 192, 1, 1\), "
                                        r"the FID Inception network needs \(32, 192, 1, 1\)"):
        fid_inception.load_state_dict(network, misshaped, "misshaped.pth")
    torchvision_imagenet = {**state, "AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1), np.float32)}
    with pytest.raises(UserError, match="unexpected 1: AuxLogits.conv0.conv.weight"):
        fid_inception.load_state_dict(network, torchvision_imagenet, "inception_v3_google.pth")
    np.testing.assert_array_equal(np.asarray(kernel), before)  # a refused file changes nothing


def smooth_images(seed, count, size=24):
    """Blurry colour fields in [-1, 1]: images the network responds to, not white noise."""
    coarse = np.random.default_rng(seed).uniform(-1, 1, (count, 4, 4, 3))
    return np.kron(coarse, np.ones((1, size // 4, size // 4, 1))).astype(np.float32)


def test_fid_of_a_set_against_itself_is_zero_and_against_a_shifted_set_positive(extractor):
    images = smooth_images(0, 4)
    # batches of 2 throughout: one traced graph for every call of this module's extractor
    as_drawn = featurize([images[:2], images[2:]], extractor, 4, False, "set", progress=False)
    reordered = featurize([images[[3, 0]], images[[2, 1]]], extractor, 4, False, "set again", progress=False)
    shifted_images = np.clip(images * 0.6 + 0.35, -1, 1)
    shifted = featurize([shifted_images[:2], shifted_images[2:]], extractor, 4, False, "shifted", progress=False)
    self_fid = fid.compute(as_drawn, reordered)["fid"]
    shifted_fid = fid.compute(as_drawn, shifted)["fid"]
    assert shifted_fid > 1.0 and self_fid < 1e-6 * shifted_fid, (self_fid, shifted_fid)


def test_the_two_networks_never_share_a_record_name_or_a_cache_entry(extractor):
    assert (feature_network(extractor), InceptionV3Features.network_name) == ("pytorch-fid", "keras-imagenet")
    keras_fingerprint = "keras-inception-v3-notop-avgpool:0123456789abcdef0123"  # InceptionV3Features' form
    fid_fingerprint = fid_inception.FIDInceptionFeatures.fingerprint_of_sha256("0123456789abcdef0123" * 3)
    assert extractor.name != InceptionV3Features.name
    keys = {stats_cache.cache_key(stats_cache.describe(extractor_fingerprint=fingerprint, spec="synthetic-landscapes",
                                                       image_size=(32, 32), count=10, view={}))
            for fingerprint in (keras_fingerprint, fid_fingerprint)}
    assert len(keys) == 2


class SmoothFieldGenerator:
    name = "smooth-fields"

    def image_size(self):
        return (24, 24)

    def sample_images(self, seed, num):
        return smooth_images(seed, num)


def test_an_evaluation_record_names_the_pytorch_fid_network(extractor, tmp_path, monkeypatch):
    monkeypatch.setenv(stats_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    evaluation = Evaluation(get_metric("fid"), SmoothFieldGenerator(), "synthetic-landscapes", num_real=2, batch=2,
                            extractor=extractor, progress=False)
    record = evaluation.run(2, seed=0)
    assert record["feature_network"] == "pytorch-fid" and record["features"] == "formula" and record["fid"] > 0
    cached = json.loads(next((tmp_path / "cache" / "stats").glob("*.json")).read_text())
    assert cached["extractor"] == "formula"  # the cache key holds the extractor's fingerprint
