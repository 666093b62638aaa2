"""Dtype helpers of the networks under mixed precision (``train.precision``; tfcoord.training.precision)."""

from __future__ import annotations

import keras
from keras import ops


def to_float32(x):
    """``x`` as float32 when it is half precision (other dtypes pass): images leaving a generator, network
    outputs before losses and penalties."""
    return ops.cast(x, "float32") if keras.backend.standardize_dtype(x.dtype) in ("bfloat16", "float16") else x
