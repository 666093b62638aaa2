"""Write a TF Serving ``models.config`` for one or several exported models.

    python -m export.models_config NAME=DIR [NAME=DIR ...] [--out models.config]
                                   [--server-root /models] [--keep N]

``DIR`` is a model base folder written by ``python -m export.saved_model`` (numbered
versions inside). Each model serves its newest ``--keep`` versions, labelled ``stable``
(and ``canary`` for the newest when two are kept); see
:func:`export.server_files.model_server_config`. ``--server-root`` is where the server
sees the folders (e.g. ``-v $PWD/serving:/models`` then ``--server-root /models``);
default: their absolute paths here. Start the server with
``--model_config_file=<server path of models.config>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tfcoord import cli
from tfcoord.errors import UserError


def parse_models(pairs) -> dict:
    """``{name: folder}`` from ``NAME=DIR`` arguments; UserError on a malformed or repeated name."""
    models = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"expected NAME=DIR, got {pair!r}; e.g. faces=serving/faces")
        if name in models:
            raise UserError(f"model name {name!r} is given twice ({models[name]} and {folder}); names must differ")
        models[name] = Path(folder)
    return models


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m export.models_config",
                                description="Write a TF Serving models.config for exported models.")
    parser.add_argument("models", nargs="+", metavar="NAME=DIR",
                        help="model name and its base folder (the --out of python -m export.saved_model)")
    parser.add_argument("--out", default="models.config", help="file to write (default models.config)")
    parser.add_argument("--server-root", metavar="PATH",
                        help="folder holding the model folders on the server, e.g. /models in docker "
                             "(default: their absolute paths here)")
    parser.add_argument("--keep", type=int, default=1,
                        help="newest versions served per model (default 1; 2 serves the newest as 'canary')")
    args = parser.parse_args(argv)
    if Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a folder; pass a file name, e.g. {Path(args.out) / 'models.config'}")
    args.models = parse_models(args.models)
    return args


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow()  # the serving protos import TensorFlow
    from export.server_files import model_server_config_text

    text = model_server_config_text(args.models, args.server_root, args.keep)
    Path(args.out).write_text(text)
    print(f"wrote {args.out} ({len(args.models)} model{'s' * (len(args.models) > 1)}; "
          f"tensorflow_model_server --model_config_file={args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
