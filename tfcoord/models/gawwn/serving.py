"""GAWWN's serving signatures (tensorflow.md §12) and the description a client needs.

GAWWN draws whole images (no tiles). The signatures, each with a dynamic batch, are documented for clients
in :func:`serving_description`: ``generate_from_box`` (box runs) or ``generate_from_keypoints`` (keypoint
runs), which is also ``generate_patch`` (``serving_default``); ``complete_keypoints`` (runs with a keypoint
generator); ``encode_text`` (runs with a text encoder). Non-finite inputs are refused
(``InvalidArgumentError``); wrong ranks or sizes are refused by the TensorSpecs before the graph runs.
"""

from __future__ import annotations

import tensorflow as tf

from tfcoord.data.gawwn.captions import ALPHABET
from tfcoord.errors import UserError
from tfcoord.models.base import finite_input
from tfcoord.models.gawwn.blocks import keypoint_maps
from tfcoord.models.text_encoder.model import encode_text_signature
from tfcoord.serving import ServingDescription


def serving_functions(model, patch_size=None) -> dict:
    cfg, text = model.config.model, model.config.text
    if patch_size not in (None, cfg.image_size):
        raise UserError(f"GAWWN generates whole {cfg.image_size}x{cfg.image_size} images (model.image_size); "
                        f"pass --patch {cfg.image_size}, not {patch_size}")
    generator, K = model.sampling_generator, len(model.parts)
    z_spec = tf.TensorSpec([None, cfg.z_dim], tf.float32, name="z")
    text_spec = tf.TensorSpec([None, model.text_dim], tf.float32, name="text_embedding")
    box_spec = tf.TensorSpec([None, 4], tf.float32, name="box")
    keypoint_spec = tf.TensorSpec([None, K, 3], tf.float32, name="keypoints")
    functions = {}

    if cfg.conditioning == "box":
        @tf.function(input_signature=[z_spec, text_spec, box_spec])
        def generate_from_box(z, text_embedding, box):
            z, text_embedding = finite_input(z, "z"), finite_input(text_embedding, "text_embedding")
            box = finite_input(box, "box")
            return {"rgb": generator([z, text_embedding, box], training=False)}

        functions["generate_patch"] = functions["generate_from_box"] = generate_from_box
    else:
        @tf.function(input_signature=[z_spec, text_spec, keypoint_spec])
        def generate_from_keypoints(z, text_embedding, keypoints):
            z, text_embedding = finite_input(z, "z"), finite_input(text_embedding, "text_embedding")
            keypoints = finite_input(keypoints, "keypoints")
            return {"rgb": generator([z, text_embedding, keypoint_maps(keypoints)], training=False)}

        functions["generate_patch"] = functions["generate_from_keypoints"] = generate_from_keypoints

    if model.keypoint_completer is not None:
        completer = model.keypoint_completer

        @tf.function(input_signature=[z_spec, text_spec, keypoint_spec])
        def complete_keypoints(z, text_embedding, keypoints):
            z, text_embedding = finite_input(z, "z"), finite_input(text_embedding, "text_embedding")
            keypoints = finite_input(keypoints, "keypoints")
            return {"keypoints": completer([z, text_embedding, keypoints], training=False)}

        functions["complete_keypoints"] = complete_keypoints

    if model.text_encoder is not None:
        functions["encode_text"] = encode_text_signature(model.text_encoder, text.doc_length)
    return functions


def serving_description(model) -> dict:
    cfg, text = model.config.model, model.config.text
    size = cfg.image_size
    own = "generate_from_box" if cfg.conditioning == "box" else "generate_from_keypoints"
    signatures = {"generate_patch": {"doc": f"the run's own generator: {own}"}}
    if cfg.conditioning == "box":
        signatures["generate_from_box"] = {
            "doc": "G(z, text_embedding, box) in eval mode; box = (ymin, xmin, ymax, xmax) fractions of the image, "
                   "ymin < ymax, xmin < xmax; z ~ N(0, I)"}
    else:
        signatures["generate_from_keypoints"] = {
            "doc": "G(z, text_embedding, keypoints) in eval mode; keypoints (K, 3) = (x, y, visibility) fractions of "
                   "the image in the order of 'parts', visibility 1 or 0; z ~ N(0, I)"}
    if model.keypoint_completer is not None:
        signatures["complete_keypoints"] = {
            "doc": "parts with visibility 1 returned unchanged, the others generated in [0, 1] (use those with "
                   "visibility > 0.5); give all-zero rows for the parts to fill in"}
    if model.text_encoder is not None:
        signatures["encode_text"] = {
            "doc": f"caption tokens -> text_embedding; token = 1 + index of the lower-cased character in 'alphabet' "
                   f"(0 for others), zero-padded or cut to {text.doc_length}; average the embeddings of several "
                   "captions for one image"}
    # No tiling: GAWWN draws whole images; a client calls generate_patch once per image.
    return ServingDescription(
        model_type="gawwn",
        paper="Learning What and Where to Draw (Reed et al., NeurIPS 2016)",
        extra={"image_size": [size, size], "conditioning": cfg.conditioning, "parts": list(model.parts),
               "latent": {"name": "z", "shape": [cfg.z_dim], "distribution": "normal"},
               "text_embedding_dim": model.text_dim, "alphabet": ALPHABET, "doc_length": text.doc_length},
        signatures=signatures,
        output={"name": "rgb", "range": [-1.0, 1.0]},
    ).to_json()
