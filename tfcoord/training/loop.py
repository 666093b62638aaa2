"""The training loop shared by every model.

One :class:`Trainer` runs any :class:`~tfcoord.models.base.TrainableModel`: it builds
the model inside the strategy scope, streams global batches (with the model's
per-step random inputs) to the replicas, checkpoints every N steps and on
SIGINT/SIGTERM, logs TensorBoard scalars and sample grids, shows a progress bar and
stops on a non-finite loss without touching the last good checkpoint (or, with
``train.on_nonfinite=restore``, reloads it and lowers the learning rates). A write
that fails (full disk, unwritable folder) stops the run with one clear line and
leaves the earlier checkpoints intact; see docs/reliability.md.

Run directory::

    config.yaml           the resolved configuration the run trains with
    checkpoints/          ckpt-N.* with manifests, the 'checkpoint' list (see checkpoints.py)
    checkpoints/best/     the best checkpoint by the periodic metric (train.fid_every > 0)
    samples/step_N.png    sample grids (fixed latents, so grids are comparable)
    tensorboard/          scalars and images
    log.jsonl             the logged scalars, one JSON object per line
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf
import yaml
from tqdm import tqdm

from tfcoord.data import make_dataset, parse_source
from tfcoord.errors import UserError, warn
from tfcoord.fileio import atomic_write_text, describe_write_error
from tfcoord.models.base import CoordinateGan
from tfcoord.images import save_png
from tfcoord.training.checkpoints import (CheckpointKeeper, checkpoint_step, listed_checkpoints,
                                          restore_networks_from_run)
from tfcoord.training.cluster import cluster_role
from tfcoord.training.precision import inner_optimizer
from tfcoord.training.strategy import make_strategy

SAMPLE_SEED = 1234  # sample grids always show the same latents


class TrainingDiverged(UserError):
    """A loss became NaN or infinite."""


class RunDirectoryError(UserError):
    """The run directory cannot be written (full disk, permissions, read-only)."""


class WorkerLost(UserError):
    """Another worker of a multi-worker job stopped or became unreachable."""


# How a multi-worker collective fails when a peer stops: its heartbeats stop (Unavailable), or the
# collective is cancelled or aborted while it waits.
PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
                 tf.errors.DeadlineExceededError)


def _peer_failure_reason(error) -> str:
    """The failed task named in a collective's error, in a few words."""
    found = re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", str(error))
    own = re.search(r"device_/job:(\w+)/replica:\d+/task:(\d+)", str(error))
    others = [task for task in dict.fromkeys(found) if not own or task != own.groups()]
    if others:
        return ", ".join(f"{job} {index}" for job, index in others) + " stopped responding"
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error)).strip().splitlines()
    return (message[0][:160] if message else type(error).__name__)


