"""Mixed precision (``train.precision``): Keras dtype policies, loss scaling, float32 where numerics need it.

``float32`` (the default and the papers' setting), ``mixed_bfloat16`` or ``mixed_float16``: under a
mixed policy, layers compute in bfloat16/float16 while every variable stays float32 (the master weights:
Keras casts them to the compute dtype when a layer reads them), so the optimiser state, the EMA, batch-norm
recorders and spectral-norm ``u`` are float32 in every precision, and a checkpoint written in one precision
restores in any other. What the papers' numerics need is computed in float32 whatever the policy:

* losses and their reductions: discriminator logits and generator images are cast to float32
  (:func:`to_float32`) before any loss, R1 or gradient penalty;
* demodulation, normalisation statistics and spectral-norm power iterations (the layers cast them);
* coordinate embeddings whose indices or frequencies would be rounded (CIPS' coordinate layers).

float16 also needs loss scaling (its smallest normal number is 6e-5, gradients of a GAN are often
smaller): :func:`loss_scaled` wraps an optimizer in ``keras.optimizers.LossScaleOptimizer``, and training
steps differentiate ``optimizer.scale_loss(loss)`` (the identity for other optimizers); the wrapper's
``apply_gradients`` divides the gradients by the scale and skips (and halves the scale on) steps whose
gradients are not finite.
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from tfcoord.config import PRECISIONS
from tfcoord.layers.dtypes import to_float32


def compute_dtype(precision: str) -> str:
    """The dtype layers compute in under ``precision``."""
    return {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[precision]


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Layers created inside take ``precision`` as their dtype policy; the global policy is restored after.

    A Keras layer reads the global policy when it is constructed, so networks must be built (every
    sublayer created) inside; the policy does not leak into later runs or tests.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":  # the default: build exactly as without this scope (a caller's float64 policy too)
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# The first loss scale. Keras's default, 2^15, suits losses of order 1; these GANs weight terms by 10 to 100
# (COCO-GAN's spatial loss x 100, gradient penalties x 10, lazy R1 x 16), so gradients at the networks' outputs
# reach ~100 and 2^15 overflows float16 (65 504): measured, the tiny COCO-GAN skipped its first 3+ steps of G
# and D while the scale halved. 2^8 lifts gradients of 1e-5 (CIPS's mapping network) well into float16's
# normal range and overflowed no tiny preset; the dynamic scale still doubles after 2 000 finite steps.
INITIAL_LOSS_SCALE = 2.0**8


def loss_scaled(optimizer, precision: str):
    """``optimizer`` wrapped in Keras's dynamic loss scaling under ``mixed_float16``; unchanged otherwise."""
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=INITIAL_LOSS_SCALE)
    return optimizer


def inner_optimizer(optimizer):
    """The optimizer that owns the update rule and its slots (the wrapped one of a LossScaleOptimizer)."""
    return optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer


def _loss_scale(optimizer, dtype):
    return ops.cast(optimizer.dynamic_scale, dtype)


def scaled_gradients(tape, loss, variables, optimizer):
    """``tape.gradient(loss, variables)``, times the optimizer's loss scale when it has one.

    The scale enters as the output gradient (the same as differentiating ``scale * loss``, without
    recording the product on the tape); the LossScaleOptimizer's ``apply_gradients`` divides it out.
    Without loss scaling this is exactly ``tape.gradient(loss, variables)``.
    """
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tape.gradient(loss, variables)
    return tape.gradient(loss, variables, output_gradients=_loss_scale(optimizer, loss.dtype))


def minimize(optimizer, tape, loss, variables):
    """One update of ``variables`` down the gradient of ``loss`` recorded on ``tape`` (loss-scaled in float16);
    variables the loss does not reach (e.g. D's last bias under R1) are left out of the update."""
    gradients = scaled_gradients(tape, loss, variables, optimizer)
    optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])


def input_gradient(tape, output, inputs, optimizer):
    """``tape.gradient(output, inputs)`` for R1 and gradient penalties, scaled against float16 underflow.

    The backward pass runs through the float16 layers like the loss's does; the optimizer's loss scale
    enters as the output gradient and the float32 result is divided by it again, so small input gradients
    stay representable. Exactly ``tape.gradient(output, inputs)`` for optimizers without loss scaling.
    """
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tape.gradient(output, inputs)
    scale = _loss_scale(optimizer, output.dtype)
    gradient = tape.gradient(output, inputs, output_gradients=ops.ones_like(output) * scale)
    return to_float32(gradient) / scale
