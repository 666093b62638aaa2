"""What every command-line entry point shares: one-line errors and exit code 2, ``--version``, ``--verbose``,
and no TensorFlow start-up lines unless asked for."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

from tfcoord.errors import USER_ERROR_EXIT_CODE, UserError

# What TensorFlow 2.21 prints on stderr while it imports and finds its devices, before absl's logging is set
# up, so TF_CPP_MIN_LOG_LEVEL does not hide it: absl's notice, oneDNN / CUDA-stub / CPU-feature lines (I, W or
# E plus a timestamp), and the CPU-feature line's continuation.
STARTUP_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                          r"|[IWE]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] "
                          r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)")
_verbose = False  # --verbose of the command line being run


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line on stderr (exit 2), with ``--version`` and ``--verbose``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from tfcoord import __version__

        self.add_argument("--version", action="version", version=f"%(prog)s (tfcoord {__version__})")
        self.add_argument("--verbose", action="store_true",
                          help="show TensorFlow's own start-up and C++ log lines (hidden by default)")

    def parse_known_args(self, args=None, namespace=None):
        global _verbose
        namespace, extras = super().parse_known_args(args, namespace)
        _verbose = bool(getattr(namespace, "verbose", False))
        return namespace, extras

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def quiet_tensorflow() -> None:
    """Import TensorFlow and find its devices without its start-up lines on stderr.

    TensorFlow's C++ side writes them to file descriptor 2 directly, so they are caught there and every other
    line is passed on. Nothing is hidden when the user asked: ``--verbose``, or ``TF_CPP_MIN_LOG_LEVEL`` set in
    the environment.
    """
    if _verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    # Later C++ lines too, ERROR included: TensorFlow logs notices such as oneDNN's int64 fallback as errors,
    # and a multi-worker job logs every aborted collective; the errors that stop a command reach Python as
    # exceptions, which the CLI turns into its one line.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs here, once
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines()
                    if line.strip() and not STARTUP_LINE.match(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)


def run(main, argv=None) -> int:
    """Call ``main(argv)``; a :class:`UserError` becomes ``error: ...`` on stderr and exit 2."""
    try:
        return main(argv) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT_CODE
