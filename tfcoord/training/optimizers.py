"""Optimizers whose update rule follows the official code of a paper rather than Keras's.

PyTorch's ``torch.optim.Adam`` (the official optimiser of StyleGAN2-based models: CIPS,
InfinityGAN) and Keras's ``Adam`` add epsilon at different places::

    PyTorch: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    Keras:   p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

so Keras's epsilon acts as ``eps / sqrt(1 - b2^t)`` in PyTorch terms: about 10x larger at
the first step with ``b2 = 0.99``, tending to ``eps`` after a few hundred steps. With
``b1 = 0`` the first update is ``lr g / (|g| + eps)``, so a gradient element of 1e-7 moves
its weight by 0.9 lr in PyTorch and by 0.5 lr in Keras (eps 1e-8).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfcoord")
class PyTorchAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``torch.optim.Adam``'s epsilon placement (see the module docstring).

    Same arguments and slot variables as Keras's Adam (checkpoints are interchangeable);
    ``amsgrad`` is not supported.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("PyTorchAdam does not implement amsgrad")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        bias_correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias_correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias_correction_2)), self.epsilon)
        step_size = ops.cast(learning_rate, dtype) / bias_correction_1
        self.assign_sub(variable, ops.divide(ops.multiply(m, step_size), denominator))
