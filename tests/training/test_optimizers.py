"""PyTorchAdam takes torch.optim.Adam's steps, which Keras's Adam does not for small gradients."""

import keras
import numpy as np
import pytest

from tfcoord.training.optimizers import PyTorchAdam

LR, BETA_1, BETA_2, EPS = 2e-3, 0.0, 0.99, 1e-8
# Gradients from round-off size to large, over three steps.
GRADIENTS = np.array([[1e-9, -1e-7, 1e-5, 0.3], [2e-9, 1e-7, -1e-5, 0.1], [0.0, 3e-7, 1e-5, -0.2]], np.float32)


def torch_adam_steps(gradients):
    """torch.optim.Adam (amsgrad off, no weight decay), as documented, in float64."""
    p, m, v, out = np.zeros(gradients.shape[1]), 0.0, 0.0, []
    for t, g in enumerate(gradients.astype(np.float64), start=1):
        m = BETA_1 * m + (1 - BETA_1) * g
        v = BETA_2 * v + (1 - BETA_2) * g * g
        p = p - LR / (1 - BETA_1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - BETA_2 ** t) + EPS)
        out.append(p)
    return np.array(out)


def keras_steps(optimizer):
    variable = keras.Variable(np.zeros(GRADIENTS.shape[1], np.float32))
    out = []
    for g in GRADIENTS:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
        out.append(np.asarray(variable.numpy(), np.float64))
    return np.array(out)


def test_pytorch_adam_takes_torch_adams_steps_where_keras_adam_does_not():
    expected = torch_adam_steps(GRADIENTS)
    ours = keras_steps(PyTorchAdam(LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPS))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-9)
    # Keras's epsilon acts as eps / sqrt(1 - beta_2^t): the 1e-7 gradient moves its weight 0.5 lr, not 0.9 lr.
    keras_adam = keras_steps(keras.optimizers.Adam(LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPS))
    assert abs(keras_adam[0, 1] - expected[0, 1]) > 0.3 * LR
    np.testing.assert_allclose(keras_adam[:, 3], expected[:, 3], rtol=1e-5)  # large gradients: the same step


def test_pytorch_adam_refuses_amsgrad():
    with pytest.raises(ValueError, match="amsgrad"):
        PyTorchAdam(amsgrad=True)
