"""The marginal Gaussian log-density of a linear mixed model, and exact draws of the integrated-out effects.

Model (docs/marginalization.md)::

    y = X beta + offset + sum_k Z_k u_k + eps,   eps ~ N(0, sigma^2 W^{-1}),
    u_{k,j} = L_k v_{k,j},  v ~ N(0, I),

with ``W = diag(w)`` lme4's precision weights (``W = I`` without them; with
them every ``y``, ``X``, ``Z`` and offset below stands for its
``W^{1/2}``-scaled version, and the density gains ``1/2 sum log w_i``).

With ``r = y - X beta - offset``, ``Lambda = blockdiag(I_{M_k} (x) L_k)``,
``A = I_D + Lambda^T Z^T Z Lambda / sigma^2`` and ``c = Lambda^T Z^T r / sigma^2``::

    log p(y | beta, sigma, L) = -1/2 [N log(2 pi sigma^2) + log|A| + r^T r / sigma^2 - c^T A^{-1} c]
    v | y ~ N(A^{-1} c, A^{-1}),   u_k = reshape(v_k, (M_k, d_k)) @ L_k^T.

``A`` is assembled here from the cross-products of
:class:`~bayeslmm.ops.data.MarginalData` and factored by
:mod:`bayeslmm.ops.linalg`. All functions take the data first and are pure
functions of the rest: they can be jitted (with ``md`` closed over) and
differentiated by JAX in reverse mode.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .data import MarginalData
from .linalg import factor_core, logdet_quad, mm, sandwich, solve_mean, within

__all__ = ["marginal_logp", "conditional_mean", "recover", "recover_batch", "compile_recover_batch",
           "sampled_mean"]

_LOG_2PI = float(np.log(2 * np.pi))


def _apply_lam(md, G, Ls2):
    """``G @ Lambda_2`` for G (..., D2): ``L_k`` applied to each level's d_k columns."""
    if all(d == 1 for d in md.dims[1:]):
        # Lambda_2 is diagonal: one broadcast multiply instead of K-1 slices.
        lam = jnp.concatenate([jnp.broadcast_to(L[0, 0], (m,))
                               for L, m in zip(Ls2, md.levels[1:])])
        return G * lam
    lead, out, start = G.shape[:-1], [], 0
    for L, m, d in zip(Ls2, md.levels[1:], md.dims[1:]):
        blk = G[..., start:start + m * d].reshape(*lead, d, m)
        out.append(mm(blk, L, -2).reshape(*lead, m * d))
        start += m * d
    return out[0] if len(out) == 1 else jnp.concatenate(out, axis=-1)


# ---------------------------------------------------------------------------

def _residual_stats(md: MarginalData, beta, offset):
    """``r^T r`` and ``Z^T r`` (flat, internal layout, length D).

    Sufficient mode: O(D p + p^2), from statistics centred on ``beta_hat``.
    Rows mode: O(N (p + sum d_k)), scatter-adds of the residual.
    """
    if md.mode == "sufficient":
        if offset is not None:
            raise ValueError("an offset needs MarginalData built with sufficient=False")
        delta = beta - md.beta_hat
        rtr = md.ete - 2.0 * (delta @ md.Xte) + delta @ (md.XtX @ delta)
        return rtr, md.Zte - md.ZtX @ delta
    r = md.y - md.X @ beta
    if offset is not None:
        # md.y and md.X are already W^{1/2}-scaled; the offset is a mean, so it is scaled too.
        r = r - (offset if md.sqrt_w is None else md.sqrt_w * offset)
    # One scalar segment sum per effect dimension: measured 4x faster (value
    # and gradient, N = 1e6) than one scatter of all N x sum(d_k) products.
    ztr = jnp.concatenate([
        jax.ops.segment_sum(z[a] * r, g, num_segments=m)
        for g, z, m in zip(md.row_groups, md.row_values, md.levels) for a in range(z.shape[0])])
    return r @ r, ztr



