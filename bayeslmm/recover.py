"""Exact draws of the marginalized group-level effects, one per posterior draw.

For each posterior draw theta = (beta, sigma, L, sampled effects) the
marginalized effects are drawn from p(u | y, theta) = N(Lambda A^{-1} c,
Lambda A^{-1} Lambda^T) (see :mod:`bayeslmm.ops.kernels`). Together with the
posterior draws of theta these are exact draws from the joint posterior, so
they go into ``idata.posterior`` as ``r_<factor>`` with the same dims as in
an unmarginalized fit.

Cost: one factorization per draw (the same as one likelihood evaluation),
in one compiled loop over draws; chunks bound the memory of the mean offset
of partial plans (S x N).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

__all__ = ["recover_effects", "start_compiling"]

# Per chunk of draws, the partial plans' mean offsets (S x N) and their
# temporaries take a few times this: on the InstEval-shaped model recovery in
# 64 MB chunks raised the process's peak by 120 MB, in 16 MB chunks by 40-55 MB,
# and took 2.2-3.1 s instead of 3.4 s.
_CHUNK_BYTES = 16e6


def stack_draws(da) -> np.ndarray:
    """(chain, draw, ...) -> (chain*draw, ...)."""
    a = np.asarray(da)
    return a.reshape((-1,) + a.shape[2:])


def _chunking(S, design, md, n_sampled):
    """``(chunk, pad)``: S draws in equal chunks of ``chunk``, the last one padded by ``pad`` repeated draws.

    Equal chunks: one chunk shape, so one compilation (0.6 s each on
    dillonE1) instead of two.
    """
    per_draw = 8 * (design.n * (1 + bool(n_sampled)) + sum(md.sizes) * 4)
    chunk = int(max(1, min(S, _CHUNK_BYTES // max(per_draw, 1))))
    n_chunks = -(-S // chunk)
    chunk = -(-S // n_chunks)
    return chunk, n_chunks * chunk - S


class Prepared(NamedTuple):
    """A recovery loop compiled for ``n_samples`` posterior draws (see :func:`start_compiling`)."""

    n_samples: int
    future: Future


def start_compiling(design, plan, md, n_samples) -> Prepared:
    """Compile the recovery loop for ``n_samples`` draws in a thread; pass the result to :func:`recover_effects`.

    Started before sampling, the compilation (0.5-0.6 s on small models)
    runs while the sampler's JAX translation and its own compilation keep
    one core busy, instead of after sampling.
    """
    from .ops import compile_recover_batch

    n_sampled = len(plan.sampled)
    chunk, _ = _chunking(n_samples, design, md, n_sampled)
    dims = [design.block(n).dim for n in md.names]
    pool = ThreadPoolExecutor(1, thread_name_prefix="bayeslmm-recovery-compile")
    fut = pool.submit(compile_recover_batch, md, chunk, len(design.fixed_names), dims,
                      design.n if n_sampled else None)
    pool.shutdown(wait=False)
    return Prepared(n_samples, fut)


def recover_effects(idata, design, plan, md, random_seed=None, prepared: Prepared | None = None) -> None:
    """Add ``r_<factor>`` for every marginalized factor to ``idata.posterior`` (in place).

    Needs ``fixef``, ``sigma`` and ``L_<factor>`` in the posterior (the
    builder registers ``L_<factor>`` for marginalized factors; it is removed
    here once used), plus ``r_<factor>`` of the sampled factors for partial
    plans. ``prepared``: the loop compiled ahead by :func:`start_compiling`
    (used when it was compiled for this many draws).
    """
    import jax

    from .ops import recover_batch

    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    S = n_chain * n_draw
    beta = stack_draws(post["fixef"]) if "fixef" in post else np.zeros((S, 0))
    sigma = stack_draws(post["sigma"])
    Ls = [stack_draws(post[f"L_{name}"]) for name in md.names]
    sampled = [design.block(n) for n in plan.sampled]
    r_sampled = [stack_draws(post[f"r_{b.name}"]) for b in sampled]

    chunk, pad = _chunking(S, design, md, len(sampled))
    if pad:
        take = np.concatenate([np.arange(S), np.full(pad, S - 1)])
        beta, sigma = beta[take], sigma[take]
        Ls = [L[take] for L in Ls]
        r_sampled = [r[take] for r in r_sampled]
    if prepared is not None and prepared.n_samples == S:
        run = prepared.future.result()
    else:
        def run(*args):
            return recover_batch(md, *args)
    key = jax.random.PRNGKey(np.random.default_rng(random_seed).integers(2**31))
    out = [[] for _ in md.names]
    for start in range(0, S + pad, chunk):
        sl = slice(start, start + chunk)
        offset = None
        if sampled:
            offset = np.zeros((sl.stop - sl.start, design.n))
            for b, r in zip(sampled, r_sampled):
                offset += np.einsum("snd,nd->sn", r[sl][:, b.group_index, :], b.values)
        key, sub = jax.random.split(key)
        with threadpool_limits(1, "blas"):  # see sampling.py: BLAS threads only oversubscribe here
            draws = run(sub, beta[sl], sigma[sl], [L[sl] for L in Ls], offset)
        for k, u in enumerate(draws):
            out[k].append(np.asarray(u))
    for k, name in enumerate(md.names):
        blk = design.block(name)
        u = np.concatenate(out[k])[:S].reshape(n_chain, n_draw, blk.n_levels, blk.dim)
        post[f"r_{name}"] = xr.DataArray(
            u,
            dims=("chain", "draw", f"{name}__level", f"{name}__effect"),
            coords={"chain": post["chain"], "draw": post["draw"],
                    f"{name}__level": list(blk.levels), f"{name}__effect": list(blk.terms)},
        )
    idata.posterior = post.drop_vars([f"L_{n}" for n in md.names])
