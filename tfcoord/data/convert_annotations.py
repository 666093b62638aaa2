"""Convert a data set into GAWWN's JSONL annotations (see :mod:`tfcoord.data.gawwn.annotations`).

Examples::

    python -m tfcoord.data.convert_annotations cub --root CUB_200_2011 --captions cub_icml/text_c10 \\
        --out data/cub_train.jsonl --split train
    python -m tfcoord.data.convert_annotations mpii --annotations mpii_human_pose_v1_u12_1.mat \\
        --images mpii/images --captions mhp_captions.tsv --out data/mhp.jsonl

then train with ``--data annotations:data/cub_train.jsonl``. Problems in single records
(malformed rows, missing images, boxes or visible parts outside the image) are printed as
``FILE:LINE: problem; record skipped`` and the record is left out; ``--strict`` refuses the
conversion at the first problem instead.
"""

from __future__ import annotations

import sys

from tfcoord import cli
from tfcoord.errors import UserError


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m tfcoord.data.convert_annotations",
                                description="Convert CUB-200-2011 or MPII Human Pose into GAWWN JSONL annotations.")
    sub = parser.add_subparsers(dest="dataset", metavar="{cub,mpii}")
    cub = sub.add_parser("cub", help="CUB-200-2011 + text_c10 captions")
    cub.add_argument("--root", required=True, help="the CUB_200_2011 folder (images.txt, bounding_boxes.txt, ...)")
    cub.add_argument("--captions", help="the text_c10 folder: <class>/<image>.txt, one caption per line")
    cub.add_argument("--embeddings", help="folder of precomputed text embeddings <class>/<image>.npy")
    cub.add_argument("--split", choices=("all", "train", "test"), default="all",
                     help="images of train_test_split.txt to keep (default all)")
    mpii = sub.add_parser("mpii", help="MPII Human Pose (single-person images) + captions")
    mpii.add_argument("--annotations", required=True, help="mpii_human_pose_v1_u12_1.mat or its JSON conversion")
    mpii.add_argument("--images", required=True, help="the folder of the MPII images")
    mpii.add_argument("--captions", required=True, help="tab-separated '<image name>\\t<caption>' lines")
    for command in (cub, mpii):
        command.add_argument("--out", required=True, help="the JSONL file to write")
        command.add_argument("--strict", action="store_true", help="refuse the conversion at the first problem")
        command.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    if args.dataset is None:
        raise UserError("choose a data set: python -m tfcoord.data.convert_annotations {cub,mpii} --help")
    return args


def main(argv=None):
    args = parse_args(argv)
    from tfcoord.data.gawwn.converters import convert_cub, convert_mpii

    echo = None if args.quiet else (lambda line: print(f"warning: {line}", file=sys.stderr, flush=True))
    if args.dataset == "cub":
        result = convert_cub(args.root, args.out, captions=args.captions, embeddings=args.embeddings,
                             split=args.split, strict=args.strict, echo=echo)
    else:
        result = convert_mpii(args.annotations, args.images, args.captions, args.out, strict=args.strict, echo=echo)
    print(f"wrote {result.records} records to {result.out} ({len(result.problems)} problem(s) skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
