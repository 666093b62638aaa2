"""Write failures injected at the file-system layer of one process (Python's ``open``).

``install(["*log.jsonl"])`` makes every later write to a matching path fail the way a
full disk does: ``open`` succeeds, ``write``/``flush`` raise ``OSError(ENOSPC)``. Used via
``tiny_run.run_module(..., python_prefix="import fault_shim; fault_shim.install([...])")``.
TensorFlow's own C++ writes are exercised with a real file-size limit instead
(``RLIMIT_FSIZE``: the kernel refuses the write with EFBIG).
"""

import builtins
import errno
import fnmatch
import io
import os


class FullDiskFile:
    def __init__(self, handle, path):
        self._handle, self._path = handle, path

    def _fail(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)

    write = writelines = flush = _fail

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()
        return False

    def __iter__(self):
        return iter(self._handle)


def install(patterns):
    real_open = builtins.open

    def open_with_faults(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, bytes, os.PathLike)) and any(flag in mode for flag in "wax+"):
            path = os.fsdecode(os.fspath(file))
            if any(fnmatch.fnmatch(path, pattern) for pattern in patterns):
                return FullDiskFile(handle, path)
        return handle

    builtins.open = open_with_faults
    io.open = open_with_faults
