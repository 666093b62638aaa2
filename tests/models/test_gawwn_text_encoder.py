"""The text-encoder model: joint-embedding training learns, its run feeds GAWWN, free text works."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcoord.config import load_config
from tfcoord.data import make_dataset
from tfcoord.errors import UserError
from tfcoord.models import section_classes
from tfcoord.models.text_encoder.model import TextEncoderModel

TINY = ["model.embedding_dim=16", "model.cnn_channels=[16, 16, 16]", "model.image_encoder_width=8",
        "model.image_size=32", "train.batch_size=8", "log.num_samples=4", "log.progress_bar=false"]


def test_joint_embedding_training_separates_a_batch():
    # From scratch on both sides the plain scores hardly move (see TextEncoderLossConfig.center_features).
    config = load_config("text-encoder", section_classes("text-encoder"), preset="tiny",
                         overrides=TINY + ["optim.lr=0.003"])
    model = TextEncoderModel(config)
    keras.utils.set_random_seed(0)
    model.build()
    batch = next(iter(make_dataset("synthetic-birds", image_size=(32, 32), batch_size=8, seed=0)))
    step = tf.function(lambda b: model.train_step(b, 8))
    losses = [float(step({**batch, **model.step_inputs(s, 8)})["loss"]) for s in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from tfcoord.train import main

    run = tmp_path_factory.mktemp("text") / "run"
    main(["--model", "text-encoder", "--steps", "2", "--out", str(run), *[a for o in TINY for a in ("--set", o)]])
    return run


def test_text_encoder_run_writes_a_score_map_and_a_checkpoint(text_run):
    assert (text_run / "samples" / "step_00000002.png").is_file()
    assert any(p.name.startswith("ckpt-2") for p in (text_run / "checkpoints").iterdir())


def test_gawwn_takes_its_text_encoder_from_a_text_encoder_run(text_run, tmp_path):
    from tfcoord.models.gawwn.model import Gawwn
    from tfcoord.runs import load_run

    encoder_run, _ = load_run(text_run)
    overrides = ["model.ngf=8", "model.ndf=8", "model.keypoint_generator=false", "text.encoder=char-cnn-gru",
                 "text.embedding_dim=16", "text.cnn_channels=[16, 16, 16]", f"text.encoder_run={text_run}"]
    gawwn = Gawwn(load_config("gawwn", section_classes("gawwn"), preset="tiny", overrides=overrides))
    gawwn.build()
    for a, b in zip(gawwn.text_encoder.weights, encoder_run.text_encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    caption = "a small bird with red wings."
    np.testing.assert_allclose(gawwn.sampler.embed_captions(caption), encoder_run.encode([caption])[0], atol=1e-6)
    mismatched = Gawwn(load_config("gawwn", section_classes("gawwn"), preset="tiny",
                                   overrides=overrides[:-2] + ["text.cnn_channels=[8, 8, 8]",
                                                               f"text.encoder_run={text_run}"]))
    with pytest.raises(UserError, match="cnn_channels"):
        mismatched.build()
