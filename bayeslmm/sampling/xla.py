"""XLA compiler options for the programs bayeslmm compiles: trade run time for compile time where it pays.

On the CPU, XLA's newer fusion emitters generate each fused kernel through
MLIR, which costs compile time; the older emitters compile faster and run
small models as fast, but run gathers and scatters over many rows slower
(the figures are in docs/marginalization.md). So the older ones are used
only when a log-density evaluation reads fewer than :data:`ROW_LIMIT` rows
(every model whose likelihood runs on sufficient statistics, and small data
sets); a large-N fit keeps XLA's defaults, where sampling, not
compilation, dominates.

The options go to JAX's public ``Lowered.compile(compiler_options=...)``
for the programs bayeslmm lowers itself (the sampler's and the recovery's).
"""

from __future__ import annotations

import functools

__all__ = ["FAST_COMPILE", "ROW_LIMIT", "options_for"]

#: Rows read per log-density evaluation below which the fast-compiling emitters are used.
ROW_LIMIT = 5_000

#: XLA debug options that cut compile time on the CPU.
FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}


def options_for(rows_per_eval: int) -> dict:
    """The XLA options for a model whose log-density reads ``rows_per_eval`` data rows.

    ``rows_per_eval`` is 0 when the likelihood runs on sufficient statistics
    only (every factor marginalized). Options apply on the CPU backend
    only, and only where this jaxlib's XLA knows them.
    """
    import jax

    if jax.default_backend() != "cpu" or rows_per_eval >= ROW_LIMIT or not _supported():
        return {}
    return dict(FAST_COMPILE)


@functools.cache
def _supported() -> bool:
    """Whether this jaxlib's XLA knows the options (older ones reject unknown flags)."""
    import jax

    try:
        jax.jit(lambda x: x + 1.0).lower(1.0).compile(compiler_options=dict(FAST_COMPILE))
    except Exception:  # noqa: BLE001 - any failure means: do not use them
        return False
    return True
