"""Official CIPS checkpoint conversion against the official test vectors (../shared/fixtures/official/cips_skip_s8.*).

The fixture's ``.pt`` is read by tfcoord's torch-free reader, so these tests run without
torch; one test also loads it with ``torch.load`` when torch is installed.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import SHARED
from tfcoord import cli, convert as convert_cli, torch_pickle
from tfcoord.config import load_config
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.cips.convert import OFFICIAL_COMPAT, convert, convert_state, generator_weight_map

FIXTURE = SHARED / "fixtures" / "official" / "cips_skip_s8"
META = json.loads(FIXTURE.with_suffix(".json").read_text()) if FIXTURE.with_suffix(".json").is_file() else None
pytestmark = pytest.mark.skipif(META is None, reason="official fixtures not available")


def fixture_overrides():
    kw = META["constructor_kwargs"]
    return [f"model.size={kw['size']}", f"model.hidden_size={kw['hidden_size']}", f"model.n_mlp={kw['n_mlp']}",
            f"model.style_dim={kw['style_dim']}", f"model.lr_mlp={kw['lr_mlp']}",
            f"model.channel_multiplier={kw['channel_multiplier']}", "model.architecture=skip"]


def write_fixture_config(tmp_path):
    path = tmp_path / "cips_s8.yaml"
    lines = ["model:"] + [f"  {o.split('.', 1)[1].replace('=', ': ')}" for o in fixture_overrides()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fixture_config(*extra):
    return load_config("cips", section_classes("cips"), preset="ffhq256",
                       overrides=fixture_overrides() + list(OFFICIAL_COMPAT) + list(extra))


def nhwc(array):
    return np.transpose(array, (0, 2, 3, 1))


def run_official_calls(generator, data):
    """Max abs difference to the recorded official output, per call."""
    diffs = {}
    for call in META["calls"]:
        inputs = call["inputs"]
        coords = tf.constant(nhwc(data[inputs["coords"]]))
        noise = tf.constant(np.concatenate([nhwc(data[key]) for key in inputs["noise"].values()], axis=-1))
        latent = data[inputs["latent"]]
        if call["forward_kwargs"].get("input_is_latent"):
            centre = data[inputs["truncation_latent"]]
            style = centre + call["forward_kwargs"]["truncation"] * (latent - centre)
        else:
            style = generator.map(latent)
        rgb = generator.synthesize(style, coords, noise=noise, training=call["mode"] == "train")
        diffs[call["name"]] = float(np.max(np.abs(np.asarray(rgb) - nhwc(data[call["outputs"]["rgb"]]))))
    return diffs


def test_converted_generator_reproduces_every_recorded_official_call():
    data = np.load(FIXTURE.with_suffix(".npz"))
    model = convert(FIXTURE.with_suffix(".pt"), fixture_config())
    diffs = run_official_calls(model.generator_ema, data)
    assert set(diffs) == {"native", "superres", "subpatch", "extrap_nonsquare", "truncated", "native_trainmode"}
    assert max(diffs.values()) <= 1e-4, diffs
    np.testing.assert_allclose(np.asarray(model.generator_ema.map(data["z"])), data["w"], atol=1e-5)
    # Without the official flag (C1) the native grid is read aligned and the output differs.
    aligned = convert(FIXTURE.with_suffix(".pt"), fixture_config("model.embedding_sampling=aligned"))
    assert run_official_calls(aligned.generator_ema, data)["native"] > 1e-2


def test_torch_load_gives_the_same_state_as_the_torch_free_reader():
    torch = pytest.importorskip("torch")
    state = torch.load(str(FIXTURE.with_suffix(".pt")), map_location="cpu", weights_only=True)
    ours = torch_pickle.load(FIXTURE.with_suffix(".pt"))
    assert list(state) == list(ours)
    for name, tensor in state.items():
        np.testing.assert_array_equal(tensor.numpy(), ours[name])
    model = convert_state(torch_pickle.to_numpy(state), fixture_config())
    assert max(run_official_calls(model.generator_ema, np.load(FIXTURE.with_suffix(".npz"))).values()) <= 1e-4


def test_training_checkpoint_dict_converts_g_d_and_g_ema():
    state = torch_pickle.load(FIXTURE.with_suffix(".pt"))
    probe = convert_state(state, fixture_config())
    rng = np.random.default_rng(0)
    d_state = {}
    for name, (variable, transform) in probe.discriminator.official_weight_map().items():
        shape = tuple(variable.shape)
        official_shape = {4: lambda s: (s[3], s[2], s[0], s[1]), 2: lambda s: (s[1], s[0])}.get(len(shape),
                                                                                               lambda s: s)(shape)
        d_state[name] = rng.normal(size=official_shape).astype("float32")
    d_state["convs.1.conv2.0.kernel"] = np.ones((4, 4), "float32")  # blur buffers are ignored
    g_state = {k: v + 1.0 for k, v in state.items()}
    model = convert_state({"g": g_state, "d": d_state, "g_ema": state, "g_optim": {}, "d_optim": {}},
                          fixture_config())
    for name, (variable, transform) in model.discriminator.official_weight_map().items():
        np.testing.assert_array_equal(variable.numpy(), transform(d_state[name]))
    for name, (variable, transform) in generator_weight_map(model.generator).items():
        np.testing.assert_array_equal(variable.numpy(), transform(g_state[name]))
    for name, (variable, transform) in generator_weight_map(model.generator_ema).items():
        np.testing.assert_array_equal(variable.numpy(), transform(state[name]))


def test_convert_cli_writes_a_run_that_generates_like_the_official_model(tmp_path):
    out = tmp_path / "converted"
    code = cli.run(convert_cli.main, ["cips", "--checkpoint", str(FIXTURE.with_suffix(".pt")),
                                      "--config", str(write_fixture_config(tmp_path)), "--out", str(out)])
    assert code == 0
    from tfcoord.runs import load_run

    model, _ = load_run(out)
    assert model.config.model.embedding_sampling == "official"
    data = np.load(FIXTURE.with_suffix(".npz"))
    assert max(run_official_calls(model.generator_ema, data).values()) <= 1e-4
    assert json.loads((out / "converted_from.json").read_text())["model"] == "cips"


def _expect_user_error(tmp_path, checkpoint, config_path, words, capsys):
    out = tmp_path / "never_written"
    code = cli.run(convert_cli.main, ["cips", "--checkpoint", str(checkpoint), "--config", str(config_path),
                                      "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def test_corrupt_truncated_wrong_model_and_mismatched_config_are_refused(tmp_path, capsys):
    config = write_fixture_config(tmp_path)
    pt = FIXTURE.with_suffix(".pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    _expect_user_error(tmp_path, truncated, config, "truncated or corrupt", capsys)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 100)
    _expect_user_error(tmp_path, garbage, config, "truncated or corrupt", capsys)  # with or without torch
    corrupt = tmp_path / "corrupt.pt"
    blob = bytearray(pt.read_bytes())
    blob[len(blob) // 3: len(blob) // 3 + 64] = b"\x00" * 64  # inside a storage: CRC mismatch
    corrupt.write_bytes(bytes(blob))
    _expect_user_error(tmp_path, corrupt, config, "truncated or corrupt", capsys)
    other = SHARED / "fixtures" / "official" / "infinitygan_small.pt"
    if other.is_file():
        _expect_user_error(tmp_path, other, config, "does not look like an official CIPS generator", capsys)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("model:\n  size: 8\n  hidden_size: 32\n  style_dim: 32\n  n_mlp: 2\n  channel_multiplier: 1\n")
    _expect_user_error(tmp_path, pt, tiny, "mis-shaped", capsys)
    capsys.readouterr()
    with pytest.raises(UserError, match="lff.ffm.conv.weight"):
        convert_state({k: v for k, v in torch_pickle.load(pt).items() if k != "lff.ffm.conv.weight"},
                      fixture_config())
    with pytest.raises(UserError, match="unexpected 1: extra.weight"):
        convert_state({**torch_pickle.load(pt), "extra.weight": np.zeros(3, "float32")}, fixture_config())


def test_missing_torch_gives_the_install_hint_for_legacy_files(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(b"\x80\x02legacy pickle")
    with pytest.raises(UserError, match=r"pip install tfcoord\[convert\]"):
        torch_pickle.load(legacy)
    shutil.rmtree(tmp_path, ignore_errors=True)
