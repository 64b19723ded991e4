"""Draws of the effects integrated out by a Laplace plan, one per posterior draw.

For each posterior draw theta = (beta, L, phi, sampled effects), the
marginalized effects are drawn from the Laplace approximation of their
conditional posterior, the Gaussian at the conditional mode,
``v ~ N(v_hat, H(v_hat)^{-1})``, ``u = L v``
(:func:`bayeslmm.ops.laplace.laplace_recover_batch`). This is approximate
given theta for non-Gaussian families (exact for gaussian): the effects'
conditional skewness is lost, which matters where the Laplace value itself
is poor (few observations per level, docs/marginalization.md).

Cost: per draw one Newton solve from ``v = 0`` (K steps, each a row pass and
one blocked factorization) plus two triangular solves, i.e. about K + 1
evaluations of the log-density; draws run in compiled ``lax.map`` loops
over equal chunks (one compilation), each chunk holding its (chunk, N)
offsets.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .recover import stack_draws

__all__ = ["recover_laplace_effects"]

_CHUNK_BYTES = 16e6


def recover_laplace_effects(idata, design, plan, md, random_seed=None) -> None:
    """Add ``r_<factor>`` for every factor of a Laplace plan to ``idata.posterior`` (in place).

    Needs ``fixef``, ``L_<factor>`` (removed here once used), the family
    parameter (``shape`` or ``sigma``) where it has one, and ``r_<factor>`` of
    the sampled factors.
    """
    import jax
    import jax.numpy as jnp

    from bayeslmm.ops.laplace import laplace_recover_batch
    from bayeslmm.pymc_model.laplace import laplace_data, laplace_offset, laplace_phi_name

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
    ld = laplace_data(design, md)

    chunk = int(max(1, min(S, _CHUNK_BYTES // (8 * max(n, 1)))))
    starts = list(range(0, S, chunk))

    def offsets(sl):
        off = np.broadcast_to(base, (sl.stop - sl.start, n)).copy()
        for b, r in zip(sampled, r_sampled):
            off += np.einsum("snd,nd->sn", r[sl][:, b.group_index, :], b.values)
        return off

    def take(a, sl):
        # The last chunk is padded with its last draw so that every chunk has one shape (one compilation).
        part = a[sl]
        short = chunk - part.shape[0]
        return part if not short else np.concatenate([part, np.repeat(part[-1:], short, axis=0)])

    key = jax.random.PRNGKey(np.random.default_rng(random_seed).integers(2**31))
    subs = jax.random.split(key, len(starts))
    out = []
    with jax.enable_x64(True):
        run = jax.jit(lambda k, b, L, o, p: laplace_recover_batch(ld.md, ld.family, k, b, L, o, ld.trials, p,
                                                                  ld.max_steps, ld.tol))
        for i, s0 in enumerate(starts):
            sl = slice(s0, min(S, s0 + chunk))
            us = run(subs[i], jnp.asarray(take(beta, sl)), [jnp.asarray(take(L, sl)) for L in Ls],
                     jnp.asarray(take(offsets(sl), slice(0, sl.stop - sl.start))),
                     None if phi is None else jnp.asarray(take(phi, sl)))
            out.append([np.asarray(u)[:sl.stop - sl.start] for u in us])
    for k, name in enumerate(md.names):
        blk = design.block(name)
        u = np.concatenate([o[k] for o in out]).reshape(n_chain, n_draw, blk.n_levels, blk.dim)
        post[f"r_{name}"] = xr.DataArray(
            u,
            dims=("chain", "draw", f"{name}__level", f"{name}__effect"),
            coords={"chain": post["chain"], "draw": post["draw"],
                    f"{name}__level": list(blk.levels), f"{name}__effect": list(blk.terms)},
        )
    idata.posterior = post.drop_vars([f"L_{n}" for n in md.names])
