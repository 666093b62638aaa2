"""The one exception type for mistakes a user can fix.

Command-line entry points catch :class:`UserError` once, print its message as a
single line on stderr and exit with status 2. Anything else is a bug and keeps
its traceback.
"""

import sys


class UserError(Exception):
    """A problem in the user's input (config, data, arguments), with the fix in the message."""


USER_ERROR_EXIT_CODE = 2


def warn(message: str) -> None:
    """A problem the command works around, as one ``warning:`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
