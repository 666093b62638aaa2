"""The training loop shared by every model.

One :class:`Trainer` runs any :class:`~tfcoord.models.base.CoordinateGan`: it builds
the model inside the strategy scope, streams global batches (with the model's
per-step random inputs) to the replicas, checkpoints every N steps and on
SIGINT/SIGTERM, logs TensorBoard scalars and sample grids, shows a progress bar and
stops on a non-finite loss without touching the last good checkpoint.

Run directory::

    config.yaml           the resolved configuration the run trains with
    checkpoints/          tf.train.CheckpointManager (ckpt-N.*, checkpoint)
    samples/step_N.png    sample grids (fixed latents, so grids are comparable)
    tensorboard/          scalars and images
    log.jsonl             the logged scalars, one JSON object per line
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfcoord.data import make_dataset
from tfcoord.errors import UserError
from tfcoord.images import image_grid, save_png
from tfcoord.training.checkpoints import CheckpointKeeper, latest_checkpoint, restore_networks
from tfcoord.training.strategy import make_strategy

# Reliability tests poison the batch at this step to check the non-finite-loss stop.
FAULT_NAN_STEP_ENV = "TFCOORD_FAULT_NAN_AT_STEP"
SAMPLE_SEED = 1234  # sample grids always show the same latents


class TrainingDiverged(UserError):
    """A loss became NaN or infinite."""


class Trainer:
    """Trains ``model`` (a CoordinateGan) into ``run_dir``.

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
        self.global_batch = self.config.train.batch_size
        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise UserError(f"train.batch_size ({self.global_batch}) must be divisible by the number of "
                            f"replicas ({replicas}); try --batch-size {replicas * max(1, self.global_batch // replicas)}")
        self._stop_signal = None

    # -- set-up ------------------------------------------------------------------------
    def _prepare(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Initial weights follow train.seed, so two runs of one config start identically.
        keras.utils.set_random_seed(self.config.train.seed)
        with self.strategy.scope():
            self.model.build()
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.keeper = CheckpointKeeper(self.run_dir / "checkpoints", step=self.step,
                                       max_to_keep=self.config.train.keep_checkpoints,
                                       **self.model.checkpoint_items())
        if self.resume:
            self.keeper.restore_latest()
        elif self.config.train.init_from:
            self._init_from(self.config.train.init_from)
        self.config.save(self.run_dir / "config.yaml")

    def _init_from(self, other_run):
        restore_networks(self.model.network_items(), latest_checkpoint(other_run))

    def _checkpointed_step(self) -> int:
        path = tf.train.latest_checkpoint(str(self.run_dir / "checkpoints"))
        if path is None:
            raise UserError(f"--resume: {self.run_dir / 'checkpoints'} holds no checkpoint to resume from; "
                            "drop --resume to start a new run")
        return int(path.rsplit("-", 1)[1])

    def _dataset(self, start_step: int):
        data = make_dataset(self.config.data.source, image_size=self.model.image_size(),
                            batch_size=self.global_batch, seed=self.config.train.seed,
                            start_index=start_step * self.global_batch, training=True)
        model, batch = self.model, self.global_batch
        data = data.enumerate(start=start_step).map(
            lambda step, element: {**element, **model.step_inputs(step, batch)})
        options = tf.data.Options()
        # The random inputs are keyed by the step, and batches are split in order, so
        # every replica count sees the same global batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        data = data.with_options(options).prefetch(2)
        return iter(self.strategy.experimental_distribute_dataset(data))

    def _step_function(self):
        model, strategy, batch_size = self.model, self.strategy, self.global_batch

        def replica_step(batch, poison):
            return model.train_step(dict(batch, image=batch["image"] + poison), batch_size)

        @tf.function
        def train_step(batch, poison):  # never jit_compile on the distributed path (P15)
            losses = strategy.run(replica_step, args=(batch, poison))
            losses = {name: strategy.reduce("SUM", value, axis=None) for name, value in losses.items()}
            model.after_step()
            return losses

        def distributed_step(batch, step):
            fault = os.environ.get(FAULT_NAN_STEP_ENV)
            poison = math.nan if fault and int(fault) == step else 0.0
            return train_step(batch, tf.constant(poison))

        return distributed_step

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> int:
        """Train until ``train.steps``; returns the final step."""
        cfg = self.config
        # The data source is opened before the (slow) model build so that a bad --data fails fast.
        start = self._checkpointed_step() if self.resume else 0
        batches = self._dataset(start)
        self._prepare()
        assert int(self.step.numpy()) == start, (int(self.step.numpy()), start)
        total = cfg.train.steps
        if start >= total:
            print(f"run {self.run_dir} is already at step {start} >= train.steps={total}; nothing to do "
                  f"(raise it with --steps)")
            return start
        step_fn = self._step_function()
        writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        log_file = open(self.run_dir / "log.jsonl", "a")
        previous_handlers = self._install_signal_handlers()
        progress = self._progress_bar(start, total)
        try:
            timer_start, timer_steps = time.perf_counter(), 0
            for step in range(start + 1, total + 1):
                losses = {k: float(v) for k, v in step_fn(next(batches), step).items()}
                self._check_finite(losses, step)
                self.step.assign(step)
                timer_steps += 1
                elapsed = time.perf_counter() - timer_start
                rate = timer_steps / elapsed if elapsed > 0 else 0.0
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(self._postfix(losses, rate), refresh=False)
                if step % cfg.log.scalars_every == 0 or step == total:
                    self._log_scalars(writer, log_file, step, losses, rate)
                if step % cfg.log.samples_every == 0 or step == total:
                    self._write_samples(writer, step)
                if step % cfg.train.checkpoint_every == 0 or step == total:
                    self.keeper.save(step)
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
            if progress is not None:
                progress.close()
            self._restore_signal_handlers(previous_handlers)
            writer.close()
            log_file.close()
        return total

    def _check_finite(self, losses, step):
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            last = self.keeper.latest_step()
            kept = (f"the last good checkpoint (step {last}) is intact" if last is not None
                    else "no checkpoint had been written yet")
            name, value = next(iter(bad.items()))
            raise TrainingDiverged(
                f"non-finite loss at step {step}: {name} = {value}"
                + (f" (also {', '.join(list(bad)[1:])})" if len(bad) > 1 else "")
                + f"; {kept} in {self.run_dir / 'checkpoints'}; lower the learning rates (--set optim.lr_d=...) "
                  "and continue with --resume")

    def _postfix(self, losses, rate):
        shown = {k: f"{v:.3g}" for k, v in list(losses.items())[:4]}
        return {"step/s": f"{rate:.2f}", "img/s": f"{rate * self.global_batch:.1f}", **shown}

    def _progress_bar(self, start, total):
        if not self.config.log.progress_bar:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=start, desc=f"train {self.model.name}", unit="step", dynamic_ncols=True)

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
        images = self.model.sample_images(SAMPLE_SEED, self.config.log.num_samples)
        grid = image_grid(images)
        save_png(grid, self.run_dir / "samples" / f"step_{step:08d}.png")
        with writer.as_default(step=step):
            tf.summary.image("samples", grid[None], step=step)

    def _install_signal_handlers(self):
        def handler(signum, frame):
            self._stop_signal = signum  # finish the current step, checkpoint, then stop

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous):
        for sig, handler in previous.items():
            signal.signal(sig, handler)
