"""Opening a trained run directory for generation or export."""

from __future__ import annotations

from pathlib import Path

from tfcoord.config import load_run_config
from tfcoord.errors import UserError
from tfcoord.models import model_class, section_classes
from tfcoord.training.checkpoints import latest_checkpoint, restore_networks


def load_run(run_dir):
    """The model of ``run_dir`` with its networks restored from the newest checkpoint.

    Returns ``(model, checkpoint_path)``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; pass the --out folder of a training run")
    config = load_run_config(run_dir, section_classes)
    model = model_class(config.model_type)(config)
    model.build_networks()
    path = latest_checkpoint(run_dir)
    restore_networks(model.network_items(), path)
    return model, path
