"""Exact draws of the marginalized group-level effects, one per posterior draw.

For each posterior draw theta = (beta, sigma, L, sampled effects) the
marginalized effects are drawn from p(u | y, theta) = N(Lambda A^{-1} c,
Lambda A^{-1} Lambda^T) (see :mod:`bayeslmm.ops.marginal`). Together with the
posterior draws of theta these are exact draws from the joint posterior, so
they go into ``idata.posterior`` as ``r_<factor>`` with the same dims as in
an unmarginalized fit.

Cost: one factorization per draw (the same as one likelihood evaluation),
in compiled loops over chunks of draws, the chunks in parallel threads.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

__all__ = ["recover_effects", "start_compiling"]

# Per chunk of draws, the inputs (the sampled factors' effects) and outputs.
# The row means of sampled effects are formed one draw at a time inside the
# compiled loop, so a chunk holds nothing of size N.
_CHUNK_BYTES = 16e6


def stack_draws(da) -> np.ndarray:
    """(chain, draw, ...) -> (chain*draw, ...)."""
    a = np.asarray(da)
    return a.reshape((-1,) + a.shape[2:])


def _workers() -> int:
    """Threads that run the chunks of draws: XLA releases the GIL while a loop runs."""
    return max(1, min(os.cpu_count() or 1, 8))


def _chunking(S, md, sampled, n_rows=0):
    """``(chunk, pad)``: S draws in equal chunks of ``chunk``, the last one padded by ``pad`` repeated draws.

    Equal chunks: one chunk shape, so one compilation instead of two. At least as many chunks as :func:`_workers`
    (when there are that many draws), so that every core recovers draws. ``n_rows``: per-draw inputs of
    that length (the Laplace recovery's offsets).
    """
    per_draw = 8 * (sum(b.n_levels * b.dim for b in sampled) + sum(md.sizes) * 2 + n_rows)
    n_chunks = max(-(-S * per_draw // _CHUNK_BYTES), min(_workers(), S), 1)
    chunk = -(-S // int(n_chunks))
    n_chunks = -(-S // chunk)
    return chunk, n_chunks * chunk - S


class Prepared(NamedTuple):
    """A recovery loop compiled for ``n_samples`` posterior draws (see :func:`start_compiling`)."""

    n_samples: int
    future: Future


def start_compiling(design, plan, md, n_samples, compiler_options=None) -> Prepared | None:
    """Compile the recovery loop for ``n_samples`` draws in a thread; pass the result to :func:`recover_effects`.

    Started before sampling, the compilation runs while the sampler's JAX
    translation and its own compilation keep one core busy, instead of after
    sampling. ``compiler_options``: XLA options (:mod:`bayeslmm.sampling.xla`).
    None for a Laplace plan, whose recovery (:mod:`~bayeslmm.posterior.recover_laplace`) compiles its own loop.
    """
    import jax

    from bayeslmm.ops import compile_recover_batch

    if plan.approximation is not None:
        return None  # recover_laplace_effects compiles its own loop, after sampling (see there)
    sampled = [design.block(n) for n in plan.sampled]
    chunk, _ = _chunking(n_samples, md, sampled)
    dims = [design.block(n).dim for n in md.names]

    def compile_():
        with jax.enable_x64(True):  # per thread
            return compile_recover_batch(md, chunk, len(design.fixed_names), dims, None,
                                         [(b.n_levels, b.dim) for b in sampled], compiler_options=compiler_options)

    pool = ThreadPoolExecutor(1, thread_name_prefix="bayeslmm-recovery-compile")
    fut = pool.submit(compile_)
    pool.shutdown(wait=False)
    return Prepared(n_samples, fut)


def recover_effects(idata, design, plan, md, random_seed=None, prepared: Prepared | None = None,
                    compiler_options=None) -> None:
    """Add ``r_<factor>`` for every marginalized factor to ``idata.posterior`` (in place).

    Needs ``fixef``, ``sigma`` and ``L_<factor>`` in the posterior (the
    builder registers ``L_<factor>`` for marginalized factors; it is removed
    here once used), plus ``r_<factor>`` of the sampled factors for partial
    plans. ``prepared``: the loop compiled ahead by :func:`start_compiling`
    (used when it was compiled for this many draws). ``compiler_options``:
    XLA options (:mod:`bayeslmm.sampling.xla`) for a Laplace plan's loop, which is compiled here.

    The chunks of draws run in :func:`_workers` threads, each with its own
    random key (split in chunk order, so the draws do not depend on the
    threads). Cost: one blocked factorization per draw. A Laplace plan's
    effects are drawn from the Laplace approximation instead
    (:func:`~bayeslmm.posterior.recover_laplace.recover_laplace_effects`).
    """
    import jax
    import jax.numpy as jnp

    from bayeslmm.ops import recover_batch

    if plan.approximation == "laplace":
        from .recover_laplace import recover_laplace_effects

        return recover_laplace_effects(idata, design, plan, md, random_seed=random_seed,
                                       compiler_options=compiler_options)
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    S = n_chain * n_draw
    beta = stack_draws(post["fixef"]) if "fixef" in post else np.zeros((S, 0))
    sigma = stack_draws(post["sigma"])
    Ls = [stack_draws(post[f"L_{name}"]) for name in md.names]
    sampled = [design.block(n) for n in plan.sampled]
    r_sampled = [stack_draws(post[f"r_{b.name}"]) for b in sampled]
    # Device arrays once: every chunk reads the same rows.
    terms = [(jnp.asarray(b.group_index, jnp.int64), jnp.asarray(b.values, jnp.float64)) for b in sampled]

    chunk, pad = _chunking(S, md, sampled)
    beta, sigma, Ls, r_sampled = padded((beta, sigma, Ls, r_sampled), S, pad)
    if prepared is not None and prepared.n_samples == S:
        compiled = prepared.future.result()

        def run(key, b, s, L, rs):
            return compiled(key, b, s, L, None, terms if rs else None, rs or None)
    else:
        def run(key, b, s, L, rs):
            return recover_batch(md, key, b, s, L, None, (terms, rs) if rs else None)
    starts, subs = chunk_keys(S + pad, chunk, random_seed)

    def one(i):
        sl = slice(starts[i], starts[i] + chunk)
        with jax.enable_x64(True):  # per thread
            draws = run(subs[i], beta[sl], sigma[sl], [L[sl] for L in Ls], [r[sl] for r in r_sampled])
            return [np.asarray(u) for u in draws]

    store_effects(idata, design, md, run_chunks(one, len(starts)), S)


def padded(arrays, S, pad):
    """Each array (or list of arrays, or None) of S draws with ``pad`` copies of its last draw appended.

    The last chunk is padded so that every chunk has one shape (one compilation).
    """
    if not pad:
        return arrays
    take = np.concatenate([np.arange(S), np.full(pad, S - 1)])
    return tuple(None if a is None else [x[take] for x in a] if isinstance(a, list) else a[take] for a in arrays)


def chunk_keys(n, chunk, random_seed):
    """Start of every chunk of ``n`` (padded) draws and one random key per chunk, split in chunk order.

    The keys are a host array: indexing a device array compiles a small XLA program per shape.
    """
    import jax

    key = jax.random.PRNGKey(np.random.default_rng(random_seed).integers(2**31))
    starts = list(range(0, n, chunk))
    return starts, np.asarray(jax.random.split(key, len(starts)))


def run_chunks(one, n_chunks):
    """``[one(0), ..., one(n_chunks - 1)]``, in :func:`_workers` threads when there are several chunks."""
    with threadpool_limits(1, "blas"):  # as in sampling: BLAS threads only oversubscribe here
        if n_chunks == 1:
            return [one(0)]
        with ThreadPoolExecutor(min(_workers(), n_chunks), thread_name_prefix="bayeslmm-recover") as pool:
            return list(pool.map(one, range(n_chunks)))


def store_effects(idata, design, md, out, S):
    """Put the chunks' effects (per chunk, one (chunk, M_k, d_k) array per factor of ``md``) into the posterior.

    The ``L_<factor>`` draws the recovery read are dropped from it.
    """
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    for k, name in enumerate(md.names):
        blk = design.block(name)
        u = np.concatenate([o[k] for o in out])[:S].reshape(n_chain, n_draw, blk.n_levels, blk.dim)
        post[f"r_{name}"] = xr.DataArray(
            u,
            dims=("chain", "draw", f"{name}__level", f"{name}__effect"),
            coords={"chain": post["chain"], "draw": post["draw"],
                    f"{name}__level": list(blk.levels), f"{name}__effect": list(blk.terms)},
        )
    idata.posterior = post.drop_vars([f"L_{n}" for n in md.names])
