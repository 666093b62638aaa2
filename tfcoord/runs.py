"""Opening a trained run directory for generation or export."""

from __future__ import annotations

from pathlib import Path

from tfcoord.config import load_run_config
from tfcoord.errors import UserError
from tfcoord.models import model_class, section_classes
from tfcoord.training.checkpoints import restore_networks_from_run


def load_run(run_dir, precision: str = "float32"):
    """The model of ``run_dir`` with its networks restored from the newest checkpoint.

    ``precision``: the dtype policy the networks are built with (``--precision`` of generate and
    export.saved_model), float32 by default whatever the run trained in: checkpoints hold float32
    weights in every precision. Returns ``(model, checkpoint_path)``.
    """
    from tfcoord.config import PRECISIONS

    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; pass the --out folder of a training run")
    config = load_run_config(run_dir, section_classes)
    config.train.precision = precision  # how this process computes, not how the run trained
    model = model_class(config.model_type)(config)
    model.build_networks()
    # The newest intact checkpoint: a damaged newer one is skipped with a warning.
    path = restore_networks_from_run(model.network_items(), run_dir)
    return model, path
