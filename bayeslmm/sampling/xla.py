"""XLA compiler options for the programs bayeslmm compiles: trade run time for compile time where it pays.

On the CPU, XLA's newer fusion emitters generate each fused kernel through
MLIR, which costs compile time; the older emitters compile faster and run
small models as fast, but run gathers and scatters over many rows slower
(the figures are in docs/marginalization.md). So the older ones are used
only when a log-density evaluation reads fewer than :data:`ROW_LIMIT` rows
(every model whose likelihood runs on sufficient statistics, and small data
sets); a large-N fit keeps XLA's defaults, where sampling, not
compilation, dominates.

Most of what is left of a small fit's compile time is LLVM optimizing the
sampler's kernels, a few hundred small ones, most of them NUTS's own (its
tree builder and adaptation) whatever the model. Where the whole run is
predicted to be short (:data:`SHORT_RUN_S`, from
:func:`bayeslmm.model.plan.run_seconds`), the kernels are compiled without
LLVM's optimization passes as well (:data:`NO_LLVM_OPT`): they then run
slower, by less than the compile time saved (docs/benchmarks.md).

The options go to JAX's public ``Lowered.compile(compiler_options=...)``
for the programs bayeslmm lowers itself (the sampler's and the recovery's).
Options change the rounding of some operations, so the same seed gives
other (equally valid) draws under other options.
"""

from __future__ import annotations

import functools

__all__ = ["FAST_COMPILE", "NO_LLVM_OPT", "ROW_LIMIT", "SHORT_RUN_S", "options_for"]

#: Rows read per log-density evaluation below which the fast-compiling emitters are used.
ROW_LIMIT = 5_000

#: XLA debug options that cut compile time on the CPU.
FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}

#: Predicted seconds of one chain's run (:func:`bayeslmm.model.plan.run_seconds`) below which
#: :data:`NO_LLVM_OPT` is added. For the smallest models the prediction is high (its per-gradient
#: constant is that of a call from Python, which a step inside the compiled loop does not pay); the bar
#: lies between the registry's fits whose sampling took under a second and the first that took several.
SHORT_RUN_S = 3.0

#: XLA's backend (LLVM) optimization level 0, for runs too short to repay the optimization.
NO_LLVM_OPT = {"xla_backend_optimization_level": 0}


def options_for(rows_per_eval: int, run_seconds: float | None = None) -> dict:
    """The XLA options for a model whose log-density reads ``rows_per_eval`` data rows.

    ``rows_per_eval`` is 0 when the likelihood runs on sufficient statistics
    only (every factor marginalized). ``run_seconds``: the predicted length
    of one chain's run, or None if unknown (then never :data:`NO_LLVM_OPT`).
    Options apply on the CPU backend only, and only where this jaxlib's XLA
    knows them.
    """
    import jax

    if jax.default_backend() != "cpu" or rows_per_eval >= ROW_LIMIT or not _supported():
        return {}
    if run_seconds is not None and run_seconds < SHORT_RUN_S:
        return {**FAST_COMPILE, **NO_LLVM_OPT}
    return dict(FAST_COMPILE)


@functools.cache
def _supported() -> bool:
    """Whether this jaxlib's XLA knows the options (older ones reject unknown flags)."""
    import jax

    try:
        jax.jit(lambda x: x + 1.0).lower(1.0).compile(compiler_options={**FAST_COMPILE, **NO_LLVM_OPT})
    except Exception:  # noqa: BLE001 - any failure means: do not use them
        return False
    return True
