"""tfcoord's generators on Keras-JAX on one GPU, side by side with the official PyTorch generators.

    python -m bench.gpu --official-root bench/results/official   # paper sizes: ~10 min on an H200
    python -m bench.gpu --quick                                   # tiny presets at batch 2 (CPU is fine)

This is tfcoord's *model code* run by Keras 3 on its JAX backend (``jax.jit`` of the
generator's ``stateless_call``), not the TensorFlow runtime: the machine needs JAX (and
PyTorch for the official side), keras and tfcoord's source, no TensorFlow. Workloads, each
at batch 1 / 8 / 32 (InfinityGAN 1 / 8 / 64), in float32 (matmuls and convolutions at
``highest`` precision), TF32 and bf16 (Keras ``mixed_bfloat16``: bf16 compute, float32 weights):

* CIPSskip 256 (configs/cips/ffhq256.yaml): ``G(z, coords, noise)``, one 256 x 256 image;
* InfinityGAN (configs/infinitygan/flickr_landscape.yaml): G_S + G_T, one 101 x 101 patch
  from its 35 x 35 latent and coordinate window and 8 noise maps;
* COCO-GAN CelebA 128 N2M2 (configs/cocogan/celeba128_n2m2.yaml): the full 128 x 128 image,
  its 16 micro patches of 32 px in one G call, merged (as ``generate_full``);
* GAWWN CUB 128 (configs/gawwn/cub_bbox.yaml): the bounding-box G from (z, 1024-d text, box).

Random weights (they do not change the cost); inputs drawn once and kept on the device. Each
row: compile time, then the median over trials of ``n`` back-to-back calls followed by one
``block_until_ready`` (``torch.cuda.synchronize`` for PyTorch), after a warm-up call. The
compute of an image is the spec's for CIPS (445.84 GFLOP, models.md §2.10) and InfinityGAN
(97.36 GFLOP per patch, §4.11) and XLA's count (``cost_analysis``) for the others; the bf16
matrix peak is a plain 8192^3 bf16 ``jnp.dot`` measured in the same run.

Official side (``--official-root DIR`` holding ``CIPS/`` = saic-mdal/CIPS and ``infinityGAN/``
= hubert0527/infinityGAN, both imported from there, never copied): CIPSskip(size=256) and
InfinityGanGenerator(configs/model/InfinityGAN.yaml) with random weights, eval mode, in
float32 (TF32 off) and TF32 (matmul and cuDNN). Their CUDA-only ops ``fused_leaky_relu`` and
``upfirdn2d`` are replaced at import by plain PyTorch (the repositories' own
``upfirdn2d_native``); the extension build (``torch.utils.cpp_extension.load``) is skipped.
Official CIPS draws its per-pixel noise inside the forward; tfcoord's is an input.

Goals (issue 20, item 4), checked at the end: float32 >= 2x the official throughput at every
batch, and bf16 >= 60 % of the bf16 matmul peak at the largest batch, for CIPS and InfinityGAN.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

from tfcoord import cli
from tfcoord.errors import UserError

REPO = Path(__file__).resolve().parents[1]
ROW_MARK = "BENCH_GPU_ROW "
MODELS = ("cips", "infinitygan", "cocogan", "gawwn")
PRESETS = {"cips": "ffhq256", "infinitygan": "flickr_landscape", "cocogan": "celeba128_n2m2", "gawwn": "cub_bbox"}
BATCHES = {"cips": (1, 8, 32), "infinitygan": (1, 8, 64), "cocogan": (1, 8, 32), "gawwn": (1, 8, 32)}
QUICK_BATCHES = (2,)
PRECISIONS = ("float32", "tf32", "bf16")
OFFICIAL_PRECISIONS = ("float32", "tf32")
SPEC_GFLOP = {"cips": 445.84, "infinitygan": 97.36}  # per image / patch of the paper presets (models.md)
WHAT = {"cips": "CIPSskip 256 image", "infinitygan": "InfinityGAN 101 px patch",
        "cocogan": "COCO-GAN CelebA 128 N2M2 full image", "gawwn": "GAWWN CUB 128 box image"}
GOAL_FP32_SPEEDUP, GOAL_BF16_FRACTION = 2.0, 0.60
JAX_MATMUL_PRECISION = {"float32": "highest", "tf32": "tensorfloat32", "bf16": None}


# -- timing -----------------------------------------------------------------------------------
def time_calls(call, wait, quick: bool) -> dict:
    """Median seconds per call of ``call`` (asynchronous; ``wait(out)`` blocks until it is done).

    One warm-up call, one timed single call that sizes a trial (``n`` back-to-back calls of at
    least 0.3 s), then the trials; a call over 2 s gets 3 trials instead of 5.
    """
    wait(call())
    start = time.perf_counter()
    wait(call())
    single = time.perf_counter() - start
    calls = 1 if quick else max(1, min(50, math.ceil(0.3 / max(single, 1e-6))))
    trials = 2 if quick else (3 if single > 2 else 5)
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(calls):
            out = call()
        wait(out)
        times.append((time.perf_counter() - start) / calls)
    return {"s_per_call": statistics.median(times), "trial_s_per_call": times, "calls_per_trial": calls,
            "single_call_s": single}


def emit(row: dict) -> None:
    print(ROW_MARK + json.dumps(row), flush=True)


# -- tfcoord on Keras-JAX (child process) -------------------------------------------------------
def _config(model: str, quick: bool):
    from tfcoord.config import load_config
    from tfcoord.models import section_classes

    return load_config(model, section_classes(model), preset="tiny" if quick else PRESETS[model])


def tfcoord_case(model: str, quick: bool, precision: str = "float32"):
    """``(network, inputs(batch, rng) -> tuple of arrays, forward(network, trainable, non_trainable, *inputs))``."""
    import numpy as np
    from keras import ops

    config = _config(model, quick)
    cfg = config.model
    if model == "cips":
        from tfcoord.models.cips.coordinates import tile_coords
        from tfcoord.models.cips.generator import build_generator

        g, side = build_generator(cfg), cfg.size
        # Under bf16 the coordinate layers stay float32: the library's mixed-precision rule (train.precision).
        grid = np.asarray(tile_coords(0, 0, side, side, side, side), "float32")

        def inputs(batch, rng):
            return (rng.standard_normal((batch, cfg.style_dim)), np.repeat(grid[None], batch, 0),
                    rng.standard_normal((batch, side, side, g.num_noise_layers)))

        def forward(network, trainable, non_trainable, z, coords, noise):
            return network.stateless_call(trainable, non_trainable, z, coords, noise)[0]
    elif model == "infinitygan":
        from tfcoord.models.infinitygan.generator import build_generator

        g, geometry = build_generator(cfg), cfg.geometry()
        window, sizes = geometry.window, geometry.conv_output_sizes()

        def inputs(batch, rng):
            return (rng.standard_normal((batch, cfg.global_latent_dim)),
                    rng.standard_normal((batch, window, window, cfg.local_latent_dim)),
                    rng.uniform(-1, 1, (batch, window, window, g.coord_dim)),
                    *[rng.standard_normal((batch, s, s, 1)) for s in sizes])

        def forward(network, trainable, non_trainable, global_latent, local_latent, coords, *noises):
            return network.stateless_call(trainable, non_trainable, global_latent, local_latent, coords,
                                          list(noises))[0]
    elif model == "cocogan":
        from tfcoord.coords import merge_patches
        from tfcoord.models.cocogan.generator import build_generator, geometry_of

        g, geometry = build_generator(cfg), geometry_of(cfg)
        grid = np.asarray(geometry.full_micro_grid(), "float32")  # (rows, cols, coord_dim)
        rows, cols = grid.shape[:2]
        micro_coords = grid.reshape(rows * cols, -1)

        def inputs(batch, rng):
            return (rng.uniform(-1, 1, (batch, cfg.z_dim)),)

        def forward(network, trainable, non_trainable, z):
            # Every micro patch of every image in one G call (as CocoGanSampler.generate_full), then merged.
            batch = z.shape[0]
            z_per_patch = ops.repeat(z, rows * cols, axis=0)
            coords = ops.tile(ops.cast(micro_coords, z.dtype), (batch, 1))
            patches = network.stateless_call(trainable, non_trainable, [z_per_patch, coords], training=False)[0]
            return merge_patches(patches, rows, cols)
    elif model == "gawwn":
        from tfcoord.models.gawwn.networks import box_generator

        g = box_generator(cfg, config.text.embedding_dim)

        def inputs(batch, rng):
            box = np.array([[0.1, 0.2, 0.8, 0.7]], "float32").repeat(batch, 0)  # (ymin, xmin, ymax, xmax)
            return rng.standard_normal((batch, cfg.z_dim)), rng.standard_normal((batch, config.text.embedding_dim)), box

        def forward(network, trainable, non_trainable, z, text, box):
            return network.stateless_call(trainable, non_trainable, [z, text, box], training=False)[0]
    else:
        raise ValueError(f"unknown model {model!r}")
    return g, inputs, forward


def _flops(lowered) -> float | None:
    """FLOPs of the lowered (not yet optimised) HLO: after compilation a GPU's convolutions are cuDNN
    custom calls, which XLA's cost analysis does not count."""
    try:
        analysis = lowered.cost_analysis()
    except Exception:  # not every backend or version reports it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0)) or None


