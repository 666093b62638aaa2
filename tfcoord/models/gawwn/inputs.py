"""Inputs of GAWWN's exported signatures that a model-blind exporter cannot make (the spec's hooks).

Random conditions must still be valid ones (:func:`example_inputs`: tests, benchmarks, the
server's warm-up), and int8 calibration needs the conditions the run was trained on
(:func:`data_conditions`).
"""

from __future__ import annotations

import numpy as np

from tfcoord.errors import UserError


def example_inputs(model, description: dict, signature: str, batch: int, seed: int = 0) -> dict:
    """Valid boxes (ymin < ymax, xmin < xmax in [0, 1]), keypoints ((x, y) in [0, 1], visibility 0/1), tokens."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, spec in description["signatures"][signature]["inputs"].items():
        shape = [batch if d == -1 else d for d in spec["shape"]]
        if name == "box":
            corners = np.sort(rng.uniform(0.0, 1.0, (batch, 2, 2)), axis=1)  # (min, max) of (y, x)
            inputs[name] = corners.reshape(batch, 4).astype("float32")
        elif name == "keypoints":
            inputs[name] = np.concatenate([rng.uniform(0.0, 1.0, shape[:-1] + [2]),
                                           rng.integers(0, 2, shape[:-1] + [1])], axis=-1).astype("float32")
        elif name == "tokens":
            inputs[name] = rng.integers(0, len(description["alphabet"]) + 1, shape).astype("int32")
        else:  # z, text_embedding
            inputs[name] = rng.standard_normal(shape).astype(spec["dtype"])
    return inputs


def data_conditions(model, batch: int, rows: int, start: int) -> tuple[list[dict], str]:
    """``rows`` input dicts of ``batch`` images conditioned as the run was trained, on elements ``start``,
    ``start + 1``, ... of its data (evaluation stream): the mean embedding of their captions (the run's text
    encoder), their boxes or parts, z ~ N(0, I) of seed ``start``; and a line saying so. Random conditions alone
    miss the ranges real ones reach: calibrated on them, the trained keypoint run reaches 27.6 dB on data
    conditions, 43.3 dB calibrated on both. If the data cannot be read here, no dicts and the reason (the export
    goes on with random conditions)."""
    import tensorflow as tf

    from tfcoord.data import first_elements

    count = batch * rows
    try:
        element = first_elements(model.config.data.source, image_size=model.image_size(), num=count,
                                 seed=model.config.train.seed, start_index=start)
        text = model.sampler.data_text(element)
    except (UserError, OSError, StopIteration, tf.errors.OpError) as err:
        return [], f"random inputs of the signature (the run's data {model.config.data.source} could not be " \
                   f"read: {str(err).splitlines()[0][:120]})"
    box_run = model.config.model.conditioning == "box"
    columns = {"z": model.sampler.latents(start, count), "text_embedding": text,
               "box" if box_run else "keypoints": element["bbox"] if box_run else element["keypoints"]}
    dicts = [{name: np.asarray(value[row * batch:(row + 1) * batch], np.float32) for name, value in columns.items()}
             for row in range(rows)]
    return dicts, f"{rows} batches with the conditions of {model.config.data.source} and {rows} random ones"
