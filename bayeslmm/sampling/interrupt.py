"""Ctrl-C during a fit: an interrupt that a callback swallowed is raised again.

CPython raises KeyboardInterrupt in whatever Python code runs when SIGINT
arrives. During a fit that is often a callback (JAX's garbage-collection
hook, a weakref finalizer) whose exceptions the interpreter prints and
ignores, so the fit would run on. :func:`interrupt_guard` records every SIGINT
as well as raising it, and :func:`check_interrupt`, called wherever the fit
waits or passes from one stage to the next, raises it again if it was lost.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading

__all__ = ["check_interrupt", "interrupt_guard"]

_pending = threading.Event()


@contextlib.contextmanager
def interrupt_guard():
    """For the duration of the block, SIGINT both raises KeyboardInterrupt and is remembered.

    Installed only in the main thread and only over Python's default handler
    (a handler the user or the notebook installed is left alone); the
    previous handler is restored on exit. Costs nothing while no signal
    arrives.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def handler(signum, frame):
        _pending.set()
        # Raised inside a garbage-collection callback, the exception would only be
        # printed ("Exception ignored in ...") and dropped; check_interrupt raises it.
        if frame is not None and any(getattr(cb, "__code__", None) is frame.f_code for cb in gc.callbacks):
            return
        raise KeyboardInterrupt

    _pending.clear()
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _pending.clear()


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived inside :func:`interrupt_guard` and was swallowed."""
    if _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt
