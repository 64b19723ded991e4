"""Warm starts for the inner Newton solves of a log-density, handed in while it is traced.

A Laplace-marginal log-density solves for the conditional mode of the
effects at every evaluation. Inside a Hamiltonian trajectory consecutive
evaluations are one leapfrog step apart, so the mode at the previous point
is a much better start than ``v = 0`` (docs/marginalization.md has the step
counts). The log-density itself is a PyTensor graph translated to JAX, with
no input for such a start; so a sampler traces it inside
:func:`warm_started`, and each Laplace kernel met during that trace takes the
next start from the context and records its mode there (the pattern of
NumPyro's effect handlers). Outside the context every kernel starts from 0,
as before.

The context is per thread and only has an effect while a function is being
traced or evaluated eagerly in that thread; the starts and modes are
ordinary (traced) JAX values of that computation.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["warm_started", "next_start", "record_mode"]


class _State(threading.local):
    starts = None  # the starts handed in (a sequence, or None: every kernel from 0)
    modes = None   # the modes recorded, in the order the kernels were met; None outside the context


_STATE = _State()


@contextmanager
def warm_started(starts=None):
    """Inside, each Laplace kernel starts its Newton solve from the next of ``starts`` and records its mode.

    Yields the list the modes are appended to (flat vectors, one per kernel,
    in the order the kernels are evaluated; the same order as ``starts``).
    ``starts``: a sequence of such vectors, or None (every kernel from 0:
    the way to learn how many kernels there are and their sizes, e.g. under
    ``jax.eval_shape``). Not re-entrant: a nested context replaces the outer
    one until it ends.
    """
    saved = (_STATE.starts, _STATE.modes)
    _STATE.starts, _STATE.modes = (None if starts is None else list(starts)), []
    try:
        yield _STATE.modes
    finally:
        _STATE.starts, _STATE.modes = saved


def next_start():
    """``(active, start)``: whether a :func:`warm_started` context is active, and the start for the next kernel.

    ``start`` is None where the context has none for it (the kernel then starts from 0).
    """
    if _STATE.modes is None:
        return False, None
    i = len(_STATE.modes)
    starts = _STATE.starts
    return True, (starts[i] if starts is not None and i < len(starts) else None)


def record_mode(mode) -> None:
    """Record a kernel's mode in the active context (call after :func:`next_start` said it is active)."""
    _STATE.modes.append(mode)