def matmul_peak(precision: str, size: int, quick: bool) -> dict:
    """A plain ``size``^3 matmul in ``precision`` (random data): the machine's matrix rate."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    a, b = (jax.random.normal(k, (size, size), dtype) for k in keys)
    with jax.default_matmul_precision(JAX_MATMUL_PRECISION[precision] or "default"):
        compiled = jax.jit(jnp.dot).lower(a, b).compile()
    timing = time_calls(lambda: compiled(a, b), lambda out: out.block_until_ready(), quick)
    return {"kind": "matmul", "precision": precision, "size": size, **timing,
            "tflop_per_s": 2 * size ** 3 / timing["s_per_call"] / 1e12}


def cips_matmul_chain(batch: int, quick: bool) -> dict:
    """Profile: CIPSskip's matmuls alone, in bf16, chained as in the generator (x @ W per layer, the
    ToRGB matmuls summed), at ``batch`` images: the time the generator's arithmetic needs."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from tfcoord.models.cips.generator import stage_channels

    cfg = _config("cips", quick).model
    pixels = batch * cfg.size * cfg.size
    channels = stage_channels(cfg.architecture, cfg.size, cfg.channel_multiplier, cfg.width_multiplier)
    shapes, in_channels = [(2 * cfg.hidden_size, channels[0])], channels[0]
    for out_channels in channels:
        shapes += [(in_channels, out_channels), (out_channels, out_channels)]
        in_channels = out_channels
    rng = np.random.default_rng(0)
    weights = [jnp.asarray(rng.standard_normal((k, n)) / math.sqrt(k), jnp.bfloat16) for k, n in shapes]
    rgb_weights = [jnp.asarray(rng.standard_normal((c, 3)) / math.sqrt(c), jnp.bfloat16) for c in channels]
    x0 = jax.random.normal(jax.random.PRNGKey(1), (pixels, 2 * cfg.hidden_size), jnp.bfloat16)

    def chain(x, weights, rgb_weights):
        x, rgb = x @ weights[0], 0.0
        for i, rgb_weight in enumerate(rgb_weights):
            x = x @ weights[1 + 2 * i]
            x = x @ weights[2 + 2 * i]
            rgb = rgb + x @ rgb_weight
        return rgb

    compiled = jax.jit(chain).lower(x0, weights, rgb_weights).compile()
    flops = 2 * pixels * (sum(k * n for k, n in shapes) + 3 * sum(channels))
    timing = time_calls(lambda: compiled(x0, weights, rgb_weights), lambda out: out.block_until_ready(), quick)
    return {"kind": "profile", "what": "CIPSskip matmuls alone (bf16, chained)", "batch": batch, **timing,
            "tflop_per_s": flops / timing["s_per_call"] / 1e12, "gflop_per_image": flops / batch / 1e9}


