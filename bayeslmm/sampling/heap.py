"""Handing the C heap's free pages back to the system while a fit runs."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["release_freed_memory"]


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``); False where there is none.

    XLA's CPU runtime allocates each execution's temporary buffers with
    ``malloc``; the chains' threads free them into glibc arenas of their
    own, which glibc keeps, so a fit's resident memory grows with every
    chunk of draws (:mod:`bayeslmm.sampling.nuts`) although little is live.
    Called after each chunk that ran 1 s or more and before the recovery of
    the integrated-out effects. Cost: milliseconds on a small heap, up to a
    few hundred on a heap of a GB (docs/benchmarks.md has the peaks with and
    without it).
    """
    libc = _libc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError:  # not glibc
        return False
