"""Checkpoints of a run: an explicit map of variables, written atomically and verified on load.

Keras 3 keeps lists of sublayers in its own tracked lists, which TensorFlow's object
graph does not follow: a ``tf.train.Checkpoint(generator=G)`` silently drops every
variable of a layer held in a list (spectral-norm ``u``, batch-norm statistics) and
reaches the trainable ones only through the optimizer. So tfcoord checkpoints a flat
map ``"<item>.<variable path>" -> variable`` built by :func:`variable_map`, which
holds every weight of every network and every optimizer slot.

Layout of ``checkpoints/`` (readable by ``tf.train.latest_checkpoint``)::

    ckpt-N.index, ckpt-N.data-*     TensorFlow's tensor bundle of step N
    ckpt-N.manifest.json            size and SHA-256 of each of those files
    checkpoint                      the list of complete checkpoints, newest last
    corrupt/                        checkpoints found damaged on resume (kept, never deleted)
    best/                           the best checkpoint by the periodic metric (optional)

A save writes the bundle (TensorFlow writes it to a temporary name and renames it),
flushes it to disk, writes the manifest, and only then lists the checkpoint in
``checkpoint`` by an atomic replace. A process killed at any moment therefore
leaves the list pointing at complete checkpoints only, and a write that fails (full
disk, size limit, permissions) leaves every listed checkpoint untouched.

Loading verifies the manifest (and TensorFlow's per-tensor CRC) and falls back to
the next older checkpoint, with a warning, when the newest one is damaged.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from tfcoord.errors import UserError, warn
from tfcoord.fileio import atomic_write_text, describe_write_error, file_sha256, fsync_directory

STATE_FILE = "checkpoint"
MANIFEST_SUFFIX = ".manifest.json"
QUARANTINE_FOLDER = "corrupt"
_PREFIX = re.compile(r"^ckpt-(\d+)$")
# Key part of the loss-scale state of a LossScaleOptimizer (train.precision=mixed_float16): checkpoints
# of other precisions lack it, and a run in another precision has no use for it (see CheckpointKeeper).
LOSS_SCALE_KEY = "loss_scale"


class CorruptCheckpoint(Exception):
    """A checkpoint's files are missing, truncated or altered."""


def variable_map(items: dict) -> dict:
    """Flat ``{key: tf.Variable}`` of networks (by variable path) and optimizers (by slot index).

    Keys use '.' instead of '/' so that they are plain checkpoint dependency names.
    """
    variables = {}
    for item_name, item in items.items():
        if isinstance(item, keras.optimizers.LossScaleOptimizer):
            # The wrapped optimizer's variables under the keys a float32 run gives them, so checkpoints
            # load across precisions; the loss scale and its growth counter apart.
            pairs = [(str(i), v) for i, v in enumerate(item.inner_optimizer.variables)]
            pairs += [(f"{LOSS_SCALE_KEY}.{v.name}", v) for v in (item.dynamic_scale, item.step_counter)]
        elif isinstance(item, keras.optimizers.Optimizer):
            pairs = [(str(i), v) for i, v in enumerate(item.variables)]
        elif isinstance(item, keras.layers.Layer):
            pairs = [(v.path, v) for v in item.weights]
        else:
            pairs = [("value", item)]
        for path, variable in pairs:
            key = f"{item_name}.{path}".replace("/", ".")
            if key in variables:
                raise ValueError(f"two variables share the checkpoint key {key!r}; give the layers unique names")
            variables[key] = variable.value if isinstance(variable, keras.Variable) else variable
    return variables


# -- files of one checkpoint --------------------------------------------------------------
def checkpoint_step(prefix) -> int:
    return int(str(prefix).rsplit("-", 1)[1])


def bundle_files(prefix) -> list[Path]:
    """The index and data shards TensorFlow wrote for ``prefix``."""
    prefix = Path(prefix)
    return sorted(prefix.parent.glob(f"{prefix.name}.index")) + sorted(prefix.parent.glob(f"{prefix.name}.data-*"))