@contextlib.contextmanager
def dtype_policy(precision: str):
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


def tfcoord_worker(spec: dict) -> None:
    import jax
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        raise UserError(f"bench.gpu runs Keras on JAX: set KERAS_BACKEND=jax (got {keras.backend.backend()})")
    quick = spec["quick"]
    device = jax.devices()[0]
    emit({"kind": "environment", "side": "tfcoord", "jax": jax.__version__, "keras": keras.__version__,
          "device": getattr(device, "device_kind", str(device)), "platform": device.platform})
    for precision in spec["precisions"]:
        emit(matmul_peak(precision, 256 if quick else 8192, quick))
    for model in spec["models"]:
        batches = QUICK_BATCHES if quick else BATCHES[model]
        for precision in spec["precisions"]:
            keras.utils.set_random_seed(0)
            with dtype_policy(precision):
                network, make_inputs, forward = tfcoord_case(model, quick, precision)
            trainable = [v.value for v in network.trainable_variables]
            non_trainable = [v.value for v in network.non_trainable_variables]
            jitted = jax.jit(lambda t, n, *x, network=network, forward=forward: forward(network, t, n, *x))
            for batch in batches:
                base = {"kind": "generator", "side": "tfcoord", "model": model, "precision": precision,
                        "batch": batch}
                try:
                    arrays = make_inputs(batch, np.random.default_rng(batch))
                    arrays = [jax.device_put(np.asarray(a, "float32")) for a in arrays]
                    start = time.perf_counter()
                    with jax.default_matmul_precision(JAX_MATMUL_PRECISION[precision] or "default"):
                        lowered = jitted.lower(trainable, non_trainable, *arrays)
                        compiled = lowered.compile()
                    compile_s = time.perf_counter() - start
                    out = compiled(trainable, non_trainable, *arrays)
                    timing = time_calls(lambda: compiled(trainable, non_trainable, *arrays),
                                        lambda out: out.block_until_ready(), quick)
                    flops = _flops(lowered)
                    emit({**base, "compile_s": compile_s, **timing, "output_shape": list(out.shape),
                          "output_dtype": str(out.dtype),
                          "compute_dtype": network.dtype_policy.compute_dtype, "output_finite": bool(np.isfinite(
                              np.asarray(out, "float32")).all()),
                          "xla_gflop_per_item": flops / batch / 1e9 if flops else None})
                except Exception as error:  # e.g. out of memory: record it, go on with the others
                    emit({**base, "error": f"{type(error).__name__}: {str(error)[:500]}"})
        if model == "cips" and "bf16" in spec["precisions"]:
            emit(cips_matmul_chain(batches[-1], quick))