def _blocks(md: MarginalData, beta, sigma, Ls, offset):
    """Blocks of ``A`` and ``c`` (planar layout), plus ``r^T r``, ``s2`` and the L's.

    Cost O(M1 d1^3 + D2 (M1 d1 + D2) d) on top of :func:`_residual_stats`.
    """
    if len(Ls) != md.n_factors:
        raise ValueError(f"expected {md.n_factors} scale factors L, got {len(Ls)}")
    if not jax.config.jax_enable_x64:
        raise RuntimeError("bayeslmm's marginal log-density needs float64: call it inside "
                           "`with jax.enable_x64(True):` (bayeslmm's fits do).")
    Ls = [jnp.asarray(Ls[k]) for k in md.order]
    s2 = sigma * sigma
    rtr, ztr = _residual_stats(md, beta, offset)
    m1, d1 = md.levels[0], md.dims[0]
    L1 = Ls[0]
    c1 = mm(ztr[:m1 * d1].reshape(d1, m1), L1, 0) / s2       # c_j = L^T b_j / s2
    A1 = jnp.eye(d1)[..., None] + within(md.S1, L1) / s2      # I + L^T S_j L / s2
    if not md.G21:
        return (A1, None, None, c1, None), rtr, s2, Ls
    Ls2, d2 = Ls[1:], md.dense_size
    # Lambda_2^T Z_2^T Z_2 Lambda_2: the per-level blocks of each dense factor,
    # scattered into place, plus (with several dense factors) the blocks between them.
    diag = jnp.concatenate([within(S, L).reshape(-1) for S, L in zip(md.S2, Ls2)])
    A22 = jnp.eye(d2).at[md.diag_rows, md.diag_cols].add(diag / s2)
    if md.G22x is not None:
        A22 = A22 + _apply_lam(md, _apply_lam(md, md.G22x, Ls2).T, Ls2) / s2
    A21 = jnp.concatenate([sandwich(G, L, L1).reshape(-1, d1, m1)
                           for G, L in zip(md.G21, Ls2)]) / s2
    c2 = _apply_lam(md, ztr[m1 * d1:], Ls2) / s2
    return (A1, A21, A22, c1, c2), rtr, s2, Ls


def marginal_logp(md: MarginalData, beta, sigma, Ls, offset=None):
    """Log-density of ``y`` with the marginalized random effects integrated out.

    ``-1/2 [N log(2 pi sigma^2) + log|A| + r^T r / sigma^2 - c^T A^{-1} c]`` with
    ``log|A| = 2 sum log diag C1 + 2 sum log diag C2`` and
    ``c^T A^{-1} c = |w1|^2 + |w2|^2``. With precision weights (``md`` built
    with ``weights=``) ``r^T r``, ``Z^T r`` and ``Z^T Z`` carry the row weights,
    ``N`` counts the rows with ``w_i > 0`` and ``+1/2 sum log w_i`` is added:
    the density ``N(y | X beta, Z Lambda Lambda^T Z^T + sigma^2 W^{-1})``.

    Parameters
    ----------
    md : MarginalData
    beta : array (p,)
    sigma : scalar
        Residual standard deviation.
    Ls : sequence of arrays (d_k, d_k)
        Lower-triangular scale factors ``L_k = diag(tau_k) R_k`` in caller order.
    offset : array (N,), optional
        Added to the mean (e.g. sampled, non-marginalized effects). Rows mode only.

    Returns
    -------
    scalar

    Notes
    -----
    Cost per evaluation: O(M1 d1^3 + M1 d1 D2^2 + D2^3) plus O(N (p + sum d_k))
    in rows mode or O(D p) in sufficient mode (independent of N). The
    reverse-mode gradient costs about three evaluations and forms nothing of
    size N x D or N x N.
    """
    blocks, rtr, s2, _ = _blocks(md, beta, sigma, Ls, offset)
    return (-0.5 * (md.n_likelihood * (_LOG_2PI + jnp.log(s2)) + logdet_quad(*blocks) + rtr / s2)
            + 0.5 * md.sum_log_w)


def _draw(md: MarginalData, blocks, Ls, xi):
    """``v = C^{-T}(w + xi)``, then ``u_{k,j} = L_k v_{k,j}``, as (M_k, d_k) in caller order.

    Cost: one blocked factorization plus O(M1 d1 D2 + D2^2).
    """
    core = factor_core(*blocks)
    d1 = md.sizes[0]
    xi1 = None if xi is None else xi[:d1].reshape(core.w1.shape)
    xi2 = None if xi is None or core.C2 is None else xi[d1:]
    v1, v2 = solve_mean(core, xi1, xi2)
    vs = [v1] if v2 is None else [v1] + jnp.split(v2, np.cumsum(md.sizes[1:-1]))
    us = [None] * md.n_factors
    for i, (v, L, m, d) in enumerate(zip(vs, Ls, md.levels, md.dims)):
        us[md.order[i]] = mm(v.reshape(d, m), L.T, 0).T
    return us


def conditional_mean(md: MarginalData, beta, sigma, Ls, offset=None):
    """Posterior mean of the effects given the parameters: ``u_k`` from ``v = A^{-1} c``.

    Returns a list (caller order) of (M_k, d_k) arrays.
    """
    blocks, _, _, Ls = _blocks(md, beta, sigma, Ls, offset)
    return _draw(md, blocks, Ls, None)


def recover(md: MarginalData, key, beta, sigma, Ls, offset=None):
    """One exact draw of the marginalized effects from ``p(u | y, beta, sigma, L)``.

    ``v = C^{-T}(C^{-1} c + xi)``, ``xi ~ N(0, I_D)``, so ``v ~ N(A^{-1} c, A^{-1})``.

    Returns a list (caller order) of (M_k, d_k) arrays. Cost: that of one
    :func:`marginal_logp` evaluation plus two triangular solves.
    """
    xi = jax.random.normal(key, (sum(md.sizes),), dtype=jnp.float64)
    blocks, _, _, Ls = _blocks(md, beta, sigma, Ls, offset)
    return _draw(md, blocks, Ls, xi)


