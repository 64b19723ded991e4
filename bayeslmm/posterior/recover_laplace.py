"""Draws of the effects integrated out by a Laplace plan, one per posterior draw.

For each posterior draw theta = (beta, L, phi, sampled effects), the
marginalized effects are drawn from the Laplace approximation of their
conditional posterior, the Gaussian at the conditional mode,
``v ~ N(v_hat, H(v_hat)^{-1})``, ``u = L v``
(:func:`bayeslmm.ops.laplace.laplace_recover_batch`). This is approximate
given theta for non-Gaussian families (exact for gaussian): the effects'
conditional skewness is lost, which matters where the Laplace value itself
is poor (few observations per level, docs/marginalization.md).

Cost: per draw one Newton solve (K steps, each a row pass and one blocked
factorization; K = 1 from the mode the sampler's warm-started solve found
at that draw, where bayeslmm's NUTS ran, else K steps from ``v = 0``) plus
two triangular solves, i.e. about K + 1 evaluations of the log-density;
draws run in compiled ``lax.map`` loops over equal chunks (one
compilation, with the fast-compiling XLA options of
:mod:`bayeslmm.sampling.xla` on small data), the chunks in parallel
threads, each chunk holding its (chunk, N) offsets. The loop is compiled
after sampling, not beside it as the Gaussian recovery's is: the sampler's
Newton-loop programs already keep both cores of a small machine compiling,
and a third compilation beside them lengthened cbpp's fit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compile_laplace_loop", "recover_laplace_effects"]


def laplace_chunking(S, design, plan, md):
    """``(chunk, pad)`` for S draws of a Laplace plan: the Gaussian recovery's chunks, counting the offsets too."""
    from .recover import _chunking

    return _chunking(S, md, [design.block(b) for b in plan.sampled], n_rows=design.n)


def compile_laplace_loop(design, plan, md, chunk, compiler_options=None, has_starts=False):
    """The recovery loop of a Laplace plan compiled for ``chunk`` draws: what :func:`recover_laplace_effects` runs.

    ``has_starts``: the loop takes each draw's Newton start (the sampler's mode at that draw).
    Cost: one XLA compilation of a Newton solve and a draw (no sampling).
    """
    from bayeslmm.ops.laplace import compile_laplace_recover_batch
    from bayeslmm.pymc_model.laplace import laplace_data, laplace_phi_name

    ld = laplace_data(design, md)
    return compile_laplace_recover_batch(
        ld.md, ld.family, chunk, len(design.fixed_names), [design.block(n).dim for n in md.names],
        design.n, ld.trials, laplace_phi_name(design) is not None, ld.max_steps, ld.tol,
        compiler_options=compiler_options, has_starts=has_starts)


def recover_laplace_effects(idata, design, plan, md, random_seed=None, compiler_options=None) -> None:
    """Add ``r_<factor>`` for every factor of a Laplace plan to ``idata.posterior`` (in place).

    Needs ``fixef``, ``L_<factor>`` (removed here once used), the family
    parameter (``shape`` or ``sigma``) where it has one, and ``r_<factor>`` of
    the sampled factors. Where the posterior holds the sampler's conditional
    modes at each draw (:data:`bayeslmm.sampling.driver.INNER_MODE`, removed
    here once used), each draw's Newton solve starts there, and one step
    confirms it. The chunks' random keys are split in chunk order,
    so the draws do not depend on how many threads run them.
    ``compiler_options``: XLA options for the loop (None: those of
    :func:`bayeslmm.sampling.xla.options_for` for the data's rows).
    """
    import jax

    from bayeslmm.pymc_model.laplace import laplace_offset, laplace_phi_name
    from bayeslmm.sampling.driver import INNER_MODE
    from bayeslmm.sampling.xla import options_for

    from .recover import chunk_keys, padded, run_chunks, stack_draws, store_effects

    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    S, n = n_chain * n_draw, design.n
    beta = stack_draws(post["fixef"]) if "fixef" in post else np.zeros((S, 0))
    Ls = [stack_draws(post[f"L_{name}"]) for name in md.names]
    phi_name = laplace_phi_name(design)
    phi = stack_draws(post[phi_name]) if phi_name else None
    sampled = [design.block(b) for b in plan.sampled]
    r_sampled = [stack_draws(post[f"r_{b.name}"]) for b in sampled]
    base = laplace_offset(design)
    modes = stack_draws(post[INNER_MODE]) if INNER_MODE in post else None

    chunk, pad = laplace_chunking(S, design, plan, md)
    beta, Ls, r_sampled, phi, modes = padded((beta, Ls, r_sampled, phi, modes), S, pad)
    options = options_for(n) if compiler_options is None else compiler_options
    run = compile_laplace_loop(design, plan, md, chunk, options, has_starts=modes is not None)
    starts, subs = chunk_keys(S + pad, chunk, random_seed)

    def one(i):
        sl = slice(starts[i], starts[i] + chunk)
        off = np.broadcast_to(base, (chunk, n)).copy()
        for b, r in zip(sampled, r_sampled):
            off += np.einsum("snd,nd->sn", r[sl][:, b.group_index, :], b.values)
        with jax.enable_x64(True):  # per thread
            # Host arrays as they are: jnp.asarray would compile a copy program per shape.
            us = run(subs[i], beta[sl], [L[sl] for L in Ls], off, None if phi is None else phi[sl],
                     None if modes is None else modes[sl])
            return [np.asarray(u) for u in us]

    store_effects(idata, design, md, run_chunks(one, len(starts)), S)
    if INNER_MODE in idata.posterior:
        idata.posterior = idata.posterior.drop_vars(INNER_MODE)