# -- official PyTorch generators (child process) ------------------------------------------------
class AttributeDict(dict):
    """A nested dict read as attributes (the official code's EasyDict config access)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def of(cls, value):
        if isinstance(value, dict):
            return cls({k: cls.of(v) for k, v in value.items()})
        return value


def plain_fused_leaky_relu(input, bias, negative_slope=0.2, scale=2 ** 0.5):
    """The fused bias + leaky ReLU + gain as three plain PyTorch ops (the CUDA kernel's maths)."""
    from torch.nn import functional as F

    return F.leaky_relu(input + bias.view((1, -1) + (1,) * (input.ndim - 2)), negative_slope) * scale


class _NoExtension:
    """Stands in for a CUDA extension that was not built: any use of it is an error, not a silent fallback."""

    def __init__(self, name):
        self.name = name

    def __getattr__(self, attribute):
        raise RuntimeError(f"bench.gpu: the CUDA extension {self.name!r} was replaced by plain PyTorch; "
                           f"{attribute} should not be reached")


def import_with_plain_ops(root: Path, ops_package: str, modules: list[str]) -> list:
    """Import ``modules`` from the official repository at ``root`` with its CUDA ops in plain PyTorch.

    ``ops_package`` (``op`` in CIPS, ``models.custom_ops`` in InfinityGAN) builds its CUDA
    extensions at import through ``torch.utils.cpp_extension.load``: that call is skipped, then
    ``fused_leaky_relu`` becomes :func:`plain_fused_leaky_relu` and ``upfirdn2d`` the repository's
    own ``upfirdn2d_native`` (its CPU path), before any model module binds the names.
    """
    import torch.utils.cpp_extension as cpp_extension

    sys.path.insert(0, str(root))
    load = cpp_extension.load
    cpp_extension.load = lambda name, *args, **kwargs: _NoExtension(name)
    try:
        importlib.import_module(ops_package)
    finally:
        cpp_extension.load = load
    fused_act = sys.modules[f"{ops_package}.fused_act"]
    resampling = sys.modules[f"{ops_package}.upfirdn2d"]

    def plain_upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0)):
        return resampling.upfirdn2d_native(input, kernel, up, up, down, down, pad[0], pad[1], pad[0], pad[1])

    fused_act.fused_leaky_relu = plain_fused_leaky_relu  # FusedLeakyReLU.forward reads this global
    resampling.upfirdn2d = plain_upfirdn2d
    package = sys.modules[ops_package]
    package.fused_leaky_relu, package.upfirdn2d = plain_fused_leaky_relu, plain_upfirdn2d
    try:
        return [importlib.import_module(module) for module in modules]
    finally:
        sys.path.remove(str(root))


