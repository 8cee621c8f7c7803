"""Seeing a program read the files of a directory, through Linux inotify (libc by ctypes, no package):
an event to wait on when a program polls files without saying so."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

IN_CLOSE_NOWRITE = 0x10  # a file opened for reading was closed: one whole read
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _checked(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


class Reads:
    """While open (a context manager): how often each file in ``directory`` was read, by name."""

    def __init__(self, directory: Path) -> None:
        self.counts: Counter[str] = Counter()
        self._fd = _checked(_libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")
        try:
            _checked(
                _libc.inotify_add_watch(self._fd, os.fsencode(directory), IN_CLOSE_NOWRITE),
                f"watching {directory}",
            )
        except OSError:
            os.close(self._fd)
            raise

    def wait(self, name: str, count: int, timeout: float) -> None:
        """Until ``name`` has been read ``count`` times since the watch began; fails after ``timeout``
        seconds."""
        deadline = time.monotonic() + timeout
        while self.counts[name] < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not within {timeout}s: {count} reads of {name} ({self.counts[name]})")
            if select.select([self._fd], [], [], left)[0]:
                self._take(os.read(self._fd, 65536))

    def _take(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            size = _EVENT.unpack_from(data, offset)[3]
            name = data[offset + _EVENT.size : offset + _EVENT.size + size].rstrip(b"\0")
            offset += _EVENT.size + size
            if name:  # the directory's own events (its listing) have none
                self.counts[os.fsdecode(name)] += 1

    def __enter__(self) -> Reads:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        os.close(self._fd)
