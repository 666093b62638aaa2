"""The generators run under Keras's JAX backend and match TensorFlow (style.md: keras.ops only).

Weights built under TensorFlow are loaded by variable path into the networks that
``model.build_networks()`` builds under JAX, and ``jax.jit(stateless_call)`` must give the
TensorFlow outputs to float32 round-off.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backend_parity

pytest.importorskip("jax", reason="JAX comes with the test extras: pip install -e '.[test]'")


def test_every_generator_runs_under_jax_and_matches_tensorflow(tmp_path):
    expected = {}
    for model_type in backend_parity.MODELS:
        model = backend_parity.build_model(model_type)
        for name, (network, inputs, call) in backend_parity.cases(model_type, model).items():
            backend_parity.save_weights(network, tmp_path / f"{model_type}.{name}.weights.npz")
            expected[model_type, name] = np.asarray(network(*call(inputs), training=False))
    # One process for all models; XLA's lowest optimisation level halves the per-op compiles of eager building.
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_backend_optimization_level=0", TF_CPP_MIN_LOG_LEVEL="3")
    worker = Path(backend_parity.__file__)
    proc = subprocess.run([sys.executable, str(worker), str(tmp_path), *backend_parity.MODELS], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {m for m, _ in expected} == set(backend_parity.MODELS) and ("gawwn", "generator") in expected
    for (model_type, name), reference in expected.items():
        result = np.load(tmp_path / f"{model_type}.jax.npz")[name]
        assert result.shape == reference.shape, (model_type, name)
        assert np.isfinite(result).all(), (model_type, name)
        # Relative to the output's size (GAWWN's untrained G outputs ~1e-3): float32 round-off passes,
        # a network that ignored the loaded weights would be off by about the output's size.
        tolerance = 1e-5 * float(np.abs(reference).max()) + 1e-7
        assert np.abs(result - reference).max() <= tolerance, (model_type, name, np.abs(result - reference).max())