def _stub_missing(name: str, **attributes) -> None:
    """InfinityGAN's ``dataset`` module (which holds the generator's output type) imports its data
    loading's packages at the top; where one is not installed, an empty stand-in is enough."""
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(sys.modules[name], key, value)


def official_cases(root: Path, quick: bool):
    """``{model: (module, inputs(batch, generator) -> kwargs-or-args, forward)}`` of the official generators."""
    import torch
    import yaml

    cases = {}
    cips_root, infinitygan_root = root / "CIPS", root / "infinityGAN"
    (cips_module,) = import_with_plain_ops(cips_root, "op", ["model.GeneratorsCIPS"])
    cips_args = (dict(size=32, hidden_size=64, n_mlp=2, style_dim=64, channel_multiplier=1) if quick else
                 dict(size=256, hidden_size=512, n_mlp=8, style_dim=512, lr_mlp=0.01, channel_multiplier=2))
    torch.manual_seed(0)
    cips = cips_module.CIPSskip(**cips_args)

    def cips_inputs(batch, generator):
        side = cips_args["size"]
        x = torch.linspace(-1, 1, side).view(1, 1, 1, -1).expand(batch, 1, side, side)  # channel 0: x along W
        y = torch.linspace(-1, 1, side).view(1, 1, -1, 1).expand(batch, 1, side, side)
        coords = torch.cat([x, y], 1).contiguous()
        return (coords, [torch.randn(batch, cips_args["style_dim"])]), {}

    cases["cips"] = (cips, cips_inputs, lambda out: out[0])

    _stub_missing("lmdb")
    _stub_missing("easydict", EasyDict=AttributeDict)
    (infinitygan_module,) = import_with_plain_ops(infinitygan_root, "models.custom_ops",
                                                  ["models.infinitygan_generator"])
    config = yaml.safe_load((infinitygan_root / "configs/model/InfinityGAN.yaml").read_text())
    if quick:
        config["train_params"].update(global_latent_dim=64, local_latent_dim=32, channel_multiplier=1)
    config["var"] = {}
    config = AttributeDict.of(config)
    torch.manual_seed(0)
    infinitygan = infinitygan_module.InfinityGanGenerator(config)
    params = config.train_params
    window = params.ts_input_size + 2 * params.ss_n_layers * params.ss_unfold_radius  # 35
    noise_sizes = [19, 17, 31, 29, 55, 53, 103, 101]  # 11 -> 101 through the padding-free texture synthesizer

    def infinitygan_inputs(batch, generator):
        global_latent = torch.randn(batch, params.global_latent_dim)
        return (), dict(global_latent=torch.stack([global_latent, global_latent], 1),
                        local_latent=torch.randn(batch, params.local_latent_dim, window, window),
                        override_coords=torch.rand(batch, params.coord_num_dir, window, window) * 2 - 1,
                        noises=[torch.randn(batch, 1, s, s) for s in noise_sizes], disable_dual_latents=True)

    cases["infinitygan"] = (infinitygan, infinitygan_inputs, lambda out: out["gen"])
    return cases