def write_manifest(prefix) -> None:
    """Flush the bundle of ``prefix`` to disk and record each file's size and SHA-256."""
    prefix = Path(prefix)
    files = bundle_files(prefix)
    if not any(f.name.endswith(".index") for f in files):
        raise CorruptCheckpoint(f"{prefix}: TensorFlow wrote no index file")
    manifest = {"step": checkpoint_step(prefix),
                "files": {f.name: {"size": f.stat().st_size, "sha256": file_sha256(f, sync=True)} for f in files}}
    fsync_directory(prefix.parent)
    atomic_write_text(Path(f"{prefix}{MANIFEST_SUFFIX}"), json.dumps(manifest, indent=1))


def verify_files(prefix) -> bool:
    """Check ``prefix`` against its manifest: True when verified, False when it has no manifest.

    Raises:
        CorruptCheckpoint: a file is missing, has another size or another hash.
    """
    prefix = Path(prefix)
    manifest_path = Path(f"{prefix}{MANIFEST_SUFFIX}")
    if not manifest_path.is_file():
        if not Path(f"{prefix}.index").is_file():
            raise CorruptCheckpoint("its index file is missing")
        return False
    try:
        expected = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise CorruptCheckpoint(f"its manifest is unreadable ({err})") from None
    for name, entry in expected.items():
        path = prefix.parent / name
        if not path.is_file():
            raise CorruptCheckpoint(f"{name} is missing")
        if path.stat().st_size != entry["size"]:
            raise CorruptCheckpoint(f"{name} has {path.stat().st_size} bytes, {entry['size']} were written")
        if file_sha256(path) != entry["sha256"]:
            raise CorruptCheckpoint(f"{name} does not match its SHA-256")
    return True


