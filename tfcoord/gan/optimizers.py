"""StyleGAN2's lazy-regularisation Adam (Karras et al. 2020, appendix B); the official Torch7 scripts' step decay and
RMSprop (GAWWN, its text encoder)."""

from __future__ import annotations

import keras

from tfcoord.training.optimizers import PyTorchAdam


def lazy_regularization_adam(lr, beta_1, beta_2, epsilon, interval: int, adjust: bool = True):
    """Adam for a network regularised every ``interval`` steps: ``lr * c``, ``beta ** c``, c = k / (k + 1).

    ``adjust=False`` keeps lr and betas as given (c = 1). PyTorch's epsilon placement, as the official
    ``torch.optim.Adam`` of the StyleGAN2-based models (Keras's acts ~10x larger in the first steps and moves
    weights with small gradients, e.g. the mapping's, differently; see :mod:`tfcoord.training.optimizers`).
    """
    ratio = interval / (interval + 1.0) if adjust else 1.0
    return PyTorchAdam(lr * ratio, beta_1=beta_1 ** ratio, beta_2=beta_2 ** ratio, epsilon=epsilon)


def step_decay(lr, every: int, factor: float):
    """``lr * factor ** floor(step / every)``, as Torch scripts that decay the rate each epoch; ``every`` 0: ``lr``."""
    if not every:
        return lr
    return keras.optimizers.schedules.ExponentialDecay(lr, every, factor, staircase=True)


def torch_rmsprop(lr):
    """RMSprop as the official text encoder training: Torch7's ``optim.rmsprop`` with alpha 0.99, eps 1e-8."""
    return keras.optimizers.RMSprop(lr, rho=0.99, epsilon=1e-8)
