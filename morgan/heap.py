"""Giving the heap's free pages back to the system between a build's phases (glibc).

glibc keeps the memory a process frees in its heap for the next allocations; only what is
free at the heap's very top is returned by itself. A phase that lets tens of MB go (the
resolution's pages, the walk's temporary texts, the lock's runs) leaves them resident,
mostly in pieces the next phase does not reuse, and its growth stacks on them: at 5 000
projects ~30-60 MB of a cold build's high-water mark was such free memory of glibc's.
:func:`trim` (``malloc_trim``) hands the free pages inside the heap back (each call a few
ms); elsewhere than on glibc it does nothing. Python's own small-object arenas are not
glibc's heap: they are returned when empty, whatever this does.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

__all__ = ["trim"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        import ctypes

        fn: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (ValueError, OSError, AttributeError):
        return None
    return fn


def trim() -> bool:
    """Return the heap's free pages to the system; whether it could (glibc only)."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
