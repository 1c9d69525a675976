"""Reading an input file someone else controls: a regular file, under a size cap, streamed.

Metric CSVs and the live-state file come from folders that other people (or
other jobs) write to. Reading ``/dev/zero``, a FIFO nobody writes, or a
multi-gigabyte file whole would hang or exhaust the cron host before any
size check could run, so the type and size are checked on the open
descriptor first and the read itself stops at the cap.
"""

from __future__ import annotations

import errno
import os
import stat

_CHUNK = 1 << 20


class InputFileError(Exception):
    """Why a file may not be read; the caller names the file and what to do."""


def read_regular(path: str | os.PathLike[str], limit: int, *, follow_symlinks: bool) -> bytes:
    """The bytes of ``path``; InputFileError unless it is a regular file of at most ``limit`` bytes.

    FileNotFoundError passes through (callers treat a missing file their own
    way). Without ``follow_symlinks`` a symbolic link is refused rather than
    read, so a link to ``/etc/passwd`` never has its content echoed in an error.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise InputFileError("is a symbolic link, not a regular file; copy the data in") from None
        if isinstance(e, FileNotFoundError):
            raise
        raise InputFileError(f"cannot read it ({e.strerror or e}); check the file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError("is not a regular file (a device, pipe or folder); pass a plain file")
        if info.st_size > limit:
            raise InputFileError(_too_big(info.st_size, limit))
        parts: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while we read it
                raise InputFileError(_too_big(total, limit))
        return b"".join(parts)
    except OSError as e:
        raise InputFileError(f"cannot read it ({e.strerror or e}); check the file") from None
    finally:
        os.close(fd)


def _too_big(size: int, limit: int) -> str:
    return (
        f"is over the {limit // 1024 // 1024} MB limit"
        f"{f' ({size / 1024 / 1024:.1f} MB)' if size > limit else ''}; trim or split it"
    )
