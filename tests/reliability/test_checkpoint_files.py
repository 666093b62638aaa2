"""Checkpoint files in-process: atomic list, manifests, fallback past damage, failed writes change nothing."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.errors import UserError
from tfcoord.fileio import atomic_write_text
from tfcoord.training.checkpoints import (STATE_FILE, CheckpointKeeper, listed_checkpoints,
                                          restore_networks_from_run, verify_files)


def small_items(seed=0, units=3):
    keras.utils.set_random_seed(seed)
    network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, name="dense")], name="net")
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(network.trainable_variables)
    return {"network": network, "optimizer": optimizer}


def keeper(folder, seed=0, max_to_keep=3, units=3):
    items = small_items(seed, units)
    step = tf.Variable(0, dtype=tf.int64)
    return CheckpointKeeper(folder, step, max_to_keep=max_to_keep, **items), items, step


def save_steps(folder, steps, max_to_keep=3):
    saver, items, step = keeper(folder, max_to_keep=max_to_keep)
    weights = {}
    for s in steps:
        items["network"].layers[0].kernel.assign(np.full((4, 3), float(s), np.float32))
        step.assign(s)
        saver.save(s)
        weights[s] = items["network"].layers[0].kernel.numpy().copy()
    return saver, weights


def restored_kernel(folder):
    saver, items, step = keeper(folder, seed=99)
    path = saver.restore_latest()
    return path, int(step.numpy()), items["network"].layers[0].kernel.numpy()


def test_saves_are_listed_with_manifests_and_old_ones_deleted(tmp_path):
    save_steps(tmp_path, [1, 2, 3, 4], max_to_keep=2)
    assert [p.rsplit("-", 1)[1] for p in listed_checkpoints(tmp_path)] == ["3", "4"]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")  # TensorFlow reads the list too
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.manifest.json")) == ["ckpt-3.manifest.json",
                                                                              "ckpt-4.manifest.json"]
    assert not list(tmp_path.glob("ckpt-1*")) and not list(tmp_path.glob(".*tmp*"))
    assert verify_files(tmp_path / "ckpt-4")


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_data", "bad_manifest"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, damage, capsys):
    _, weights = save_steps(tmp_path, [2, 4])
    data = tmp_path / "ckpt-4.data-00000-of-00001"
    if damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 1
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:10])
    elif damage == "delete_data":
        data.unlink()
    else:
        (tmp_path / "ckpt-4.manifest.json").write_text("{not json")
    path, step, kernel = restored_kernel(tmp_path)
    assert path.endswith("ckpt-2") and step == 2
    np.testing.assert_array_equal(kernel, weights[2])
    assert "ckpt-4 is damaged" in capsys.readouterr().err
    assert [p.rsplit("-", 1)[1] for p in listed_checkpoints(tmp_path)] == ["2"]
    assert (tmp_path / "corrupt" / "ckpt-4.index").exists()  # kept for inspection, not deleted


def test_without_manifests_tensorflow_checksums_still_catch_damage(tmp_path):
    _, weights = save_steps(tmp_path, [2, 4])
    for manifest in tmp_path.glob("*.manifest.json"):
        manifest.unlink()
    data = tmp_path / "ckpt-4.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[20] ^= 0xFF
    data.write_bytes(bytes(raw))
    path, step, kernel = restored_kernel(tmp_path)
    assert step == 2
    np.testing.assert_array_equal(kernel, weights[2])


def test_every_checkpoint_damaged_is_a_user_error(tmp_path):
    save_steps(tmp_path, [2, 4])
    for data in tmp_path.glob("*.data-*"):
        data.write_bytes(b"")
    with pytest.raises(UserError, match="every checkpoint .* is damaged"):
        restored_kernel(tmp_path)


def test_a_checkpoint_of_another_model_is_a_mismatch_not_damage(tmp_path):
    save_steps(tmp_path, [2])
    saver, _, _ = keeper(tmp_path, units=5)
    with pytest.raises(UserError, match="does not match this model"):
        saver.restore_latest()
    assert (tmp_path / "ckpt-2.index").exists() and not (tmp_path / "corrupt").exists()


def test_readers_skip_damage_without_moving_files(tmp_path, capsys):
    _, weights = save_steps(tmp_path, [2, 4])
    (tmp_path / "ckpt-4.index").write_bytes(b"garbage")
    run = tmp_path.parent / "run_for_reader"
    run.mkdir()
    (run / "checkpoints").symlink_to(tmp_path)
    items = small_items(seed=5)
    path = restore_networks_from_run({"network": items["network"]}, run)
    assert path.endswith("ckpt-2")
    np.testing.assert_array_equal(items["network"].layers[0].kernel.numpy(), weights[2])
    assert (tmp_path / "ckpt-4.index").exists() and "trying the previous one" in capsys.readouterr().err


def test_lost_list_file_is_rebuilt_from_manifests(tmp_path, capsys):
    save_steps(tmp_path, [2, 4])
    (tmp_path / STATE_FILE).unlink()
    assert [p.rsplit("-", 1)[1] for p in listed_checkpoints(tmp_path)] == ["2", "4"]
    assert "manifests" in capsys.readouterr().err
    (tmp_path / STATE_FILE).write_text("model_checkpoint_path: {{{ garbage")
    assert [p.rsplit("-", 1)[1] for p in listed_checkpoints(tmp_path)] == ["2", "4"]


def test_a_failed_write_leaves_the_list_and_files_untouched(tmp_path, monkeypatch):
    saver, _ = save_steps(tmp_path, [2])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def disk_full(prefix, *args, **kwargs):
        with open(f"{prefix}.data-00000-of-00001", "wb") as partial:
            partial.write(b"half")
        raise tf.errors.ResourceExhaustedError(None, None, f"{prefix}_temp/part-0; No space left on device")

    monkeypatch.setattr(saver.checkpoint, "write", disk_full)
    with pytest.raises(UserError, match=r"could not write checkpoint step 3 .*\(No space left on device; "
                                        r"free disk space\); the earlier checkpoints are intact \(newest: step 2\)"):
        saver.save(3)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before


def test_atomic_write_keeps_the_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    atomic_write_text(target, json.dumps({"old": True}))

    def broken_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, json.dumps({"new": True}))
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
