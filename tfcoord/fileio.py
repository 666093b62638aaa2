"""Crash-safe file writes and readable I/O errors.

A file written with :func:`atomic_write_bytes` is either its old content or its
complete new content, whatever happens meanwhile (SIGKILL, power loss, a full
disk): the bytes go to a temporary file in the same folder, are flushed to the
disk, and replace the target with one ``os.replace`` (atomic on POSIX); the folder
entry is flushed too.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path


def fsync_directory(folder) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically; on failure the old file is untouched and no temp file remains."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path, sync: bool = False) -> str:
    """The SHA-256 of a file, read in chunks; ``sync`` also flushes the file to disk."""
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            sha.update(chunk)
        if sync:
            os.fsync(file.fileno())
    return sha.hexdigest()


_HINTS = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free disk space (quota exceeded)",
    errno.EFBIG: "the file size limit was reached (ulimit -f); raise it or free space",
    errno.EACCES: "fix the folder's permissions",
    errno.EPERM: "fix the folder's permissions",
    errno.EROFS: "the file system is read-only; write to another folder",
}


def describe_write_error(err: BaseException) -> str:
    """``'<strerror>; <what to do>'`` for an OSError or a TensorFlow I/O error."""
    number = getattr(err, "errno", None)
    text = getattr(err, "strerror", None) or (str(err).splitlines() or [type(err).__name__])[0]
    message = getattr(err, "message", None)
    if isinstance(message, str) and message:  # tf.errors.OpError: the OS error is the message's last clause
        first_line = message.splitlines()[0]
        text = first_line.rsplit(";", 1)[-1].strip() or first_line
        text = text.replace(" [Op:SaveV2]", "").replace(" [Op:MergeV2Checkpoints]", "")
        lowered = text.lower()
        number = (errno.ENOSPC if "no space" in lowered else errno.EFBIG if "too large" in lowered
                  else errno.EACCES if "permission" in lowered else errno.EROFS if "read-only" in lowered else None)
    hint = _HINTS.get(number, "check the disk and the folder's permissions")
    return f"{text}; {hint}"
