"""XLA compiler options for the fits bayeslmm runs: trade run time for compile time where it pays.

On the CPU, XLA's newer fusion emitters generate each fused kernel through
MLIR, which costs compile time; the older emitters compile faster and run
small models as fast. Measured on the 2-core benchmark CPU (JAX 0.10.2,
2 chains x 2,000 iterations, NumPyro NUTS):

| model | NUTS compile, new -> old emitters | time per gradient |
|---|---|---|
| dillonE1 ``||``, everything marginalized | 3.6 s -> 2.4 s | unchanged (about 0.28 ms) |
| dutch, everything marginalized | 4.5 s -> 3.3 s | unchanged |
| InstEval-shaped, 73,421 rows read per gradient | 0.9 s -> 0.7 s (value and gradient only) | 0.5 ms -> 0.8 ms |

Gathers and scatters over many rows run slower with the old emitters, so they
are used only when a log-density evaluation reads fewer than
:data:`ROW_LIMIT` rows (every model whose likelihood runs on sufficient
statistics, and small data sets); a large-N fit keeps XLA's defaults, where
sampling, not compilation, dominates.

JAX takes per-function compiler options (``jax.jit(..., compiler_options=)``)
but the sampler's jit lives in NumPyro, so :func:`xla_compile_options` sets
them for every compilation inside a ``with`` block, through JAX's private
``jax._src.compiler.get_compile_options``. If that function moves, the block
does nothing and XLA's defaults apply: slower compilation, same results.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

__all__ = ["ROW_LIMIT", "FAST_COMPILE", "options_for", "xla_compile_options"]

#: Rows read per log-density evaluation below which the fast-compiling emitters are used.
ROW_LIMIT = 5_000

#: XLA debug options that cut compile time on the CPU.
FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}


def options_for(rows_per_eval: int) -> dict:
    """The XLA options for a model whose log-density reads ``rows_per_eval`` data rows.

    ``rows_per_eval`` is 0 when the likelihood runs on sufficient statistics
    only (every factor marginalized). Options apply on the CPU backend only.
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


@contextlib.contextmanager
def xla_compile_options(options: dict):
    """Compile every JAX computation inside the block with the extra XLA ``options``.

    Options a caller passes itself (``jax.jit(..., compiler_options=)``) win.
    JAX's in-memory cache of compiled functions does not see these options:
    a function compiled before (outside the block) is reused as it is. The
    hook is process-wide while the block runs, so JAX code compiled by other
    threads meanwhile gets the options too (harmless: they change compile
    time and speed, not results).
    """
    try:
        from jax._src import compiler
    except ImportError:  # pragma: no cover - JAX reorganized its internals
        compiler = None
    orig = getattr(compiler, "get_compile_options", None)
    if not options or orig is None or "env_options_overrides" not in inspect.signature(orig).parameters:
        yield
        return

    def with_options(*args, env_options_overrides=None, **kwargs):
        merged = dict(options)
        merged.update(env_options_overrides or {})
        return orig(*args, env_options_overrides=merged, **kwargs)

    compiler.get_compile_options = with_options
    try:
        yield
    finally:
        compiler.get_compile_options = orig