def sampled_mean(terms, rs):
    """``sum_k z_{k,n} . r_{k, g_k(n)}`` for each row ``n``: the mean of the sampled (not marginalized) effects.

    ``terms`` holds one ``(group_index (N,), values (N, d_k))`` pair per
    sampled factor, ``rs`` their effects ``(M_k, d_k)``. Cost O(N sum_k d_k).
    """
    out = None
    for (g, v), r in zip(terms, rs):
        m = jnp.sum(v * r[g], axis=-1)
        out = m if out is None else out + m
    return out


# One jitted batch function per MarginalData, dropped with it: the function
# reaches md through a weak reference (md is only needed while tracing), so the
# cache entry does not keep its own key alive.
_BATCH_FNS: "weakref.WeakKeyDictionary[MarginalData, Callable]" = weakref.WeakKeyDictionary()


def _batch_fn(md: MarginalData):
    fn = _BATCH_FNS.get(md)
    if fn is None:
        ref = weakref.ref(md)

        def run(key, beta, sigma, Ls, offset, terms, rs):
            # A loop over draws, not vmap: batched factorizations were slower per
            # draw and held S Schur complements at once. The sampled effects' row
            # means are formed inside the loop, one draw at a time, because all
            # (S, N) of them do not fit in memory on large data (docs/benchmarks.md).
            keys = jax.random.split(key, beta.shape[0])

            def one(a):
                k, b, s, L, off, r = a
                if r is not None:
                    m = sampled_mean(terms, r)
                    off = m if off is None else off + m
                return recover(ref(), k, b, s, L, off)

            return jax.lax.map(one, (keys, beta, sigma, Ls, offset, rs))

        fn = _BATCH_FNS[md] = jax.jit(run)
    return fn


def compile_recover_batch(md: MarginalData, n_draws, n_fixed, dims, n_rows=None, sampled=None,
                          compiler_options=None):
    """:func:`recover_batch` compiled ahead of time for ``n_draws`` draws: a callable ``(key, beta, sigma, Ls, offset, terms, rs)``.

    ``dims`` are the effect dimensions of the factors in caller order;
    ``n_rows`` the length of ``offset`` (None: no offset); ``sampled`` the
    ``(M_k, d_k)`` of each sampled factor whose effects ``rs`` are passed
    (None: none; then ``terms`` and ``rs`` are None). The compilation is
    what a first :func:`recover_batch` call of these shapes would do; XLA
    releases the GIL while it compiles, so it can run in a thread beside
    other work. ``compiler_options``: extra XLA options for this compilation.
    """
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)  # jax.random.PRNGKey's raw key
    offset = None if n_rows is None else f64((n_draws, n_rows))
    terms = rs = None
    if sampled:
        terms = [(jax.ShapeDtypeStruct((md.n_obs,), jnp.int64), f64((md.n_obs, d))) for _, d in sampled]
        rs = [f64((n_draws, m, d)) for m, d in sampled]
    lowered = _batch_fn(md).lower(key, f64((n_draws, n_fixed)), f64((n_draws,)),
                                  [f64((n_draws, d, d)) for d in dims], offset, terms, rs)
    return lowered.compile(compiler_options=compiler_options or None)


def recover_batch(md: MarginalData, key, beta, sigma, Ls, offset=None, sampled=None):
    """:func:`recover` vectorized over S parameter draws (one jitted call).

    Parameters
    ----------
    key : jax PRNG key
    beta : array (S, p)
    sigma : array (S,)
    Ls : sequence of arrays (S, d_k, d_k), caller order
    offset : array (S, N), optional
    sampled : (terms, rs), optional
        Sampled factors whose effects enter the mean, ``rs[k]`` (S, M_k, d_k)
        with ``terms[k] = (group_index (N,), values (N, d_k))``: their row
        means (:func:`sampled_mean`) are added to ``offset`` draw by draw,
        so nothing of size S x N is formed.

    Returns
    -------
    list of arrays (S, M_k, d_k), caller order.

    Notes
    -----
    The draws are taken one after another inside one compiled loop, so memory
    does not grow with S beyond the inputs and outputs. Compiled once per
    ``md`` and shape.
    """
    terms, rs = (None, None) if sampled is None else sampled
    if terms is not None:
        terms = [(jnp.asarray(g, dtype=jnp.int64), jnp.asarray(v, dtype=jnp.float64)) for g, v in terms]
        rs = [jnp.asarray(r) for r in rs]
    return _batch_fn(md)(key, jnp.asarray(beta), jnp.asarray(sigma), [jnp.asarray(L) for L in Ls],
                         None if offset is None else jnp.asarray(offset), terms, rs)
