"""The interface every model offers to the trainer, the generator CLI and the exporter.

The trainer never branches on a model's name: it builds the model inside the
distribution strategy's scope, feeds it batches enriched by :meth:`step_inputs`,
runs :meth:`train_step` on every replica and checkpoints :meth:`checkpoint_items`.
"""

from __future__ import annotations

import numpy as np


class CoordinateGan:
    """Base class of tfcoord models.

    Subclasses set ``name`` and implement the methods below. ``config`` is the
    resolved :class:`tfcoord.config.RunConfig`.
    """

    name: str = ""

    def __init__(self, config):
        self.config = config

    def image_size(self) -> tuple[int, int]:
        """(height, width) of the real images the data pipeline must deliver."""
        raise NotImplementedError

    def build_networks(self) -> None:
        """Create the networks only (what generation and export need)."""
        raise NotImplementedError

    def build(self) -> None:
        """Create networks and optimizers; the trainer calls this inside ``strategy.scope()``."""
        raise NotImplementedError

    def step_inputs(self, step, global_batch_size: int) -> dict:
        """Random inputs of one training step for the whole global batch (TensorFlow ops).

        Derived statelessly from (seed, step), so a resumed run draws what the
        uninterrupted run would have drawn, and every replica count splits the same
        global batch. Every value has the batch on axis 0.
        """
        raise NotImplementedError

    def train_step(self, batch: dict, global_batch_size: int) -> dict:
        """One training iteration on this replica's share of the batch.

        Returns scalar losses already divided by the *global* batch size, so that the
        trainer's sum over replicas is the global mean.
        """
        raise NotImplementedError

    def after_step(self) -> None:
        """Cross-replica work after each step (e.g. an EMA update). Default: nothing."""
        return None

    def checkpoint_items(self) -> dict:
        """Trackable objects saved in a training checkpoint (networks and optimizers)."""
        raise NotImplementedError

    def network_items(self) -> dict:
        """The networks alone (what ``--init-from`` and generation restore)."""
        raise NotImplementedError

    def sample_images(self, seed: int, num: int) -> np.ndarray:
        """``num`` generated images in [-1, 1], (num, H, W, 3), for sample grids."""
        raise NotImplementedError

    # -- export (see export/ and tensorflow.md §12-13) ----------------------------------------
    def serving_functions(self) -> dict:
        """Serving signatures: ``{name: tf.function}`` with named ``input_signature`` TensorSpecs
        (dynamic batch, and dynamic patch size where the model allows) returning a dict whose
        image output is named ``rgb``. ``generate_patch`` is required (the exporter also
        registers it as ``serving_default``); models with a mapping network add ``map_latent``.
        Noise, if any, is an explicit input: random ops in a serving graph break tiling.
        """
        raise NotImplementedError

    def serving_description(self) -> dict:
        """JSON-serialisable asset describing the model for clients that tile without tfcoord:
        model type, patch size, latent shapes, coordinate system, and how to build the inputs
        of tile (i, j)."""
        raise NotImplementedError

