"""Training faults, patched into a ``tfcoord.train`` process from outside (nothing in tfcoord reads them).

A test passes :func:`child_prefix` as ``run_module(..., python_prefix=...)``: the child
imports this module and installs the patches before ``tfcoord.train`` starts.

* :func:`nan_images_at_step` -- the images of step N become NaN, once per process (like a
  real glitch: after ``train.on_nonfinite=restore`` the replayed step N is clean). Wraps the
  trainer's step function, so the compiled training step itself is unchanged.
* :func:`kill_while_writing_checkpoint` -- SIGKILL after TensorFlow wrote ``ckpt-N.*`` and
  before its manifest and the checkpoint list, as a power cut would.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child_prefix(*calls: str) -> str:
    """Python code for ``run_module(python_prefix=...)`` that runs ``calls`` (e.g. ``"nan_images_at_step(6)"``)."""
    lines = [f"import sys; sys.path.insert(0, {str(REPO)!r})", "from tests.support import faults"]
    return "\n".join(lines + [f"faults.{call}" for call in calls])


def nan_images_at_step(step: int) -> None:
    """Add NaN to every image of training step ``step``, the first time that step runs in this process."""
    from tfcoord.training.loop import Trainer

    step_function = Trainer._step_function  # AttributeError here if the trainer changes: update this patch
    fired = set()

    def step_function_with_fault(trainer):
        distributed_step = step_function(trainer)

        def step_with_fault(batch, current):
            if current == step and current not in fired:
                fired.add(current)
                batch = trainer.strategy.run(lambda rows: dict(rows, image=rows["image"] + math.nan), args=(batch,))
            return distributed_step(batch, current)

        return step_with_fault

    Trainer._step_function = step_function_with_fault


def kill_while_writing_checkpoint(step: int) -> None:
    """SIGKILL this process once checkpoint ``step``'s bundle is written, before its manifest."""
    from tfcoord.training import checkpoints

    write_manifest = checkpoints.write_manifest  # CheckpointKeeper.save calls it right after the bundle

    def write_manifest_or_die(prefix):
        if checkpoints.checkpoint_step(prefix) == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return write_manifest(prefix)

    checkpoints.write_manifest = write_manifest_or_die
