"""The interfaces models offer to the trainer, the generator CLI and the exporter.

:class:`TrainableModel` is what the trainer, checkpoints and the exporter need of every
model; :class:`CoordinateGan` adds what an image generator offers (sample images, a
per-patch ``generate_patch`` signature). The trainer never branches on a model's name: it
builds the model inside the distribution strategy's scope, feeds it batches enriched by
:meth:`~TrainableModel.step_inputs`, runs :meth:`~TrainableModel.train_step` on every
replica, checkpoints :meth:`~TrainableModel.checkpoint_items` and writes
:meth:`~TrainableModel.progress_image` now and then.
"""

from __future__ import annotations

import numpy as np


def step_seed(run_seed: int, step, split: int = 0):
    """The stateless seed (2,) int64 of training step ``step`` of a run seeded ``run_seed``, or
    with ``split`` that many independent seeds (split, 2) drawn from it.

    Every random draw of a step depends on (run seed, step) only, so a resumed run and
    every replica draw the same numbers as an uninterrupted single-device run.
    """
    import tensorflow as tf  # the training side is TensorFlow; keep the model interface importable without it

    seed = tf.stack([tf.constant(run_seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.experimental.stateless_split(seed, split) if split else seed


def finite_input(tensor, name: str):
    """``tensor``, or InvalidArgumentError "<name> must be finite (no NaN or Inf)": the check every serving
    signature applies to its float inputs (here, beside the serving contract all models implement)."""
    import tensorflow as tf

    return tf.debugging.assert_all_finite(tensor, f"{name} must be finite (no NaN or Inf)")


class TrainableModel:
    """What every tfcoord model offers: a trainable set of networks that exports.

    Subclasses set ``name`` and implement the methods below. ``config`` is the
    resolved :class:`tfcoord.config.RunConfig`.
    """

    name: str = ""
    # The serving signature the exporter also registers as ``serving_default``.
    default_signature: str = ""

    def __init__(self, config):
        self.config = config

    @property
    def precision(self) -> str:
        """``train.precision``: the dtype policy the networks are built with (float32 when unset)."""
        train = self.config.sections.get("train") if hasattr(self.config, "sections") else None
        return getattr(train, "precision", "float32")

    def dtype_policy_scope(self):
        """A context in which constructed layers take :attr:`precision` as their Keras dtype policy.

        ``build_networks`` builds every network inside it (tfcoord.training.precision).
        """
        from tfcoord.training.precision import dtype_policy

        return dtype_policy(self.precision)

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

    def step_variant(self, step: int):
        """Which compiled variant of the training step runs at (1-based) ``step``; default ``None``.

        A hashable value, e.g. ``"r1"`` every 16th step for lazy regularisation. The trainer
        traces one ``tf.function`` per distinct value and calls ``train_step(batch,
        global_batch_size, variant=value)`` for values other than ``None``; ``train_step`` may
        then branch in Python (the branch is fixed when that variant is traced).
        """
        return None

    def after_step(self) -> None:
        """Cross-replica work after each step (e.g. an EMA update). Default: nothing."""
        return None

    def checkpoint_items(self) -> dict:
        """Trackable objects saved in a training checkpoint (networks and optimizers)."""
        raise NotImplementedError

    def network_items(self) -> dict:
        """The networks alone (what ``--init-from`` and generation restore)."""
        raise NotImplementedError

    def progress_image(self, seed: int, num: int) -> np.ndarray:
        """The picture of training progress the trainer writes to ``samples/step_N.png`` and
        TensorBoard: (H, W, 3) uint8, ``num`` a hint of how much it shows."""
        raise NotImplementedError

    # -- export (see export/ and tensorflow.md §12-13) ----------------------------------------
    def serving_functions(self, patch_size: int | None = None) -> dict:
        """Serving signatures: ``{name: tf.function}`` with named ``input_signature`` TensorSpecs
        (dynamic batch, and dynamic patch size where the model allows), among them
        :attr:`default_signature`. An image generator's return a dict whose image output is named
        ``rgb`` and include ``generate_patch``; models with a mapping network add ``map_latent``.
        Noise, if any, is an explicit input: random ops in a serving graph break tiling.

        ``patch_size`` None keeps the patch size dynamic where the model allows; an int fixes
        it (``python -m export.tflite --patch P``); a model whose patch size is fixed raises
        UserError for any other value. Axis 0 of every input is the batch: the TFLite exporter
        retraces ``fn.python_function`` with that axis fixed. The exporter stores exactly the
        variables the traced functions read, once (tensorflow.md P2/P4).
        """
        raise NotImplementedError

    def serving_description(self) -> dict:
        """The model's :class:`tfcoord.serving.ServingDescription` as JSON (``.to_json()``): what
        clients read from ``assets/tfcoord_model.json``, the ``describe`` signature or the JSON beside a
        ``.tflite`` file. An image generator that tiles gives a :class:`~tfcoord.serving.Tiling`: the
        per-tile signature, tile size, anchor and one recipe per input, whose coordinate systems its
        spec registers (``ModelSpec.tile_coordinates``). The exporter adds the format, the traced
        input and output shapes and the parameter counts (schema: ``tfcoord.serving.SCHEMA``).
        """
        raise NotImplementedError


class CoordinateGan(TrainableModel):
    """A tfcoord image generator: sample images, and one patch (or image) per ``generate_patch`` call."""

    default_signature = "generate_patch"

    def sample_images(self, seed: int, num: int) -> np.ndarray:
        """``num`` generated images in [-1, 1], (num, H, W, 3), for sample grids and metrics."""
        raise NotImplementedError

    def progress_image(self, seed, num):
        """The grid of :meth:`sample_images`."""
        from tfcoord.images import image_grid

        return image_grid(self.sample_images(seed, num))

    # Optional interfaces of tfcoord.metrics.views (protocols: SamplesAnySize, HasFieldOfView,
    # HasPatchSize, SamplesPatches), implemented by the models that offer them.
