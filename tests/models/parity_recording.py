"""Test support for the training-parity tests: what an optimizer did in each ``apply_gradients``."""

import tensorflow as tf


def record_updates(optimizer, log, weight_map):
    """Record each ``apply_gradients``: the gradients by official name and every parameter after the update.

    ``weight_map``: official name -> (variable, anything); one dict per update is appended to ``log``.
    """
    original, names = optimizer.apply_gradients, {id(v): name for name, (v, _) in weight_map.items()}

    def apply_gradients(pairs):
        pairs = list(pairs)
        result = original(pairs)
        log.append({"grads": {names[id(v)]: g for g, v in pairs},
                    "after": {name: tf.identity(v) for name, (v, _) in weight_map.items()}})
        return result

    optimizer.apply_gradients = apply_gradients
