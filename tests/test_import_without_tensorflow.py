"""The generators need no TensorFlow: layers, generator modules and their configs import, build and draw under
Keras's JAX backend with ``tensorflow`` hidden from the import system, as on a GPU machine that has JAX only
(the GPU benchmark's)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax", reason="JAX comes with the test extras: pip install -e '.[test]'")

# Imports any tensorflow module refuses (a machine without it); then each model's generator is built from its tiny
# preset by its own module's builder and draws a batch of 2. Prints {model: output shape} and the modules loaded.
WORKER = textwrap.dedent('''
    import json, sys

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"No module named {name!r} (hidden by the test)")

    sys.meta_path.insert(0, NoTensorFlow())
    import numpy as np

    import tfcoord.layers
    from tfcoord.config import load_config
    from tfcoord.models import section_classes
    from tfcoord.models.cips.generator import build_generator as cips_generator
    from tfcoord.models.cocogan.generator import build_generator as cocogan_generator
    from tfcoord.models.gawwn.networks import box_generator, keypoint_completer, keypoint_generator
    from tfcoord.models.infinitygan.generator import build_generator as infinitygan_generator

    rng = np.random.default_rng(0)
    configs = {m: load_config(m, section_classes(m), preset="tiny").model
               for m in ("cocogan", "cips", "infinitygan", "gawwn")}
    shapes = {}
    cfg = configs["cocogan"]
    g = cocogan_generator(cfg)
    shapes["cocogan"] = g([rng.standard_normal((2, cfg.z_dim)).astype("float32"),
                           rng.uniform(-1, 1, (2, 2)).astype("float32")]).shape
    cfg = configs["cips"]
    g, side = cips_generator(cfg), cfg.size
    shapes["cips"] = g(rng.standard_normal((2, cfg.style_dim)).astype("float32"),
                       rng.uniform(-1, 1, (2, side, side, g.coord_dim)).astype("float32"),
                       rng.standard_normal((2, side, side, g.num_noise_layers)).astype("float32")).shape
    cfg = configs["infinitygan"]
    g, geometry = infinitygan_generator(cfg), cfg.geometry()
    window, sizes = geometry.window, geometry.conv_output_sizes()
    shapes["infinitygan"] = g(rng.standard_normal((2, cfg.global_latent_dim)).astype("float32"),
                              rng.standard_normal((2, window, window, cfg.local_latent_dim)).astype("float32"),
                              rng.uniform(-1, 1, (2, window, window, g.coord_dim)).astype("float32"),
                              [rng.standard_normal((2, s, s, 1)).astype("float32") for s in sizes]).shape
    cfg = configs["gawwn"]
    g = box_generator(cfg, 128)
    shapes["gawwn"] = g([rng.standard_normal((2, cfg.z_dim)).astype("float32"),
                         rng.standard_normal((2, 128)).astype("float32"),
                         np.array([[0.1, 0.2, 0.8, 0.7]] * 2, "float32")]).shape
    keypoint_generator(cfg, 128, 15)
    keypoint_completer(cfg, 128, 15)
    print(json.dumps({"shapes": {k: list(v) for k, v in shapes.items()},
                      "tensorflow_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
                      "backend": __import__("keras").backend.backend()}))
''')


def test_generators_build_and_draw_under_jax_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_backend_optimization_level=0")
    proc = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax" and report["tensorflow_loaded"] == []
    assert report["shapes"] == {"cocogan": [2, 8, 8, 3], "cips": [2, 32, 32, 3], "infinitygan": [2, 53, 53, 3],
                                "gawwn": [2, 64, 64, 3]}