def official_worker(spec: dict) -> None:
    import torch

    quick = spec["quick"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    emit({"kind": "environment", "side": "official", "torch": torch.__version__,
          "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"})
    cases = official_cases(Path(spec["official_root"]), quick)
    wait = (lambda out: torch.cuda.synchronize()) if device.type == "cuda" else (lambda out: None)
    for model, (generator, make_inputs, output) in cases.items():
        if model not in spec["models"]:
            continue
        generator = generator.to(device).eval()
        for precision in [p for p in spec["precisions"] if p in OFFICIAL_PRECISIONS]:
            tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            for batch in QUICK_BATCHES if quick else BATCHES[model]:
                base = {"kind": "generator", "side": "official", "model": model, "precision": precision,
                        "batch": batch}
                try:
                    torch.manual_seed(batch)
                    args, kwargs = make_inputs(batch, generator)
                    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else (  # noqa: E731
                        [move(x) for x in v] if isinstance(v, list) else v)
                    args, kwargs = move(list(args)), {k: move(v) for k, v in kwargs.items()}
                    with torch.inference_mode():
                        out = output(generator(*args, **kwargs))
                        timing = time_calls(lambda: output(generator(*args, **kwargs)), wait, quick)
                    emit({**base, **timing, "output_shape": list(out.shape),
                          "output_finite": bool(torch.isfinite(out).all())})
                except Exception as error:
                    emit({**base, "error": f"{type(error).__name__}: {str(error)[:500]}"})
                finally:
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
        generator.cpu()


# -- parent -----------------------------------------------------------------------------------
def run_child(side: str, spec: dict, timeout: float) -> tuple[list[dict], str | None]:
    """Run one side in its own process (its own device memory); returns its rows and an error, if any.

    Rows stream back as they are measured, so a child that dies or runs out of time keeps
    what it measured."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("KERAS_BACKEND", "jax")
    command = [sys.executable, "-m", "bench.gpu", "--worker", json.dumps({**spec, "side": side})]
    rows, tail = [], []
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        try:
            for line in proc.stdout:
                if line.startswith(ROW_MARK):
                    row = json.loads(line[len(ROW_MARK):])
                    rows.append(row)
                    print(f"  [{side} {time.perf_counter() - start:5.0f} s] {describe(row)}", file=sys.stderr,
                          flush=True)
                else:
                    tail = (tail + [line.rstrip()])[-40:]
                if time.perf_counter() - start > timeout:
                    proc.kill()
                    return rows, f"stopped after {timeout:.0f} s"
        finally:
            proc.wait()
    error = None if proc.returncode == 0 else f"exit {proc.returncode}: " + "\n".join(tail[-15:])
    return rows, error


def describe(row: dict) -> str:
    if row["kind"] == "environment":
        return json.dumps(row)
    if "error" in row:
        return f"{row.get('model')} {row.get('precision')} batch {row.get('batch')}: {row['error'][:200]}"
    what = row.get("model") or row.get("what") or f"matmul {row.get('size')}^3"
    return (f"{what} {row.get('precision', '')} batch {row.get('batch', '-')}: "
            f"{row['s_per_call'] * 1e3:.2f} ms/call")


def official_problem(root: Path | None) -> str | None:
    """Why the official side cannot run here, or None."""
    if root is None:
        return "no --official-root given"
    missing = [p for p in ("CIPS/model/GeneratorsCIPS.py", "infinityGAN/models/infinitygan_generator.py")
               if not (root / p).is_file()]
    if missing:
        return f"official repositories absent: {', '.join(str(root / p) for p in missing)} not found"
    try:
        importlib.import_module("torch")
    except ImportError:
        return "PyTorch is not installed"
    return None


def summarize(rows: list[dict], quick: bool) -> tuple[list[dict], dict]:
    """Table rows (throughput, TFLOP/s, fractions, x official) and the goals."""
    peaks = {r["precision"]: r["tflop_per_s"] for r in rows if r["kind"] == "matmul"}
    official = {(r["model"], r["precision"], r["batch"]): r for r in rows
                if r["kind"] == "generator" and r["side"] == "official" and "error" not in r}
    xla_gflop = {}
    for r in rows:
        if r["kind"] == "generator" and r.get("xla_gflop_per_item") and r["precision"] == "float32":
            xla_gflop.setdefault(r["model"], r["xla_gflop_per_item"])
    table = []
    for r in rows:
        if r["kind"] != "generator":
            continue
        row = dict(r, what=WHAT[r["model"]] + (" (tiny preset)" if quick else ""),
                   implementation="tfcoord, Keras-JAX" if r["side"] == "tfcoord" else "official PyTorch")
        if "error" not in r:
            gflop = xla_gflop.get(r["model"]) if quick else SPEC_GFLOP.get(r["model"], xla_gflop.get(r["model"]))
            row["per_s"] = r["batch"] / r["s_per_call"]
            row["ms_per_call"] = r["s_per_call"] * 1e3
            if gflop:
                row["gflop_per_item"] = gflop
                row["tflop_per_s"] = row["per_s"] * gflop / 1e3
                if peaks.get("bf16"):
                    row["fraction_of_bf16_peak"] = row["tflop_per_s"] / peaks["bf16"]
            reference = official.get((r["model"], r["precision"], r["batch"]))
            if r["side"] == "tfcoord" and reference and not quick:  # quick: the official sizes differ
                row["x_official"] = reference["s_per_call"] / r["s_per_call"]
        table.append(row)
    goals = {}
    for model in () if quick else ("cips", "infinitygan"):  # the goals are for the paper sizes
        ours = {(r["precision"], r["batch"]): r for r in table
                if r["model"] == model and r["side"] == "tfcoord" and "error" not in r}
        if not ours:
            continue
        batches = sorted({b for _, b in ours})
        speedups = {b: ours[("float32", b)].get("x_official") for b in batches if ("float32", b) in ours}
        met = None if not speedups or None in speedups.values() else all(
            s >= GOAL_FP32_SPEEDUP for s in speedups.values())
        goals[f"{model}_float32_vs_official"] = {"goal": f">= {GOAL_FP32_SPEEDUP}x at every batch",
                                                 "speedup_by_batch": speedups, "met": met}
        largest = ours.get(("bf16", batches[-1]), {})
        fraction = largest.get("fraction_of_bf16_peak")
        goals[f"{model}_bf16_fraction_of_peak"] = {
            "goal": f">= {GOAL_BF16_FRACTION:.0%} of the bf16 matmul peak at batch {batches[-1]}",
            "fraction": fraction, "per_s": largest.get("per_s"),
            "met": None if fraction is None else fraction >= GOAL_BF16_FRACTION}
    return table, goals


COLUMNS = [("workload", "what", "s"), ("implementation", "implementation", "s"), ("precision", "precision", "s"),
           ("batch", "batch", "d"), ("ms/call", "ms_per_call", ".2f"), ("per s", "per_s", ".1f"),
           ("TFLOP/s", "tflop_per_s", ".1f"), ("of bf16 peak", "fraction_of_bf16_peak", ".0%"),
           ("x official", "x_official", ".2f"), ("compile s", "compile_s", ".1f"), ("error", "error", "s")]


def report_text(table, goals, rows, notes) -> str:
    from bench.common import markdown_table

    peaks = [dict(r, ms_per_call=r["s_per_call"] * 1e3) for r in rows if r["kind"] == "matmul"]
    peak_table = markdown_table(peaks, [("plain matmul", "size", "d"), ("precision", "precision", "s"),
                                        ("ms", "ms_per_call", ".3f"), ("TFLOP/s", "tflop_per_s", ".1f")])
    profile = [r for r in rows if r["kind"] == "profile"]
    lines = [markdown_table(table, COLUMNS), peak_table]
    for r in profile:
        generator = next((g for g in table if (g["model"], g["side"], g["precision"], g["batch"])
                          == ("cips", "tfcoord", "bf16", r["batch"]) and "error" not in g), None)
        share = (f"; the generator takes {generator['ms_per_call']:.2f} ms at that batch, so its matmuls alone are "
                 f"{r['s_per_call'] * 1e3 / generator['ms_per_call']:.0%} of its time") if generator else ""
        lines.append(f"Profile: {r['what']} at batch {r['batch']}: {r['s_per_call'] * 1e3:.2f} ms "
                     f"({r['gflop_per_image']:.1f} GFLOP/image, {r['tflop_per_s']:.1f} TFLOP/s){share}.")
    for name, goal in goals.items():
        verdict = {True: "met", False: "NOT met", None: "not measured"}[goal["met"]]
        figure = (", ".join(f"batch {b}: {s:.2f}x" if s else f"batch {b}: -" for b, s in
                            goal["speedup_by_batch"].items()) if "speedup_by_batch" in goal else
                  (f"{goal['fraction']:.0%} ({goal['per_s']:.0f}/s)" if goal["fraction"] is not None else "-"))
        lines.append(f"Goal {name} ({goal['goal']}): {verdict}; {figure}")
    lines += notes
    return "\n\n".join(lines)


def main(argv=None):
    parser = cli.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny presets at batch 2, one call per trial "
                        "(a smoke test; runs on CPU)")
    parser.add_argument("--official-root", type=Path, default=None,
                        help="folder holding the official repositories CIPS/ (saic-mdal/CIPS) and infinityGAN/ "
                             "(hubert0527/infinityGAN); without it only tfcoord is timed")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="comma-separated subset of " + ", ".join(PRECISIONS))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each side")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu.json", help="JSON output")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one side, print its rows
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        return (tfcoord_worker if spec["side"] == "tfcoord" else official_worker)(spec)
    models = [m for m in args.models.split(",") if m]
    precisions = [p for p in args.precisions.split(",") if p]
    if unknown := sorted(set(models) - set(MODELS)):
        raise UserError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if unknown := sorted(set(precisions) - set(PRECISIONS)):
        raise UserError(f"--precisions: unknown {', '.join(unknown)}; choose from {', '.join(PRECISIONS)}")
    spec = {"quick": args.quick, "models": models, "precisions": precisions,
            "official_root": str(args.official_root.resolve()) if args.official_root else None}
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    notes, errors = [], {}
    print("tfcoord generators on Keras-JAX ...", file=sys.stderr, flush=True)
    rows, errors["tfcoord"] = run_child("tfcoord", spec, args.timeout)
    problem = official_problem(args.official_root)
    if problem:
        notes.append(f"Official PyTorch generators: not run ({problem}).")
        print(f"official PyTorch generators: not run ({problem})", file=sys.stderr, flush=True)
    elif not {"cips", "infinitygan"} & set(models):
        notes.append("Official PyTorch generators: not run (only CIPS and InfinityGAN have official PyTorch code).")
    else:
        print("official PyTorch generators ...", file=sys.stderr, flush=True)
        official_rows, errors["official"] = run_child("official", spec, args.timeout)
        rows += official_rows
    for side, error in errors.items():
        if error:
            notes.append(f"{side} side stopped: {error}")
    environment = [r for r in rows if r["kind"] == "environment"]
    rows = [r for r in rows if r["kind"] != "environment"]
    table, goals = summarize(rows, args.quick)
    notes.append("tfcoord rows: tfcoord's model code run by Keras " + ", ".join(
        f"{k} {v}" for e in environment if e["side"] == "tfcoord" for k, v in e.items()
        if k in ("keras", "jax", "device")) + " (jax.jit of stateless_call), not the TensorFlow runtime. "
        "float32 = highest matmul/conv precision, tf32 = TensorFloat-32, bf16 = mixed_bfloat16 (CIPS's "
        "coordinate layers in float32: see tfcoord_case). "
        "COCO-GAN and GAWWN have no official PyTorch generator (TF1 and Lua Torch).")
    notes.append("Compute per image: " + ("XLA's count (tiny presets)" if args.quick else
                 "CIPS 445.84 GFLOP, InfinityGAN 97.36 GFLOP per patch (models.md); others XLA's count") +
                 "; 'of bf16 peak' = that throughput over the plain bf16 matmul's TFLOP/s, for every precision.")
    print(report_text(table, goals, rows, notes))
    payload = {"benchmark": "gpu", "quick": args.quick, "started": started,
               "machine": {"host": platform.node(), "python": platform.python_version(),
                           "environment": environment, "gpu": _nvidia_smi()},
               "spec": spec, "goals": goals, "table": table, "rows": rows, "notes": notes}
    from bench.common import write_json

    print(f"\nwrote {write_json(args.out, payload)}")


def _nvidia_smi() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(cli.run(main))
