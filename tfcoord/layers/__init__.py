"""Keras 3 layers shared by the tfcoord models."""

from tfcoord.layers.conditional_norm import ConditionalBatchNorm
from tfcoord.layers.spectral_norm import SNConv2D, SNDense

__all__ = ["ConditionalBatchNorm", "SNConv2D", "SNDense"]
