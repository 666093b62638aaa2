"""Checkpoints round-trip every variable: weights, spectral-norm u, BN/CBN statistics, optimizer slots."""

import numpy as np
import tensorflow as tf

from tfcoord.config import load_config
from tfcoord.models import section_classes
from tfcoord.models.cocogan.model import CocoGan
from tfcoord.training.checkpoints import CheckpointKeeper, restore_networks, variable_map


def tiny_model():
    config = load_config("cocogan", section_classes("cocogan"), preset="tiny",
                         overrides=["model.ngf=8", "model.ndf=8"])
    model = CocoGan(config)
    model.build()
    return model


def test_variable_map_covers_every_variable():
    model = tiny_model()
    items = model.checkpoint_items()
    expected = sum(len(item.weights) if hasattr(item, "weights") else len(item.variables) for item in items.values())
    assert len(variable_map(items)) == expected
    keys = variable_map(model.network_items())
    assert "generator.G_generator.g_resblock_1.conv_1.u" in keys
    assert "generator.G_generator.g_resblock_1.cbn_2.moving_variance" in keys


def test_round_trip_through_a_checkpoint(tmp_path):
    trained = tiny_model()
    trained.train_step({"image": tf.random.uniform([4, 32, 32, 3], -1, 1), **trained.step_inputs(0, 4)}, 4)
    step = tf.Variable(1, dtype=tf.int64)
    path = CheckpointKeeper(tmp_path, step, **trained.checkpoint_items()).save(1)

    fresh = tiny_model()
    fresh_step = tf.Variable(0, dtype=tf.int64)
    CheckpointKeeper(tmp_path, fresh_step, **fresh.checkpoint_items()).restore_latest()
    assert int(fresh_step.numpy()) == 1
    before, after = variable_map(trained.checkpoint_items()), variable_map(fresh.checkpoint_items())
    for key, variable in before.items():
        np.testing.assert_array_equal(variable.numpy(), after[key].numpy(), err_msg=key)

    networks_only = CocoGan(trained.config)
    networks_only.build_networks()
    restore_networks(networks_only.network_items(), path)
    z = trained.latents(0, 2)
    np.testing.assert_array_equal(networks_only.sampler.generate_full(z), trained.sampler.generate_full(z))
