"""The notebook API, used only through the public names of ``tfcoord``."""

import numpy as np
import pytest
from PIL import Image

import tfcoord


def test_train_load_generate_render_export(tmp_path):
    run = tfcoord.train(model="cocogan", preset="tiny", steps=2, batch_size=4, out=tmp_path / "run",
                        model__ngf=8, **{"model.ndf": 8, "log.progress_bar": False, "log.num_samples": 4})
    assert isinstance(run, tfcoord.Run) and run.config.train.steps == 2 and run.config.model.ngf == 8
    assert run.config.model.ndf == 8 and (tmp_path / "run" / "checkpoints").is_dir()

    images = run.generate(seed=3, num=2)
    height, width = run.model.image_size()
    assert images.shape == (2, height, width, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, tfcoord.load_run(tmp_path / "run").generate(seed=3, num=2))
    assert not np.array_equal(images, run.generate(seed=4, num=2))

    canvas = run.render(width=3 * width, height=height, progress=False)
    assert canvas.shape == (height, 3 * width, 3) and canvas.dtype == np.uint8
    written = run.render(width=3 * width, height=height, out=tmp_path / "canvas.png", progress=False)
    np.testing.assert_array_equal(np.asarray(Image.open(written).convert("RGB")), canvas)

    folder, description = tfcoord.export_saved_model(run.path, tmp_path / "serving" / "cocogan")
    assert (folder / "saved_model.pb").is_file() and folder.name == "1" and description["model_type"] == "cocogan"


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(tfcoord.UserError, match="does not exist"):
        tfcoord.load_run(tmp_path / "missing")
    with pytest.raises(tfcoord.UserError, match="unknown option 'stepz'"):
        tfcoord.train(model="cocogan", stepz=3)
    with pytest.raises(tfcoord.UserError, match="unknown model"):
        tfcoord.train(model="nope")
