"""--batch 0: a TFLite signature whose batch the app picks at run time (COCO-GAN refuses it with one line)."""

import numpy as np
import pytest

from export.example_inputs import patch_size
from export_cases import example_inputs, exported  # noqa: F401 (fixture)
from tfcoord.errors import UserError


def test_dynamic_batch_runs_any_batch_as_its_rows_one_by_one(exported, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from export.tflite import export_tflite

    out = tmp_path / "dynamic.tflite"
    if exported.case.model_type == "cocogan":
        # The generator's feature maps lose their height under an unknown batch, and TFLite's Conv2D refuses.
        with pytest.raises(UserError, match="cannot be converted with a dynamic batch.*pass a fixed --batch"):
            export_tflite(exported.run_dir, out, patch_size(exported.description), "none", batch=0)
        return
    path, description = export_tflite(exported.run_dir, out, patch_size(exported.description), "none", batch=0)
    assert all(spec["shape"][0] == -1 for spec in description["tflite"]["inputs"].values())
    runner = Interpreter(model_path=str(path)).get_signature_runner("generate_patch")
    inputs = example_inputs(exported, "generate_patch", 3, seed=5, description=description)
    together = runner(**inputs)["rgb"]
    one_by_one = np.concatenate([runner(**{k: v[i:i + 1] for k, v in inputs.items()})["rgb"] for i in range(3)])
    assert together.shape[0] == 3
    np.testing.assert_allclose(together, one_by_one, atol=1e-5, rtol=0)
    expected = exported.case.keras_outputs(exported.model, "generate_patch", inputs)["rgb"]
    np.testing.assert_allclose(together, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())), rtol=0)
