"""Checkpoints of a run: ``tf.train.CheckpointManager`` behind a small interface.

TensorFlow writes a checkpoint's files first and then replaces the ``checkpoint``
index file by an atomic rename, so a process killed mid-write leaves the index
pointing at the previous complete checkpoint: a checkpoint is never half-visible.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfcoord.errors import UserError


class CheckpointKeeper:
    """Saves and restores ``step`` plus the model's trackables in ``directory``."""

    def __init__(self, directory, step, max_to_keep: int = 3, **trackables):
        self.directory = Path(directory)
        self.step = step
        self.checkpoint = tf.train.Checkpoint(step=step, **trackables)
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
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            raise UserError(f"checkpoint {path} does not match this model ({str(err).splitlines()[0]}); "
                            "resume with the configuration the run was trained with") from None
        return path


def latest_checkpoint(run_dir) -> str:
    """Path prefix of a run's newest checkpoint, or a UserError saying the run has none."""
    path = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    if path is None:
        raise UserError(f"{run_dir} has no checkpoint yet; train it first (python -m tfcoord.train ... --out {run_dir})")
    return path
