"""The pinned extractor: Inception-v3 weights from a file or the Keras cache, never a download or a fallback."""

import sys

import h5py
import numpy as np
import pytest

from tfcoord.errors import UserError
from tfcoord.metrics import inception


@pytest.fixture
def offline_keras_home(tmp_path, monkeypatch):
    """An empty Keras cache and no injected extractor: what a fresh offline machine has."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(inception.FEATURE_EXTRACTOR_ENV, raising=False)
    return tmp_path / "keras"


def test_missing_weights_offline_is_a_user_error_naming_both_fixes(offline_keras_home):
    with pytest.raises(UserError) as error:
        inception.load_extractor(None)
    message = str(error.value)
    assert str(offline_keras_home / "models" / inception.KERAS_WEIGHTS_FILE) in message
    assert "--inception-weights" in message and "nothing is downloaded" in message


def test_a_missing_explicit_file_is_a_user_error(offline_keras_home, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        inception.check_extractor_available(tmp_path / "nope.h5")


def test_a_file_that_is_not_inception_weights_is_refused(offline_keras_home, tmp_path):
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as file:
        file.create_dataset("x", data=np.zeros(3))
    with pytest.raises(UserError, match="is not a Keras Inception-v3 no-top weights file"):
        inception.load_extractor(wrong)


def test_weights_from_the_keras_cache_give_2048_pool_features(offline_keras_home):
    """A weights file in the Keras cache layout (random weights: no download here) loads and is pinned by hash."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    network = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                             input_shape=(299, 299, 3))
    path = offline_keras_home / "models" / inception.KERAS_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, network)  # the format keras.applications ships
    extractor = inception.load_extractor(None)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 40, 56, 3)).astype(np.float32)
    features = extractor(images)
    assert features.shape == (2, 2048) and features.dtype == np.float64 and np.all(np.isfinite(features))
    expected = network(keras.ops.image.resize(inception.quantize(images), (299, 299)), training=False)
    np.testing.assert_allclose(features, np.asarray(expected), rtol=1e-4, atol=1e-5)
    assert extractor.fingerprint.endswith(inception.file_sha256(path)[:20])


def test_the_evaluate_cli_stops_before_any_work_without_weights(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "reliability"))
    from tiny_run import one_error_line, run_module

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model_type: cocogan\n")
    result = run_module("tfcoord.evaluate", "--run", run, "--metric", "fid", "--num", "10",
                        env={"KERAS_HOME": str(tmp_path / "keras"), inception.FEATURE_EXTRACTOR_ENV: ""})
    assert result.returncode == 2
    assert "no Inception-v3 weights" in one_error_line(result)
    assert "tensorflow" not in result.stderr.lower()  # it stopped before TensorFlow was even imported