def _delete_files(prefix) -> None:
    prefix = Path(prefix)
    for path in bundle_files(prefix) + [Path(f"{prefix}{MANIFEST_SUFFIX}")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(f"{prefix}_temp", ignore_errors=True)  # TensorFlow's staging folder of a failed write


# -- the list of checkpoints ----------------------------------------------------------
def listed_checkpoints(directory) -> list[str]:
    """Prefixes of the complete checkpoints in ``directory``, oldest first.

    Read from the ``checkpoint`` file; if that file is missing or unreadable while
    bundles exist, the list is rebuilt from the manifests on disk (with a warning).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except Exception as err:  # a damaged text proto raises parse errors of several types
        warn(f"{directory / STATE_FILE} is unreadable ({str(err).splitlines()[0][:200]}); "
              "rebuilding the checkpoint list from the manifests on disk")
        state = None
    if state is not None:
        paths = [str(directory / Path(p).name) for p in state.all_model_checkpoint_paths]
        if state.model_checkpoint_path and str(directory / Path(state.model_checkpoint_path).name) not in paths:
            paths.append(str(directory / Path(state.model_checkpoint_path).name))
        return sorted(set(paths), key=checkpoint_step)
    found = sorted((str(p)[:-len(MANIFEST_SUFFIX)] for p in directory.glob(f"ckpt-*{MANIFEST_SUFFIX}")
                    if _PREFIX.match(p.name[:-len(MANIFEST_SUFFIX)])), key=checkpoint_step)
    if found and not (directory / STATE_FILE).exists():
        warn(f"{directory} has no '{STATE_FILE}' list; using the {len(found)} checkpoint(s) with manifests")
    return found


def write_list(directory, prefixes: list[str]) -> None:
    """Atomically write the ``checkpoint`` list (TensorFlow's text format, relative names)."""
    lines = [f'model_checkpoint_path: "{Path(prefixes[-1]).name}"'] if prefixes else []
    lines += [f'all_model_checkpoint_paths: "{Path(p).name}"' for p in prefixes]
    atomic_write_text(Path(directory) / STATE_FILE, "\n".join(lines) + "\n")


# -- restoring ------------------------------------------------------------------------
_MISMATCH_ERRORS = (AssertionError, ValueError)
SAME_NETWORKS_HINT = ("use a run of the same architecture and configuration (a run of an older tfcoord whose "
                      "networks named their variables differently must be trained again)")
_READ_ERRORS = (tf.errors.OpError, IndexError, OSError, UnicodeDecodeError, EOFError)


def _restore_first_good(prefixes, restore, *, on_corrupt, mismatch_message):
    """Try ``restore(prefix)`` newest first; damaged checkpoints go to ``on_corrupt(prefix, reason)``.

    Returns the prefix restored, or raises a UserError when none could be.
    """
    problems = []
    for prefix in reversed(prefixes):
        try:
            verified = verify_files(prefix)
        except CorruptCheckpoint as err:
            problems.append((prefix, str(err)))
            on_corrupt(prefix, str(err))
            continue
        try:
            restore(prefix)
        except _MISMATCH_ERRORS as err:
            raise UserError(mismatch_message(prefix, err)) from None
        except _READ_ERRORS as err:
            if verified:  # intact files that cannot be restored do not fit the model
                raise UserError(mismatch_message(prefix, err)) from None
            reason = (err.message if isinstance(err, tf.errors.OpError) else str(err)).splitlines()[0][:200]
            problems.append((prefix, f"unreadable: {reason or type(err).__name__}"))
            on_corrupt(prefix, problems[-1][1])
            continue
        if problems:
            warn(f"restored {Path(prefix).name} instead (step {checkpoint_step(prefix)}); "
                  f"{len(problems)} newer checkpoint(s) were damaged")
        return prefix
    details = "; ".join(f"{Path(p).name}: {reason}" for p, reason in problems)
    raise UserError(f"every checkpoint in {Path(prefixes[-1]).parent} is damaged ({details}); "
                    "restore the folder from a backup or start a new run")


def _networks_do_not_fit(prefix, err) -> str:
    return (f"checkpoint {prefix} does not fit these networks ({str(err).splitlines()[0][:300]}); "
            + SAME_NETWORKS_HINT)


def restore_networks(items: dict, path: str) -> None:
    """Restore the variables of ``items`` (networks only, no optimizers) from checkpoint ``path``."""
    try:
        tf.train.Checkpoint(**variable_map(items)).restore(path).expect_partial().assert_existing_objects_matched()
    except _MISMATCH_ERRORS + (tf.errors.OpError,) as err:
        raise UserError(_networks_do_not_fit(path, err)) from None


def restore_networks_from_run(items: dict, run_dir) -> str:
    """Restore networks from the newest intact checkpoint of ``run_dir``; returns its prefix.

    Damaged checkpoints are skipped with a warning (and left in place: a reader does not
    change the run). Raises a UserError when the run has none.
    """
    prefixes = listed_checkpoints(Path(run_dir) / "checkpoints")
    if not prefixes:
        raise UserError(f"{run_dir} has no checkpoint yet; train it first (python -m tfcoord.train ... --out {run_dir})")
    variables = variable_map(items)

    def restore(prefix):
        tf.train.Checkpoint(**variables).restore(prefix).expect_partial().assert_existing_objects_matched()

    return _restore_first_good(
        prefixes, restore, mismatch_message=_networks_do_not_fit,
        on_corrupt=lambda p, reason: warn(f"checkpoint {p} is damaged ({reason}); trying the previous one"))


class CheckpointKeeper:
    """Saves and restores ``step`` plus the variables of the model's trackables in ``directory``."""

    def __init__(self, directory, step, max_to_keep: int = 3, move_damaged: bool = True, **trackables):
        self.directory = Path(directory)
        # False for a reader of another process's folder (a multi-worker job's non-chief workers):
        # a damaged checkpoint is skipped but left where it is, for its owner to move.
        self.move_damaged = move_damaged
        self.step = step
        self.max_to_keep = max_to_keep
        self.variables = variable_map(trackables)
        self.checkpoint = tf.train.Checkpoint(step=step, **self.variables)
        # Readers' Checkpoint objects create a save counter when they restore; writing one keeps
        # assert_existing_objects_matched() satisfied (write(), unlike save(), does not create it).
        _ = self.checkpoint.save_counter
        self.prefixes = listed_checkpoints(self.directory)

    def latest_step(self) -> int | None:
        return checkpoint_step(self.prefixes[-1]) if self.prefixes else None

    def save(self, step: int) -> str:
        """Write checkpoint ``step``; a failed write raises a UserError and leaves earlier checkpoints intact."""
        if self.prefixes and self.latest_step() == step:
            return self.prefixes[-1]  # already saved at this step
        prefix = str(self.directory / f"ckpt-{step}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.checkpoint.write(prefix)
            write_manifest(prefix)
            kept = ([p for p in self.prefixes if p != prefix] + [prefix])[-self.max_to_keep:]
            write_list(self.directory, kept)
        except (OSError, tf.errors.OpError, CorruptCheckpoint) as err:
            with contextlib.suppress(OSError):
                _delete_files(prefix)
            last = self.latest_step()
            kept_note = (f"the earlier checkpoints are intact (newest: step {last})" if last is not None
                         else "no earlier checkpoint exists")
            raise UserError(f"could not write checkpoint step {step} to {self.directory} "
                            f"({describe_write_error(err)}); {kept_note}; then continue with --resume") from None
        for old in self.prefixes:
            if old not in kept:
                try:
                    _delete_files(old)
                except OSError as err:  # an old checkpoint we cannot delete costs space, not the run
                    warn(f"could not delete the old checkpoint {old} ({err})")
        self.prefixes = kept
        return prefix

    def restore_latest(self) -> str | None:
        """Restore the newest intact checkpoint; returns its prefix, or None when there is none.

        A damaged checkpoint is moved to ``corrupt/`` (with a warning) and the next older
        one is tried; a checkpoint that does not fit the model is a UserError.
        """
        if not self.prefixes:
            return None

        def restore(prefix):
            self._checkpoint_for(prefix).restore(prefix).assert_consumed()

        return _restore_first_good(
            list(self.prefixes), restore, on_corrupt=self._quarantine,
            mismatch_message=lambda p, err: (f"checkpoint {p} does not match this model "
                                             f"({str(err).splitlines()[0][:300]}); "
                                             "resume with the configuration the run was trained with"))

    def _checkpoint_for(self, prefix):
        """What restores ``prefix`` strictly, except for loss-scale state, which may be on one side only.

        Checkpoints load across precisions (train.precision): a float16 run's loss scale is left at its
        initial value when the checkpoint has none, and a saved loss scale is read into a throwaway
        variable when this run has no use for it. Every other variable must match both ways.
        """
        reader = tf.train.load_checkpoint(str(prefix))
        # Bundle names are "<escaped key>/.ATTRIBUTES/VARIABLE_VALUE"; TensorFlow escapes "." in keys as "..".
        saved = {name.split("/")[0].replace("..", "."): name for name in reader.get_variable_to_shape_map()}
        variables = {key: v for key, v in self.variables.items() if LOSS_SCALE_KEY not in key.split(".") or key in saved}
        unused = [key for key in saved if LOSS_SCALE_KEY in key.split(".") and key not in self.variables]
        if len(variables) == len(self.variables) and not unused:
            return self.checkpoint
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        variables.update({key: tf.Variable(tf.zeros(shapes[saved[key]], dtypes[saved[key]]), trainable=False)
                          for key in unused})
        checkpoint = tf.train.Checkpoint(step=self.step, **variables)
        _ = checkpoint.save_counter  # as in __init__
        return checkpoint

    def _quarantine(self, prefix, reason: str) -> None:
        """Move a damaged checkpoint to ``corrupt/`` and drop it from the list."""
        self.prefixes = [p for p in self.prefixes if p != prefix]
        if not self.move_damaged:
            warn(f"checkpoint {prefix} is damaged ({reason}); trying the previous one")
            return
        target = self.directory / QUARANTINE_FOLDER
        moved = []
        try:
            target.mkdir(exist_ok=True)
            for path in bundle_files(prefix) + [Path(f"{prefix}{MANIFEST_SUFFIX}")]:
                if path.exists():
                    os.replace(path, target / path.name)
                    moved.append(path.name)
        except OSError as err:
            warn(f"could not move the damaged checkpoint {prefix} to {target} ({err})")
        write_list(self.directory, self.prefixes)
        warn(f"checkpoint {prefix} is damaged ({reason}); moved it to {target} and trying the previous one")

