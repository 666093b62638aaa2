"""Every network of every model saves to a ``.keras`` file and loads back drawing exactly the same images."""

import json

import keras
import numpy as np
import pytest

from tfcoord.config import load_config
from tfcoord.models import model_class, section_classes

def as_json(config):
    """A config as its .keras file stores it (tuples become lists)."""
    return json.loads(json.dumps(config, default=str))


PRESETS = [("cocogan", "tiny", ["model.ngf=8", "model.ndf=8"]), ("cips", "tiny", []), ("infinitygan", "tiny", []),
           ("gawwn", "tiny", []), ("gawwn", "tiny_keypoints", [])]


@pytest.mark.parametrize("model_type, preset, overrides", PRESETS, ids=[f"{m}-{p}" for m, p, _ in PRESETS])
def test_networks_round_trip_through_keras_files(tmp_path, model_type, preset, overrides):
    config = load_config(model_type, section_classes(model_type), preset=preset, overrides=overrides)
    model = model_class(model_type)(config)
    model.build_networks()
    networks = model.network_items()
    generators = [name for name in networks if "generator" in name or "completer" in name]
    assert generators, list(networks)
    for net in networks.values():  # distinct weights everywhere, so a swapped or dropped weight shows
        net.set_weights([w + np.random.default_rng(7).normal(0, 0.01, w.shape).astype(w.dtype)
                         if w.dtype.kind == "f" else w for w in net.get_weights()])
    before = np.asarray(model.sample_images(5, 3))

    for name, net in networks.items():
        path = tmp_path / f"{name}.keras"
        keras.saving.save_model(net, path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(net) and as_json(loaded.get_config()) == as_json(net.get_config()), name
        assert [w.path for w in loaded.weights] == [w.path for w in net.weights], name
        for ours, theirs in zip(net.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(ours, theirs, err_msg=name)
        setattr(model, name, loaded)  # the model now draws with the loaded networks
    after = np.asarray(model.sample_images(5, 3))
    np.testing.assert_array_equal(after, before)
