"""What every command-line entry point shares: one-line errors and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys

from tfcoord.errors import USER_ERROR_EXIT_CODE, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line on stderr (exit 2)."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def quiet_tensorflow() -> None:
    """Fewer start-up lines from TensorFlow (its C++ logs cannot all be silenced)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(main, argv=None) -> int:
    """Call ``main(argv)``; a :class:`UserError` becomes ``error: ...`` on stderr and exit 2."""
    try:
        return main(argv) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT_CODE
