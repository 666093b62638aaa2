"""Two replicas equal one device, for SNConv2D -> ConditionalBatchNorm -> SNDense.

Run as a script in a fresh process (logical CPU devices must be configured before
TensorFlow initialises, tensorflow.md §8.5); `test_layers_distributed.py` does so and
checks the JSON report printed on the last line of stdout.

The same two training steps (global batch 8, Adam) run once under the default
strategy and once under `MirroredStrategy` on two logical CPUs (4 examples per
replica), from the same initial weights. The report holds the largest differences
between the two runs (losses, summed gradients, every weight after the steps, a
`.weights.h5` written from the mirrored model and read on one device) and between
the two replicas' copies of every variable.
"""

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from tfcoord.layers import ConditionalBatchNorm, SNConv2D, SNDense  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 2


def build_model():
    image = keras.Input((6, 6, 3), name="image")
    condition = keras.Input((5,), name="condition")
    # use_bias=False: a bias before batch norm has zero gradient, which Adam would turn
    # into lr·sign(round-off) and so into a difference between the two runs.
    h = SNConv2D(4, 3, use_bias=False, name="conv")(image)
    h = ConditionalBatchNorm(name="cbn")(h, condition)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Flatten()(h)
    score = SNDense(1, name="dense")(h)
    return keras.Model([image, condition], score)


def make_train_step(strategy, model, optimizer):
    def replica_step(image, condition, target):
        with tf.GradientTape() as tape:
            score = model([image, condition], training=True)
            per_example = tf.square(score[:, 0] - target)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, grads

    @tf.function  # never jit_compile on the distributed path (P15)
    def train_step(image, condition, target):
        loss, grads = strategy.run(replica_step, args=(image, condition, target))
        return (
            strategy.reduce("SUM", loss, axis=None),
            [strategy.reduce("SUM", g, axis=None) for g in grads],
        )

    return train_step


def build_and_init(initial_weights):
    # Everything eagerly, inside the current strategy scope (§8.1, P16).
    model = build_model()
    model.set_weights(initial_weights)
    optimizer = keras.optimizers.Adam(1e-2, beta_1=0.0, beta_2=0.999)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def run(strategy, model, optimizer, batches, split):
    train_step = make_train_step(strategy, model, optimizer)
    losses, grads = [], []
    for batch in batches:
        if split:
            per_replica = GLOBAL_BATCH // strategy.num_replicas_in_sync
            inputs = strategy.experimental_distribute_values_from_function(
                lambda ctx, batch=batch: tuple(
                    tf.constant(a[ctx.replica_id_in_sync_group * per_replica :][:per_replica])
                    for a in batch
                )
            )
        else:
            inputs = tuple(tf.constant(a) for a in batch)
        loss, step_grads = train_step(*inputs)
        losses.append(float(loss))
        grads.append([g.numpy() for g in step_grads])
    return losses, grads


def max_abs_diff(a_list, b_list):
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(a_list, b_list))


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(STEPS):
        image = rng.normal(size=(GLOBAL_BATCH, 6, 6, 3)).astype("float32")
        image[GLOBAL_BATCH // 2 :] += 2.0  # replica-local moments differ from the global ones
        condition = rng.uniform(-1.0, 1.0, size=(GLOBAL_BATCH, 5)).astype("float32")
        target = rng.normal(size=(GLOBAL_BATCH,)).astype("float32")
        batches.append((image, condition, target))

    initial_weights = build_model().get_weights()

    one_device = tf.distribute.get_strategy()
    single, single_opt = build_and_init(initial_weights)
    single_losses, single_grads = run(one_device, single, single_opt, batches, split=False)

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with mirrored.scope():
        replicated, replicated_opt = build_and_init(initial_weights)
    mirrored_losses, mirrored_grads = run(mirrored, replicated, replicated_opt, batches, split=True)

    replica_gap = {}
    for variable in replicated.weights:
        copies = [np.asarray(c) for c in mirrored.experimental_local_results(variable.value)]
        replica_gap[variable.path] = max(max_abs_diff([c], [copies[0]]) for c in copies)

    reloaded = build_model()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "mirrored.weights.h5")
        replicated.save_weights(path)
        reloaded.load_weights(path)

    single_by_path = {v.path: np.asarray(v) for v in single.weights}
    local_mean = batches[-1][0][: GLOBAL_BATCH // 2].mean(axis=(0, 1, 2))
    global_mean = batches[-1][0].mean(axis=(0, 1, 2))
    report = {
        "num_replicas": mirrored.num_replicas_in_sync,
        "replica_devices": list(mirrored.extended.worker_devices),
        "single_losses": single_losses,
        "mirrored_losses": mirrored_losses,
        "loss_diff": max_abs_diff(single_losses, mirrored_losses),
        "grad_diff": max(max_abs_diff(a, b) for a, b in zip(single_grads, mirrored_grads)),
        "weight_diff": {
            v.path: max_abs_diff([np.asarray(v)], [single_by_path[v.path]])
            for v in replicated.weights
        },
        "weight_change": {
            v.path: max_abs_diff([np.asarray(v)], [w])
            for v, w in zip(single.weights, initial_weights)
        },
        "replica_gap": replica_gap,
        "reload_diff": max_abs_diff(reloaded.get_weights(), single.get_weights()),
        "input_mean_local_vs_global": float(np.max(np.abs(local_mean - global_mean))),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
