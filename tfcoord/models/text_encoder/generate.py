"""The text encoder's part of ``python -m tfcoord.generate``: captions to embeddings.

``python -m tfcoord.generate --run runs/text-encoder-tiny --caption "a red bird" --caption "..."``
writes ``embeddings.npy`` (one row per caption, float32) and ``captions.json``; the rows
can be given to a GAWWN run with ``--embedding`` or stored as an annotation file's
``text_embeddings``. ``--mean`` writes their mean instead (one image's text, as GAWWN uses it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfcoord.errors import UserError


def add_arguments(parser) -> None:
    group = parser.add_argument_group("text encoder")
    group.add_argument("--caption", action="append", default=[], metavar="TEXT", help="a caption to encode; repeatable")
    group.add_argument("--mean", action="store_true", help="write the mean of the captions' embeddings")


def check_arguments(args) -> None:
    if not args.caption:
        raise UserError('pass at least one --caption "..." to encode')


def generate(model, args, out: Path) -> list[Path]:
    from tfcoord.data.gawwn.captions import known_characters

    for caption in args.caption:
        if not known_characters(caption):
            raise UserError(f"caption {caption!r} has no letters, digits or punctuation the encoder knows")
    embeddings = model.encode(args.caption)
    if args.mean:
        embeddings = embeddings.mean(axis=0, keepdims=True)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "embeddings.npy", embeddings.astype(np.float32))
    (out / "captions.json").write_text(json.dumps({"captions": args.caption, "mean": args.mean}, indent=1))
    return [out / "embeddings.npy", out / "captions.json"]
