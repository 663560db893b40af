"""The checks every reader makes before a decoder sees a file."""

from __future__ import annotations

import os
import stat

from ..errors import SampleError

_SPECIAL = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def check_input_file(path: str) -> int:
    """The size of ``path`` if it is a readable, non-empty regular file; a SampleError
    (``not_found``, ``unreadable``, ``empty_file``) otherwise.

    Anything but a regular file is refused before it is opened: opening a FIFO blocks until
    a writer appears (forever, in a batch job), and a device such as /dev/zero never ends.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SampleError("not_found", "no such file (or a symlink to nothing)") from None
    except OSError as exc:
        raise SampleError("unreadable", f"cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SampleError("unreadable", "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        what = _SPECIAL.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise SampleError("unreadable", f"is {what}, not a regular file; refusing to read it")
    if not os.access(path, os.R_OK):
        raise SampleError("unreadable", "cannot read: permission denied")
    if info.st_size == 0:
        raise SampleError("empty_file", "the file is empty (0 bytes)")
    return info.st_size
