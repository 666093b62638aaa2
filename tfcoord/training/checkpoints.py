"""Checkpoints of a run: ``tf.train.CheckpointManager`` over an explicit map of variables.

Keras 3 keeps lists of sublayers in its own tracked lists, which TensorFlow's object
graph does not follow: a ``tf.train.Checkpoint(generator=G)`` silently drops every
variable of a layer held in a list (spectral-norm ``u``, batch-norm statistics) and
reaches the trainable ones only through the optimizer. So tfcoord checkpoints a flat
map ``"<item>.<variable path>" -> variable`` built by :func:`variable_map`, which
holds every weight of every network and every optimizer slot.

TensorFlow writes a checkpoint's files first and then replaces the ``checkpoint``
index file by an atomic rename, so a process killed mid-write leaves the index
pointing at the previous complete checkpoint: a checkpoint is never half-visible.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from tfcoord.errors import UserError


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def variable_map(items: dict) -> dict:
    """Flat ``{key: tf.Variable}`` of networks (by variable path) and optimizers (by slot index).

    Keys use '.' instead of '/' so that they are plain checkpoint dependency names.
    """
    variables = {}
    for item_name, item in items.items():
        if isinstance(item, keras.optimizers.Optimizer):
            pairs = [(str(i), v) for i, v in enumerate(item.variables)]
        elif isinstance(item, keras.layers.Layer):
            pairs = [(v.path, v) for v in item.weights]
        else:
            pairs = [("value", item)]
        for path, variable in pairs:
            key = f"{item_name}.{path}".replace("/", ".")
            if key in variables:
                raise ValueError(f"two variables share the checkpoint key {key!r}; give the layers unique names")
            variables[key] = _tf_variable(variable)
    return variables


def restore_networks(items: dict, path: str) -> None:
    """Restore the variables of ``items`` (networks only, no optimizers) from checkpoint ``path``."""
    try:
        tf.train.Checkpoint(**variable_map(items)).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise UserError(f"checkpoint {path} does not fit these networks ({str(err).splitlines()[0][:300]}); "
                        "use a run of the same architecture and configuration") from None


class CheckpointKeeper:
    """Saves and restores ``step`` plus the variables of the model's trackables in ``directory``."""

    def __init__(self, directory, step, max_to_keep: int = 3, **trackables):
        self.directory = Path(directory)
        self.step = step
        self.checkpoint = tf.train.Checkpoint(step=step, **variable_map(trackables))
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=max_to_keep,
                                                  checkpoint_name="ckpt")

    def save(self, step: int) -> str:
        if self.manager.latest_checkpoint and self.latest_step() == step:
            return self.manager.latest_checkpoint  # already saved at this step
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as err:
            raise UserError(f"could not write a checkpoint to {self.directory} ({str(err).splitlines()[0]}); "
                            "free disk space or fix the folder's permissions, then continue with --resume") from None

    def latest_step(self) -> int | None:
        path = self.manager.latest_checkpoint
        return int(path.rsplit("-", 1)[1]) if path else None

    def restore_latest(self) -> str | None:
        """Restore the newest checkpoint; returns its path, or None when there is none."""
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        try:
            self.checkpoint.restore(path).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            raise UserError(f"checkpoint {path} does not match this model ({str(err).splitlines()[0][:300]}); "
                            "resume with the configuration the run was trained with") from None
        return path


def latest_checkpoint(run_dir) -> str:
    """Path prefix of a run's newest checkpoint, or a UserError saying the run has none."""
    path = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    if path is None:
        raise UserError(f"{run_dir} has no checkpoint yet; train it first (python -m tfcoord.train ... --out {run_dir})")
    return path