class Trainer:
    """Trains ``model`` (a :class:`~tfcoord.models.base.TrainableModel`) into ``run_dir``.

    Args:
        model: the model object; its ``config`` is the resolved run configuration.
        run_dir: the run directory (created).
        resume: continue from the last checkpoint in ``run_dir``.
    """

    def __init__(self, model, run_dir, resume: bool = False):
        self.model = model
        self.config = model.config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.strategy = make_strategy(self.config.train.strategy)
        # Multi-worker: every worker runs the same steps, saves included (a save may need collectives),
        # but only the chief writes into run_dir; the others write into a temporary folder they remove
        # (the tf.distribute multi-worker guidance). fit() creates it.
        self.role = cluster_role() if self.config.train.strategy == "multi_worker" else None
        self.write_dir = self.run_dir
        self.global_batch = self.config.train.batch_size
        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise UserError(f"train.batch_size ({self.global_batch}) must be divisible by the number of "
                            f"replicas ({replicas}); try --batch-size {replicas * max(1, self.global_batch // replicas)}")
        self._stop_signal = None
        self._restores = 0
        self.evaluation = None
        self.best = None

    # -- set-up ------------------------------------------------------------------------
    def _prepare(self):
        with self._writing("the run directory"):
            self.write_dir.mkdir(parents=True, exist_ok=True)
        # Initial weights follow train.seed, so two runs of one config start identically.
        keras.utils.set_random_seed(self.config.train.seed)
        with self.strategy.scope():
            self.model.build()
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.keeper = CheckpointKeeper(self.write_dir / "checkpoints", step=self.step,
                                       max_to_keep=self.config.train.keep_checkpoints,
                                       **self.model.checkpoint_items())
        if self.resume and self.write_dir != self.run_dir:
            # A multi-worker job resumes every worker from the chief's checkpoints (a shared folder);
            # a damaged one is skipped here as the chief skips it, but only the chief moves it.
            CheckpointKeeper(self.run_dir / "checkpoints", step=self.step, move_damaged=False,
                             **self.model.checkpoint_items()).restore_latest()
        elif self.resume:
            self.keeper.restore_latest()  # the newest intact one: damaged ones move to checkpoints/corrupt/
        elif self.config.train.init_from:
            restore_networks_from_run(self.model.network_items(), self.config.train.init_from)
        with self._writing("config.yaml"):
            atomic_write_text(self.write_dir / "config.yaml", yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        if self.config.train.fid_every:
            self._prepare_evaluation()

    def _checkpointed_step(self) -> int:
        prefixes = listed_checkpoints(self.run_dir / "checkpoints")
        if not prefixes:
            raise UserError(f"--resume: {self.run_dir / 'checkpoints'} holds no checkpoint to resume from; "
                            "drop --resume to start a new run")
        return checkpoint_step(prefixes[-1])

    def _check_run_dir(self):
        """Fail before any work when the run directory cannot be created or written."""
        created = [folder for folder in (self.write_dir, *self.write_dir.parents) if not folder.exists()]
        probe = self.write_dir / ".tfcoord-write-test"
        try:
            self.write_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(probe, "ok\n")
            probe.unlink()
        except OSError as err:
            raise RunDirectoryError(f"cannot write to the run directory {self.write_dir} "
                                    f"({describe_write_error(err)}); choose another --out") from None
        finally:
            for folder in created:  # leave no empty run folder behind if a later check fails
                with contextlib.suppress(OSError):
                    folder.rmdir()

    @contextlib.contextmanager
    def _writing(self, what: str):
        """Turn a failed write of ``what`` into one clear line that says the checkpoints are intact."""
        try:
            yield
        except (OSError, tf.errors.OpError) as err:
            last = self.keeper.latest_step() if getattr(self, "keeper", None) else None
            kept = (f"the checkpoints are intact (newest: step {last})" if last is not None
                    else "no checkpoint had been written yet")
            raise RunDirectoryError(f"could not write {what} in {self.run_dir} ({describe_write_error(err)}); "
                                    f"{kept}; continue with --resume --out {self.run_dir}") from None

    def _check_evaluation_settings(self):
        """Periodic evaluation: fail before any work when its weights or real data are missing."""
        cfg = self.config.train
        if not cfg.fid_every:
            return
        if not isinstance(self.model, CoordinateGan):
            raise UserError(f"train.fid_every: the {self.model.name} model does not generate images to evaluate; "
                            "set train.fid_every=0")
        from tfcoord.metrics.inception import check_extractor_available

        check_extractor_available(cfg.fid_inception_weights or None)
        if cfg.fid_real and cfg.fid_real != self.config.data.source:
            parse_source(cfg.fid_real)

    def _prepare_evaluation(self):
        from tfcoord.metrics import get_metric
        from tfcoord.metrics.evaluation import Evaluation, training_recipe
        from tfcoord.metrics.inception import load_extractor

        cfg = self.config.train
        metric = get_metric(cfg.fid_metric)
        real = cfg.fid_real or self.config.data.source
        self.evaluation = Evaluation(metric, self.model, real,
                                     preprocessing=training_recipe(self.config, real),
                                     num_real=cfg.fid_num, batch=min(50, cfg.fid_num),
                                     extractor=load_extractor(cfg.fid_inception_weights or None),
                                     progress=self.config.log.progress_bar)
        self.best_keeper = CheckpointKeeper(self.write_dir / "checkpoints" / "best", step=self.step, max_to_keep=1,
                                            **self.model.checkpoint_items())
        record = self.write_dir / "checkpoints" / "best" / "metric.json"
        if self.resume and record.is_file():
            with contextlib.suppress(ValueError):
                self.best = json.loads(record.read_text())

    def _dataset(self, start_step: int):
        data = make_dataset(self.config.data.source, image_size=self.model.image_size(),
                            batch_size=self.global_batch, seed=self.config.train.seed,
                            start_index=start_step * self.global_batch, training=True,
                            preprocessing=self.config.data)
        model, batch = self.model, self.global_batch
        data = data.enumerate(start=start_step).map(
            lambda step, element: {**element, **model.step_inputs(step, batch)})
        if self.role is not None:
            return iter(self.strategy.distribute_datasets_from_function(self._worker_slices(data)))
        options = tf.data.Options()
        # The random inputs are keyed by the step, and batches are split in order, so
        # every replica count sees the same global batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        data = data.with_options(options).prefetch(2)
        return iter(self.strategy.experimental_distribute_dataset(data))

    def _worker_slices(self, global_batches):
        """Multi-worker input: each worker's consecutive rows of every global batch, one replica's rows at a time.

        The stream is a pure function of (seed, index), so every worker can make the global batch and keep
        rows [w * b, (w + 1) * b): no overlap, no gap, and replica r of worker w holds exactly the rows that
        replica w * local + r holds in a one-process mirrored run of the same global batch.
        """
        batch = self.global_batch

        def dataset_fn(context):
            per_worker = batch // context.num_input_pipelines
            first = context.input_pipeline_id * per_worker
            rows = global_batches.map(
                lambda element: tf.nest.map_structure(lambda t: t[first:first + per_worker], element))
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            return rows.rebatch(context.get_per_replica_batch_size(batch)).with_options(options).prefetch(2)

        return dataset_fn

    def _step_function(self):
        model, strategy, batch_size = self.model, self.strategy, self.global_batch

        @functools.cache
        def compile_step(variant):
            # A model with step variants (e.g. lazy R1 every 16 steps) gets one traced function per
            # variant, chosen in Python: an optimizer update cannot sit in a traced tf.cond under
            # MirroredStrategy (merge_call inside control flow is unsupported).
            variant_kwargs = {} if variant is None else {"variant": variant}

            @tf.function
            def train_step(batch):  # never jit_compile on the distributed path (P15)
                losses = strategy.run(model.train_step, args=(batch, batch_size), kwargs=variant_kwargs)
                losses = {name: strategy.reduce("SUM", value, axis=None) for name, value in losses.items()}
                model.after_step()
                return losses

            return train_step

        return lambda batch, step: compile_step(model.step_variant(step))(batch)

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> int:
        """Train until ``train.steps``; returns the final step."""
        if self.role is not None and not self.role.is_chief:
            # One name per (run, task): a worker restarted after a crash clears what its killed self left.
            run_key = hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:10]
            self.write_dir = Path(tempfile.gettempdir()) / f"tfcoord-{run_key}-{self.role.task_type}{self.role.task_index}"
            shutil.rmtree(self.write_dir, ignore_errors=True)
        try:
            return self._fit()
        except PEER_FAILURES as err:
            if self.role is None:
                raise
            last = listed_checkpoints(self.run_dir / "checkpoints")
            kept = f"the chief's newest checkpoint is step {checkpoint_step(last[-1])}" if last else "no checkpoint yet"
            reason = _peer_failure_reason(err)
            step = int(self.step.numpy()) if hasattr(self, "step") else 0
            raise WorkerLost(f"{self.role.name}: the multi-worker job stopped at step {step}, "
                             f"another worker is gone ({reason}); {kept}; start every worker again with "
                             f"--resume --out {self.run_dir}") from None
        finally:
            if self.write_dir != self.run_dir:
                shutil.rmtree(self.write_dir, ignore_errors=True)

    def _fit(self) -> int:
        cfg = self.config
        # Cheap checks first, then the data source (before the slow model build) so bad input fails fast.
        self._check_run_dir()
        self._check_evaluation_settings()
        start = self._checkpointed_step() if self.resume else 0
        batches = self._dataset(start)
        self._prepare()
        restored = int(self.step.numpy())
        if restored != start:  # the newest checkpoint was damaged; an older one was restored
            start, batches = restored, self._dataset(restored)
        total = cfg.train.steps
        if start >= total:
            print(f"run {self.run_dir} is already at step {start} >= train.steps={total}; nothing to do "
                  f"(raise it with --steps)")
            return start
        if cfg.train.on_nonfinite == "restore" and self.keeper.latest_step() is None:
            self.keeper.save(start)  # something to go back to before the first regular checkpoint
        step_fn = self._step_function()
        with self._writing("tensorboard/"):
            writer = tf.summary.create_file_writer(str(self.write_dir / "tensorboard"))
        with self._writing("log.jsonl"):
            log_file = open(self.write_dir / "log.jsonl", "a")
        previous_handlers = self._install_signal_handlers()
        progress = tqdm(total=total, initial=start, desc=f"train {self.model.name}", unit="step",
                        dynamic_ncols=True, disable=not cfg.log.progress_bar)
        try:
            timer_start, timer_steps = time.perf_counter(), 0
            step = start
            while step < total:
                step += 1
                try:
                    batch = next(batches)
                except StopIteration:
                    raise UserError(f"the data source {cfg.data.source} delivered no batch for step {step}: it holds "
                                    f"fewer than train.batch_size={self.global_batch} usable images; "
                                    "add images or lower --batch-size") from None
                losses = {k: float(v) for k, v in step_fn(batch, step).items()}
                if not all(math.isfinite(v) for v in losses.values()):
                    step = self._on_nonfinite(losses, step, log_file)
                    batches = self._dataset(step)
                    progress.reset(total=total)
                    progress.update(step)
                    continue
                self.step.assign(step)
                timer_steps += 1
                elapsed = time.perf_counter() - timer_start
                rate = timer_steps / elapsed if elapsed > 0 else 0.0
                progress.update(1)
                progress.set_postfix(self._postfix(losses, rate), refresh=False)
                if step % cfg.log.scalars_every == 0 or step == total:
                    with self._writing("log.jsonl and tensorboard/"):
                        self._log_scalars(writer, log_file, step, losses, rate)
                if step % cfg.log.samples_every == 0 or step == total:
                    with self._writing(f"samples/step_{step:08d}.png"):
                        self._write_samples(writer, step)
                if step % cfg.train.checkpoint_every == 0 or step == total:
                    self.keeper.save(step)
                if self.evaluation is not None and (step % cfg.train.fid_every == 0 or step == total):
                    self._evaluate(writer, log_file, step)
                if self._stop_signal is not None:
                    self.keeper.save(step)
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            signame = signal.Signals(self._stop_signal).name if self._stop_signal else "SIGINT"
            if self._stop_signal is None:
                self.keeper.save(int(self.step.numpy()))
            print(f"\n{signame}: stopped at step {int(self.step.numpy())}; checkpoint saved in "
                  f"{self.run_dir / 'checkpoints'}; continue with --resume --out {self.run_dir}", flush=True)
            raise SystemExit(128 + (self._stop_signal or signal.SIGINT))
        finally:
            progress.close()
            for sig, previous in previous_handlers.items():
                signal.signal(sig, previous)
            # A full disk may also fail these; the error that stopped the run is the one to report.
            for close in (writer.close, log_file.close):
                with contextlib.suppress(OSError, tf.errors.OpError):
                    close()
        return total

    def _on_nonfinite(self, losses, step, log_file) -> int:
        """Stop naming the step, or (``train.on_nonfinite=restore``) reload the last good checkpoint.

        Returns the step training continues from.
        """
        cfg = self.config.train
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        name, value = next(iter(bad.items()))
        what = f"non-finite loss at step {step}: {name} = {value}" + (
            f" (also {', '.join(list(bad)[1:])})" if len(bad) > 1 else "")
        last = self.keeper.latest_step()
        if cfg.on_nonfinite == "restore" and last is not None and self._restores < cfg.max_restores:
            self._restores += 1
            self.keeper.restore_latest()
            restored = int(self.step.numpy())
            rates = self._scale_learning_rates(cfg.nonfinite_lr_factor)
            warn(f"{what}; restored the checkpoint of step {restored} and multiplied the learning rates "
                 f"by {cfg.nonfinite_lr_factor} (now {rates}); restore {self._restores} of {cfg.max_restores}")
            with self._writing("log.jsonl"):
                log_file.write(json.dumps({"step": step, "event": "nonfinite_restore", "loss": name,
                                           "restored_step": restored, "learning_rates": rates}) + "\n")
                log_file.flush()
            return restored
        kept = (f"the last good checkpoint (step {last}) is intact" if last is not None
                else "no checkpoint had been written yet")
        if cfg.on_nonfinite == "restore" and last is not None:
            kept = f"gave up after {self._restores} restores; " + kept
        raise TrainingDiverged(
            f"{what}; {kept} in {self.run_dir / 'checkpoints'}; lower the learning rates (--set optim.lr_d=...) "
            "and continue with --resume, or set train.on_nonfinite=restore")

    def _scale_learning_rates(self, factor: float) -> dict:
        """Multiply the learning rate of every Keras optimizer among the checkpoint items; returns the new rates."""
        rates = {}
        with self.strategy.scope():
            for name, item in self.model.checkpoint_items().items():
                if not isinstance(item, keras.optimizers.Optimizer):
                    continue
                item = inner_optimizer(item)  # the rate of a loss-scaled (mixed_float16) optimizer is its inner one's
                if isinstance(item._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
                    warn(f"{name} follows a learning-rate schedule; left unchanged")
                    continue
                item.learning_rate = float(item.learning_rate.numpy()) * factor
                rates[name] = float(item.learning_rate.numpy())
        return rates

    def _evaluate(self, writer, log_file, step):
        """Periodic metric; a better value replaces checkpoints/best/."""
        metric = self.evaluation.metric
        results = self.evaluation.run(self.config.train.fid_num, seed=SAMPLE_SEED)
        value = float(results[metric.headline])
        with self._writing("log.jsonl and tensorboard/"):
            with writer.as_default(step=step):
                tf.summary.scalar(f"metric/{metric.name}", value)
            log_file.write(json.dumps({"step": step, metric.name: value,
                                       "feature_network": results["feature_network"]}) + "\n")
            log_file.flush()
        best = self.best.get("value") if isinstance(self.best, dict) else None
        better = best is None or (value < best if metric.lower_is_better else value > best)
        if better and math.isfinite(value):
            self.best_keeper.save(step)
            self.best = {"metric": metric.name, "value": value, "step": step,
                         "feature_network": results["feature_network"]}
            with self._writing("checkpoints/best/metric.json"):
                atomic_write_text(self.write_dir / "checkpoints" / "best" / "metric.json", json.dumps(self.best))

    def _postfix(self, losses, rate):
        shown = {k: f"{v:.3g}" for k, v in list(losses.items())[:4]}
        return {"step/s": f"{rate:.2f}", "img/s": f"{rate * self.global_batch:.1f}", **shown}

    def _log_scalars(self, writer, log_file, step, losses, rate):
        images_per_second = rate * self.global_batch
        with writer.as_default(step=step):
            for name, value in losses.items():
                tf.summary.scalar(f"loss/{name}", value)
            tf.summary.scalar("speed/steps_per_second", rate)
            tf.summary.scalar("speed/images_per_second", images_per_second)
        record = {"step": step, **losses, "steps_per_second": rate, "images_per_second": images_per_second}
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()

    def _write_samples(self, writer, step):
        grid = self.model.progress_image(SAMPLE_SEED, self.config.log.num_samples)
        save_png(grid, self.write_dir / "samples" / f"step_{step:08d}.png")
        with writer.as_default(step=step):
            tf.summary.image("samples", grid[None], step=step)

    def _install_signal_handlers(self):
        def handler(signum, frame):
            self._stop_signal = signum  # finish the current step, checkpoint, then stop

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[sig] = signal.signal(sig, handler)
        return previous
