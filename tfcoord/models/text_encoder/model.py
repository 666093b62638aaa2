"""The ``text-encoder`` model: char-CNN-RNN captions and images in one embedding (Reed et al., CVPR 2016).

``python -m tfcoord.train --model text-encoder --data synthetic-birds`` (or an
``annotations:FILE.jsonl`` source with captions and classes) trains the char-CNN-GRU text
encoder (:class:`~tfcoord.models.text_encoder.networks.CharCnnGru`) with the paper's symmetric
structured joint embedding (:func:`~tfcoord.models.text_encoder.loss.structured_joint_embedding_loss`,
class expectations over the global batch). Each step pairs every image with one of its
captions, chosen at random among all but the ``num_holdout`` last.

The image side is, as in the paper, fixed features from a file (``--image-features FILE.npy``,
one row per record line of the annotation file, in file order; e.g. the 1024-d GoogLeNet
features of CUB), or a small CNN trained jointly (:class:`~tfcoord.models.text_encoder.networks.ImageEncoder`).

``loss.zero_shot_every = k`` keeps the classes whose label is a multiple of k out of training;
:meth:`TextEncoderModel.zero_shot` scores them as the paper does (``classify_sje_tcnn.lua``:
a class's text embedding is the mean over its captions, an image takes the best class).

A GAWWN run uses the trained encoder with ``--set text.encoder_run=RUN`` (the weights are
copied into the GAWWN run, so its checkpoint encodes free text on its own).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfcoord.data.gawwn.captions import ALPHABET, tokenize_all
from tfcoord.errors import UserError
from tfcoord.gan.distribute import average, gather_features
from tfcoord.gan.optimizers import step_decay, torch_rmsprop
from tfcoord.models.base import TrainableModel, step_seed
from tfcoord.models.text_encoder.loss import joint_embedding_loss, structured_joint_embedding_loss
from tfcoord.models.text_encoder.networks import CharCnnGru, ImageEncoder
from tfcoord.training.precision import loss_scaled, minimize, to_float32
from tfcoord.serving import ServingDescription

FEATURE_IMAGE_SIZE = 16  # with --image-features the images are not used: decode them small
EVALUATION_SEED_OFFSET = 7919  # zero-shot evaluation images come from another stream than training's


def annotation_rows(annotations_path) -> tuple[list[int], int]:
    """Rows of a per-record feature file for the valid records of an annotation file.

    Returns (the row of each valid record, in the order the data source indexes them; the
    number of record lines). A record line is a non-blank line after the header; records that
    validation skips keep their row, so features computed line by line stay aligned.
    """
    from tfcoord.data.gawwn.annotations import read_annotations

    problems = []
    annotations = read_annotations(annotations_path, report=problems.append)
    prefix = f"{annotations.path}:"
    skipped = {int(problem[len(prefix):].split(":", 1)[0]) for problem in problems}
    with open(annotations.path, encoding="utf-8") as file:
        record_lines = [number for number, line in enumerate(file, start=1) if line.strip()][1:]
    rows = [row for row, number in enumerate(record_lines) if number not in skipped]
    if len(rows) != len(annotations.records):  # a header or JSON problem read_annotations raises on
        raise UserError(f"{annotations.path}: cannot align records with feature rows; check its warnings")
    return rows, len(record_lines)


def load_image_features(path, source: str, embedding_dim: int, projection: bool) -> np.ndarray:
    """(valid records, width) float32 image features of ``path`` for the ``annotations:FILE`` ``source``."""
    name, _, argument = source.partition(":")
    if name != "annotations" or not argument:
        raise UserError(f"--image-features needs --data annotations:FILE.jsonl (its rows follow the records), "
                        f"not {source!r}; or drop it to train an image encoder on the images")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"image features {path} do not exist; pass a .npy file with one row per record")
    try:
        features = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise UserError(f"image features {path} are not a .npy array ({err}); save them with numpy.save") from None
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise UserError(f"image features {path} must be a 2-D numeric array (records, width), "
                        f"got shape {features.shape} of {features.dtype}")
    rows, num_records = annotation_rows(argument)
    if features.shape[0] != num_records:
        raise UserError(f"image features {path} have {features.shape[0]} rows but {argument} has {num_records} "
                        "records; give one row per record line, in file order")
    if not projection and features.shape[1] != embedding_dim:
        raise UserError(f"image features {path} are {features.shape[1]}-d but model.embedding_dim is "
                        f"{embedding_dim}; set model.embedding_dim={features.shape[1]} (the paper's no-op image "
                        "side) or model.image_feature_projection=true")
    table = np.asarray(features[rows], np.float32)
    if not np.all(np.isfinite(table)):
        raise UserError(f"image features {path} hold NaN or infinite values; recompute them")
    return table


def encode_text_signature(encoder, doc_length: int):
    """The ``encode_text`` serving signature of a text encoder (also exported by GAWWN runs that have one)."""
    @tf.function(input_signature=[tf.TensorSpec([None, doc_length], tf.int32, name="tokens")])
    def encode_text(tokens):
        return {"text_embedding": encoder(tokens, training=False)}

    return encode_text


class TextEncoderModel(TrainableModel):
    """The text encoder for the trainer (its progress image is a caption-image score map) and the exporter."""

    name = "text-encoder"
    default_signature = "encode_text"

    def __init__(self, config):
        super().__init__(config)
        self._probe = None  # the scored batch of sample_images, read on first use (a reopened run never builds())
        self.image_feature_table = None
        if config.model.image_features:
            self.image_feature_table = load_image_features(config.model.image_features, config.data.source,
                                                           config.model.embedding_dim,
                                                           config.model.image_feature_projection)

    def image_size(self):
        size = FEATURE_IMAGE_SIZE if self.image_feature_table is not None else self.config.model.image_size
        return (size, size)

    def build_networks(self):
        with self.dtype_policy_scope():  # train.precision
            self._build_networks()

    def _build_networks(self):
        cfg = self.config.model
        self.text_encoder = CharCnnGru(cfg.embedding_dim, cfg.cnn_channels, cfg.doc_length, final_pool=cfg.final_pool,
                                       average_states=cfg.average_states, name="text_encoder")
        self.text_encoder.build((None, cfg.doc_length))
        if self.image_feature_table is None:
            size = cfg.box_crop_size or cfg.image_size
            self.image_encoder = ImageEncoder(cfg.embedding_dim, cfg.image_encoder_width, size, name="image_encoder")
            self.image_encoder.build((None, size, size, 3))
        elif cfg.image_feature_projection:  # -image_noop 0: Linear(image_dim, emb_dim), modules/ImageEncoder.lua
            self.image_encoder = keras.layers.Dense(cfg.embedding_dim, name="image_encoder")
            self.image_encoder.build((None, self.image_feature_table.shape[1]))
        else:  # -image_noop 1 (the official default): the features are the image embedding
            self.image_encoder = None
        # Made eagerly: one constant captured by every traced step (and usable outside them).
        self._feature_constant = (None if self.image_feature_table is None
                                  else tf.constant(self.image_feature_table))

    def build(self):
        self.build_networks()
        optim = self.config.optim
        # Loss-scaled under mixed_float16 (tfcoord.training.precision).
        rate = step_decay(optim.lr, optim.decay_every, optim.lr_decay)
        self.optimizer = loss_scaled(torch_rmsprop(rate), self.precision)
        self.optimizer.build(self.variables())

    def variables(self):
        image = [] if self.image_encoder is None else list(self.image_encoder.trainable_variables)
        return list(self.text_encoder.trainable_variables) + image

    def network_items(self):
        items = {"text_encoder": self.text_encoder}
        if self.image_encoder is not None:
            items["image_encoder"] = self.image_encoder
        return items

    def checkpoint_items(self):
        return dict(self.network_items(), optimizer=self.optimizer)

    def step_inputs(self, step, global_batch_size):
        seed = step_seed(self.config.train.seed, step)
        return {"caption_keys": tf.random.stateless_uniform([global_batch_size, self.config.loss.max_captions], seed)}

    def _chosen_tokens(self, batch):
        """One caption per image: the first of a random order of its usable captions."""
        if "captions" not in batch:
            raise UserError("the text encoder needs captions: train on synthetic-birds or an "
                            "annotations:FILE.jsonl source whose records have 'captions'")
        captions = batch["captions"][:, :self.config.loss.max_captions]
        keys = batch["caption_keys"][:, :captions.shape[1]]
        usable = tf.maximum(batch["num_captions"] - self.config.loss.num_holdout, 1)
        keys = tf.where(tf.range(tf.shape(keys)[1])[None, :] < usable[:, None], keys, 2.0)
        return tf.gather(captions, tf.argmin(keys, axis=1, output_type=tf.int32), batch_dims=1)

    def image_embedding(self, batch, training=False):
        """(B, embedding_dim): the image side of the joint embedding for a batch."""
        if self.image_feature_table is None:
            return self.image_encoder(self.encoder_input(batch), training=training)
        if "record" not in batch:
            raise UserError("--image-features needs the records' indices: train on --data annotations:FILE.jsonl")
        features = tf.gather(self._feature_constant, batch["record"])
        return features if self.image_encoder is None else self.image_encoder(features, training=training)

    def encoder_input(self, batch):
        """The images the CNN sees: the whole image, or (``model.box_crop_size``) a crop around the bird."""
        size = self.config.model.box_crop_size
        if not size:
            return batch["image"]
        if "bbox" not in batch:
            raise UserError("model.box_crop_size needs the birds' boxes: train on synthetic-birds or an "
                            "annotations:FILE.jsonl source, or set model.box_crop_size=0")
        ymin, xmin, ymax, xmax = tf.unstack(tf.cast(batch["bbox"], tf.float32), axis=-1)
        # A square (in pixels) around the box, 15% wider than its longer side: the bird keeps its shape.
        height, width = (float(n) for n in batch["image"].shape[1:3])
        half = 0.575 * tf.maximum((ymax - ymin) * height, (xmax - xmin) * width)
        cy, cx = (ymin + ymax) * 0.5 * height, (xmin + xmax) * 0.5 * width
        boxes = tf.stack([(cy - half) / height, (cx - half) / width, (cy + half) / height, (cx + half) / width], -1)
        count = tf.shape(boxes)[0]
        # Outside the image reads 0: mid-grey in the images' [-1, 1].
        return tf.image.crop_and_resize(batch["image"], boxes, tf.range(count), (size, size))

    def trained_class(self, labels):
        """1.0 for labels the loss trains on, 0.0 for the zero-shot classes (``loss.zero_shot_every``)."""
        every = self.config.loss.zero_shot_every
        if not every:
            return tf.ones_like(labels, tf.float32)
        return tf.cast(tf.not_equal(tf.math.floormod(labels, every), 0), tf.float32)

    def train_step(self, batch, global_batch_size):
        variables = self.variables()
        labels, loss_cfg = batch["label"], self.config.loss
        weights = self.trained_class(labels)
        with tf.GradientTape() as tape:
            # The embeddings' losses in float32 whatever train.precision.
            text = to_float32(self.text_encoder(self._chosen_tokens(batch), training=True))
            image = to_float32(self.image_embedding(batch, training=True))
            all_image, all_text, all_labels = gather_features(image, text, labels)
            all_weights = self.trained_class(all_labels)
            if loss_cfg.objective == "sje":
                per_example, correct = structured_joint_embedding_loss(
                    image, text, labels, weights, all_image, all_text, all_labels, all_weights,
                    reduction=loss_cfg.reduction, center=loss_cfg.center_features)
            else:
                per_example, correct = joint_embedding_loss(image, text, labels, all_image, all_text, all_labels,
                                                            center=loss_cfg.center_features, all_weights=all_weights)
                per_example = per_example * weights
            # The global mean over the trained examples (held-out ones count as absent).
            scale = global_batch_size / tf.maximum(tf.reduce_sum(all_weights), 1.0)
            loss = average(per_example * scale, global_batch_size)
        minimize(self.optimizer, tape, loss, variables)
        return {"loss": loss, "accuracy": average(correct * weights * scale, global_batch_size)}

    # -- evaluation and use ----------------------------------------------------------------
    def encode(self, captions) -> np.ndarray:
        """(N,) caption strings -> (N, embedding_dim)."""
        tokens = tokenize_all(list(captions), self.config.model.doc_length)
        return np.asarray(self.text_encoder(tokens, training=False))

    def zero_shot(self, num_images: int = 512, batch_size: int = 64, held_out: bool = True) -> dict:
        """Zero-shot classification and retrieval on evaluation images, as the paper scores them.

        A class's text embedding is the mean of the embeddings of all its images' captions
        (``classify_sje_tcnn.lua`` ``extract_txt_char``: ``torch.mean(out, 1)``); an image is
        classified by its best-scoring class among the evaluated ones (top-1 accuracy), and each
        class's text ranks the images (mean average precision, the paper's retrieval metric
        without its cut-off at 50). With ``loss.center_features`` both sides are centred first
        (the mean of the evaluated images; the mean of all their captions' embeddings), the
        score training used. ``held_out``: the zero-shot classes (``loss.zero_shot_every``),
        otherwise the trained ones; the images come from a stream other than training's.

        Returns:
            {"top1", "map", "chance" (1 / classes), "classes", "images"}.
        """
        from tfcoord.data import make_dataset

        data = make_dataset(self.config.data.source, image_size=self.image_size(), batch_size=batch_size,
                            seed=self.config.train.seed + EVALUATION_SEED_OFFSET, training=False)
        images, labels, class_texts = [], [], {}
        for batch in data.take(max(1, num_images // batch_size)):
            keep = self.trained_class(batch["label"]).numpy() == (0.0 if held_out else 1.0)
            if not keep.any():
                continue
            image = np.asarray(self.image_embedding(batch, training=False))
            tokens, counts, batch_labels = (batch["captions"].numpy(), batch["num_captions"].numpy(),
                                            batch["label"].numpy())
            images.append(image[keep])
            labels.append(batch_labels[keep])
            for i in np.flatnonzero(keep):
                text = np.asarray(self.text_encoder(tokens[i, :counts[i]], training=False))
                total, count = class_texts.get(int(batch_labels[i]), (0.0, 0))
                class_texts[int(batch_labels[i])] = (total + text.sum(0), count + len(text))
        if not images:
            raise UserError("no evaluation image of the chosen classes; raise num_images or check "
                            "loss.zero_shot_every")
        image, label = np.concatenate(images), np.concatenate(labels)
        classes = np.array(sorted(class_texts))
        text = np.stack([class_texts[c][0] / class_texts[c][1] for c in classes])
        if self.config.loss.center_features:
            # The score training optimised: centred over the batch, here the evaluated images and
            # all their captions. Centring leaves each side's mean free, and the CNN's and char-CNN-RNN's
            # means grow much larger than what separates the classes (measured after the tiny preset:
            # text mean norm 6.0 of 6.1), so the raw image . text scores ranked by the means and
            # retrieved at chance even on the trained species.
            image = image - image.mean(0)
            text = text - (sum(class_texts[c][0] for c in classes) / sum(class_texts[c][1] for c in classes))
        scores = image @ text.T  # (images, classes)
        top1 = float(np.mean(classes[scores.argmax(1)] == label))
        precisions = []
        for j, c in enumerate(classes):
            relevant = (label[np.argsort(-scores[:, j], kind="stable")] == c)
            hits = np.cumsum(relevant)
            precisions.append(float(np.sum(hits[relevant] / (np.flatnonzero(relevant) + 1)) / relevant.sum()))
        return {"top1": top1, "map": float(np.mean(precisions)), "chance": 1.0 / len(classes),
                "classes": int(len(classes)), "images": int(len(label))}

    def scores(self, num: int) -> tuple[np.ndarray, np.ndarray]:
        """Score matrix (num, num) of the first ``num`` evaluation images against their held-out captions."""
        if self._probe is None:
            from tfcoord.data import first_elements

            self._probe = first_elements(self.config.data.source, image_size=self.image_size(), num=num,
                                         seed=self.config.train.seed)
        probe = self._probe
        # The last caption of each image: held out from training when num_holdout >= 1.
        last = np.maximum(probe["num_captions"] - 1, 0)
        tokens = probe["captions"][np.arange(len(last)), last]
        text = np.asarray(self.text_encoder(tokens, training=False))
        image = np.asarray(self.image_embedding(probe, training=False))
        if self.config.loss.center_features:  # as training scores a batch (see zero_shot)
            image, text = image - image.mean(0), text - text.mean(0)
        return image @ text.T, probe["label"]

    def progress_image(self, seed, num):
        """The image-by-caption score matrix of held-out captions (bright = high; diagonal = matches)."""
        from tfcoord.images import to_uint8

        scores, _ = self.scores(max(4, min(num, 32)))
        span = scores.max() - scores.min()
        normalised = (scores - scores.min()) / (span if span > 0 else 1.0)
        heat = np.kron(normalised, np.ones((8, 8)))  # 8 x 8 pixels a score
        rgb = np.stack([heat, heat ** 2, 1.0 - heat], axis=-1)
        return to_uint8(rgb * 2.0 - 1.0)

    def serving_functions(self, patch_size=None):
        return {"encode_text": encode_text_signature(self.text_encoder, self.config.model.doc_length)}

    def serving_description(self):
        cfg = self.config.model
        return ServingDescription(
            model_type="text-encoder",
            paper="Learning Deep Representations of Fine-Grained Visual Descriptions (Reed et al., CVPR 2016)",
            signatures={"encode_text": {"doc": "caption tokens (1 + alphabet index of each lower-cased character, "
                                               f"0-padded to {cfg.doc_length}) -> text_embedding"}},
            extra={"alphabet": ALPHABET, "doc_length": cfg.doc_length, "embedding_dim": cfg.embedding_dim},
            output={"name": "text_embedding"}).to_json()
