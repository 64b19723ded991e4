"""Laplace approximation to the marginal likelihood of a generalized linear mixed model.

Model (docs/marginalization.md, "Laplace approximation")::

    eta = X beta + offset + sum_k Z_k L_k v_k,   v ~ N(0, I_D),   y_i ~ p(y_i | eta_i, phi)

With ``l(eta) = sum_i log p(y_i | eta_i, phi)``, ``f(v) = l(eta(v)) - v^T v / 2``,
``g_i = dl_i/deta_i`` and ``w_i = -d^2 l_i / deta_i^2``::

    H(v) = I + Lambda^T Z^T W Z Lambda,    W = diag(w)
    v_hat = argmax f                       (Newton, IRLS form, step halving)
    log p(y | beta, L, phi) ~= f(v_hat) - log|H(v_hat)| / 2

(the ``2 pi`` factors of the prior and of the Gaussian integral cancel). ``H``
has the Gaussian engine's structure with ``1/sigma^2`` replaced by per-row
weights, so it is assembled here from row-wise scatter-adds of ``w`` and
factored by :func:`bayeslmm.ops.linalg.factor_core` (largest factor block
diagonal, the others a dense Schur complement of size D2). Nothing N x N is
formed; the only dense arrays are the Gaussian engine's (``D2 x M1 d1`` and
``D2 x D2``). For the gaussian family with identity link ``f`` is quadratic,
one Newton step is exact, and the value equals
:func:`bayeslmm.ops.marginal.marginal_logp`.

Gradients: implicit function theorem, not differentiation through the Newton
iterations. The mode is a :func:`jax.custom_vjp` function of the parameters
``theta = (beta, L, offset, phi)``; its reverse pass solves one linear system
with ``H`` (the adjoint of Margossian et al., NeurIPS 2020) and needs
nothing stored from the iterations, so memory and cost do not grow with the
number of Newton steps, a ``lax.while_loop`` with a data-dependent number of
steps can be used (a while loop has no reverse mode), and the gradient is
that of the exact mode rather than of the K-th iterate. Autodiff then
differentiates ``f(v_hat) - log|H(v_hat)|/2`` through ``v_hat`` and through
the custom VJP of :func:`bayeslmm.ops.linalg.logdet_quad` (third derivatives
of ``l`` enter via ``dW/deta``).

Families (``Family(name, link)``): ``poisson`` (log), ``binomial`` (logit,
probit; ``trials`` per row, 1 for bernoulli), ``negbinomial`` (log; ``phi``
the brms shape: variance ``mu + mu^2 / phi``), ``gaussian`` (identity;
``phi`` = sigma). All are log-concave in ``eta``, so ``f`` is strictly
concave and Newton with step halving converges from ``v = 0``.

Every function needs float64 (``jax.enable_x64(True)``) and a rows-mode
:class:`~bayeslmm.ops.data.MarginalData`, whose ``y`` is the response
(successes for binomial).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jax.scipy.stats import norm

from .data import MarginalData
from .linalg import _logdet_quad_bwd, factor_core, mm, solve_lower, solve_mean, tri_solve
from .marginal import _apply_lam
from .warm import next_start, record_mode

__all__ = ["Family", "FAMILIES", "compile_laplace_recover_batch", "laplace_logp", "laplace_mode", "laplace_recover",
           "laplace_newton_info", "laplace_recover_batch", "pointwise_loglik"]

_LOG_2PI = float(np.log(2 * np.pi))

FAMILIES = {"poisson": ("log",), "binomial": ("logit", "probit"), "bernoulli": ("logit", "probit"),
            "negbinomial": ("log",), "gaussian": ("identity",)}


class Family(NamedTuple):
    """A likelihood family and its link (brms names); hashable, so it can be static under jit."""

    name: str
    link: str | None = None

    def checked(self) -> "Family":
        if self.name not in FAMILIES:
            raise ValueError(f"family {self.name!r} has no Laplace form; choose one of {sorted(FAMILIES)}")
        link = self.link or FAMILIES[self.name][0]
        if link not in FAMILIES[self.name]:
            raise ValueError(f"link {link!r} is not available for family {self.name!r}; "
                             f"choose one of {FAMILIES[self.name]}")
        name = "binomial" if self.name == "bernoulli" else self.name
        return Family(name, link)


# jax.nn.softplus, jnp.logaddexp and jax.nn.sigmoid take their inf and NaN
# branches elementwise, which in float64 on the CPU costs more than the
# arithmetic (docs/benchmarks.md has the timings); every Newton step
# evaluates these over all rows. Each is written by branch
# (x >= 0 or not) so that its derivatives, which the gradient takes of g and
# w, are those of one smooth branch also at x = 0, where jnp.abs's are not.
def _nonneg(x):
    """``|x|``, differentiated at 0 as ``x``."""
    return jnp.where(x >= 0, x, -x)


def _softplus(x):
    """``log(1 + exp(x))`` without overflow."""
    return jnp.where(x >= 0, x, 0.0) + jnp.log1p(jnp.exp(-_nonneg(x)))


def _logaddexp(a, b):
    """``log(exp(a) + exp(b))`` without overflow."""
    return jnp.where(a >= b, a, b) + jnp.log1p(jnp.exp(-_nonneg(a - b)))


def _sigmoid_pair(x):
    """``(sigmoid(x), sigmoid(x) sigmoid(-x))`` from one exponential."""
    a = jnp.exp(-_nonneg(x))
    s = 1.0 + a
    return jnp.where(x >= 0, 1.0, a) / s, a / (s * s)


def pointwise_loglik(family: Family, y, eta, trials=None, phi=None):
    """``log p(y_i | eta_i, phi)`` per row, normalizing constants included. Cost O(N)."""
    name, link = family
    if name == "poisson":
        return y * eta - jnp.exp(eta) - gammaln(y + 1.0)
    if name == "binomial":
        n = 1.0 if trials is None else trials
        if link == "logit":
            lp, lq = -_softplus(-eta), -_softplus(eta)
        else:
            lp, lq = norm.logcdf(eta), norm.logcdf(-eta)
        const = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
        return const + y * lp + (n - y) * lq
    if name == "negbinomial":
        # log(mu + phi) = logaddexp(eta, log phi): no overflow for large eta.
        lmp = _logaddexp(eta, jnp.log(phi))
        return (gammaln(y + phi) - gammaln(phi) - gammaln(y + 1.0)
                + phi * (jnp.log(phi) - lmp) + y * (eta - lmp))
    if name == "gaussian":
        return -0.5 * (_LOG_2PI + 2.0 * jnp.log(phi) + ((y - eta) / phi) ** 2)
    raise ValueError(f"unknown family {name!r}")


def _loglik_eta(family, y, eta, trials, phi):
    """The part of ``log p(y_i | eta_i, phi)`` that varies with ``eta``: what Newton's step test compares."""
    name, link = family
    if name == "poisson":
        return y * eta - jnp.exp(eta)
    if name == "binomial":
        n = 1.0 if trials is None else trials
        if link == "logit":
            # log p = eta + log q, so one softplus serves both terms.
            return y * eta - n * _softplus(eta)
        return y * norm.logcdf(eta) + (n - y) * norm.logcdf(-eta)
    if name == "negbinomial":
        lmp = _logaddexp(eta, jnp.log(phi))
        return y * eta - (y + phi) * lmp
    return -0.5 * ((y - eta) / phi) ** 2


def _gw(family, y, eta, trials, phi):
    """``g_i = dl_i/deta_i`` and ``w_i = -d^2 l_i/deta_i^2``, in closed form where it is short.

    Closed forms (no log-likelihood evaluated, no nested autodiff) for every
    family but probit, which is differentiated elementwise. They stay
    differentiable: the gradient of the log-determinant needs ``dw/deta``.
    """
    name, link = family
    if name == "poisson":
        mu = jnp.exp(eta)
        return y - mu, mu
    if name == "binomial" and link == "logit":
        n = 1.0 if trials is None else trials
        p, pq = _sigmoid_pair(eta)
        return y - n * p, n * pq
    if name == "negbinomial":
        # mu / (mu + phi) as a sigmoid: no overflow for large eta.
        s, sq = _sigmoid_pair(eta - jnp.log(phi))
        return y - (y + phi) * s, (y + phi) * sq
    if name == "gaussian":
        prec = 1.0 / phi ** 2
        return (y - eta) * prec, jnp.broadcast_to(prec, eta.shape)

    def lsum(e):
        return jnp.sum(_loglik_eta(family, y, e, trials, phi))

    def gsum(e):
        return jnp.sum(jax.grad(lsum)(e))

    return jax.grad(lsum)(eta), -jax.grad(gsum)(eta)


def _derivs(family, y, eta, trials, phi):
    """``l_i``, ``g_i = dl_i/deta_i`` and ``w_i = -d^2 l_i/deta_i^2``."""
    return (pointwise_loglik(family, y, eta, trials, phi),) + _gw(family, y, eta, trials, phi)


# ---------------------------------------------------------------------------
# The whitened effects v are a flat vector in MarginalData's internal layout:
# [factor 1 (d1 * M1, dimension-major) | dense factors]; block k is v_k (d_k, M_k).

def _split(md, v):
    out, start = [], 0
    for m, d in zip(md.levels, md.dims):
        out.append(v[start:start + m * d].reshape(d, m))
        start += m * d
    return out


def _zlam_v(md, Ls, v):
    """``Z Lambda v`` per row: ``sum_k z_{k,n} . (L_k v_k)_{g_k(n)}``; O(N sum d_k)."""
    out = 0.0
    for vk, L, g, z in zip(_split(md, v), Ls, md.row_groups, md.row_values):
        u = mm(vk, L.T, 0)                                   # (d, M): u_j = L v_j
        out = out + sum(z[b] * u[b][g] for b in range(z.shape[0]))
    return out


def _lam_zt(md, Ls, r):
    """``Lambda^T Z^T r`` in planar blocks: c1 (d1, M1) and c2 (D2,) or None; O(N sum d_k)."""
    cs = []
    for L, g, z, m in zip(Ls, md.row_groups, md.row_values, md.levels):
        ztr = jnp.stack([jax.ops.segment_sum(z[a] * r, g, num_segments=m) for a in range(z.shape[0])])
        cs.append(mm(ztr, L, 0))                             # c_j = L^T (Z^T r)_j
    c2 = jnp.concatenate([c.reshape(-1) for c in cs[1:]]) if len(cs) > 1 else None
    return cs[0], c2


def _wsandwich(G, La, Lb):
    """``La^T G Lb`` blockwise, like linalg.sandwich but differentiable in G (G depends on W here)."""
    return mm(mm(G, Lb, 2), La, 0)


def _wblocks(md, Ls, w):
    """Blocks ``(A1, A21, A22)`` of ``H = I + Lambda^T Z^T W Z Lambda``.

    Gram blocks re-accumulated from the rows: ``N (sum_j d_j (d_j + 1) / 2 +
    sum_{j<k} d_j d_k)`` scatter-adds (a factor's own block is symmetric),
    then the Gaussian engine's sandwich products.
    """
    g1, z1, m1, d1 = md.row_groups[0], md.row_values[0], md.levels[0], md.dims[0]

    def per_level(g, z, m):
        # Symmetric in (a, b): d (d + 1) / 2 row passes, the rest mirrored.
        d = z.shape[0]
        wz = [w * z[a] for a in range(d)]
        S = {(a, b): jax.ops.segment_sum(wz[a] * z[b], g, num_segments=m) for a in range(d) for b in range(a, d)}
        return jnp.stack([jnp.stack([S[min(a, b), max(a, b)] for b in range(d)]) for a in range(d)])

    def within_w(S, L):
        d, _, m = S.shape
        return _wsandwich(S.reshape(d, 1, d, m), L, L).reshape(d, d, m)

    A1 = jnp.eye(d1)[..., None] + within_w(per_level(g1, z1, m1), Ls[0])
    if md.n_factors == 1:
        return A1, None, None
    d2 = md.dense_size
    dense = list(zip(Ls[1:], md.row_groups[1:], md.row_values[1:], md.levels[1:], md.dims[1:]))
    diag = jnp.concatenate([within_w(per_level(g, z, m), L).reshape(-1) for L, g, z, m, _ in dense])
    A22 = jnp.eye(d2).at[md.diag_rows, md.diag_cols].add(diag)
    if md.n_factors > 2:
        # Z_a^T W Z_b between different dense factors, scattered into (D2, D2).
        offs = np.cumsum([0] + [m * d for _, _, _, m, d in dense])
        G = jnp.zeros((d2, d2))
        for i, (_, ga, za, ma, da) in enumerate(dense):
            for j, (_, gb, zb, mb, db) in enumerate(dense):
                if i == j:
                    continue
                for a in range(da):
                    for b in range(db):
                        G = G.at[offs[i] + a * ma + ga, offs[j] + b * mb + gb].add(w * za[a] * zb[b])
        A22 = A22 + _apply_lam(md, _apply_lam(md, G, Ls[1:]).T, Ls[1:])
    A21 = []
    for L, g, z, m, d in dense:
        G = jnp.stack([jnp.stack([
            jax.ops.segment_sum(w * z[a] * z1[b], g * m1 + g1, num_segments=m * m1).reshape(m, m1)
            for b in range(d1)], axis=1) for a in range(d)])          # (d, M, d1, M1)
        A21.append(_wsandwich(G, L, Ls[0]).reshape(-1, d1, m1))
    return A1, jnp.concatenate(A21), A22


def _solve(md, blocks, rhs):
    """``H^{-1} rhs`` (flat) by the blocked Cholesky, and the factor."""
    d1, m1 = md.dims[0], md.levels[0]
    c1 = rhs[:d1 * m1].reshape(d1, m1)
    c2 = rhs[d1 * m1:] if md.n_factors > 1 else None
    core = factor_core(*blocks, c1, c2)
    v1, v2 = solve_mean(core)
    return (v1.reshape(-1) if v2 is None else jnp.concatenate([v1.reshape(-1), v2])), core


class _Ctx(NamedTuple):
    md: MarginalData
    family: Family
    trials: object
    max_steps: int
    tol: float


def _eta(ctx, beta, Ls, offset, v):
    eta = ctx.md.X @ beta + _zlam_v(ctx.md, Ls, v)
    return eta if offset is None else eta + offset


def _objective(ctx, v, beta, Ls, offset, phi):
    """``f(v) = l(eta(v)) - v^T v / 2``."""
    eta = _eta(ctx, beta, Ls, offset, v)
    return jnp.sum(pointwise_loglik(ctx.family, ctx.md.y, eta, ctx.trials, phi)) - 0.5 * v @ v


def _grad_f(ctx, v, beta, Ls, offset, phi):
    """``df/dv = Lambda^T Z^T g - v`` (flat); the root that defines the mode."""
    eta = _eta(ctx, beta, Ls, offset, v)
    _, g, _ = _derivs(ctx.family, ctx.md.y, eta, ctx.trials, phi)
    c1, c2 = _lam_zt(ctx.md, Ls, g)
    flat = c1.reshape(-1) if c2 is None else jnp.concatenate([c1.reshape(-1), c2])
    return flat - v


# Far from the mode the Newton system is both ill-conditioned and slow: with a
# log link and eta ~ 60 at v = 0 (a covariate of range 130 times a jittered
# slope), w = exp(eta) ~ 1e26, the condition number of H is about w, the
# blocked Cholesky's Schur complement loses positive definiteness and returns
# NaN, and even an exact Newton step moves eta by only (y - mu) / mu ~ -1 per
# iteration. So the step matrix uses w capped where H would exceed this
# condition number (any positive-definite matrix gives an ascent direction,
# and near the mode the cap does not bind, so convergence stays quadratic), and
# the step length is limited so that no row's eta moves by more than
# _ETA_RADIUS (the exp factor of e^10 per step).
_COND_MAX = 1e10
_ETA_RADIUS = 10.0


def _gram_bound(md, Ls):
    """Upper bound on the largest eigenvalue of ``(Z Lambda)^T (Z Lambda)``: O(D) from O(N) data constants.

    ``lambda_max(B^T B) <= sum_k lambda_max(B_k^T B_k)`` and each ``B_k^T B_k`` is
    block diagonal with blocks ``L_k^T Z_kj^T Z_kj L_k``, whose largest
    eigenvalue is at most ``||L_k||_F^2 trace(Z_kj^T Z_kj)``.
    """
    out = 0.0
    for L, g, z, m in zip(Ls, md.row_groups, md.row_values, md.levels):
        c = float(np.max(np.bincount(np.asarray(g), np.sum(np.asarray(z) ** 2, axis=0), minlength=m)))
        out = out + c * jnp.sum(L * L)
    return out


def _newton(ctx, beta, Ls, offset, phi, v_init=None):
    """Mode of ``f`` and the number of Newton steps taken, from ``v_init`` (None or not finite: from 0).

    IRLS step ``v_new = H~^{-1} Lambda^T Z^T (W~ Z Lambda v + g)`` with
    ``W~ = min(W, w_cap)`` (``w_cap`` keeps the condition number of ``H~``
    below ``_COND_MAX``; equal to Newton wherever ``W`` is below the cap), its
    length limited so that no ``eta_i`` moves by more than ``_ETA_RADIUS``,
    then halved (up to 30 times) until ``f`` does not decrease.

    Stops when ``max |v_new - v| < tol``, or earlier once convergence is
    quadratic: after two full (unhalved, unshortened) steps of sizes
    ``s_prev`` and ``s < 1e-3``, the next step is predicted to be about
    ``C s^2`` with ``C = s / s_prev^2``, and the loop stops when ten times that
    prediction is below ``tol`` (this saves the last step, whose only use was to
    confirm the previous one). Each step costs one Gram accumulation and one
    blocked factorization.

    Returns ``(v, steps, err, halvings, converged)``: ``err`` estimates the
    remaining error ``max |v - v_hat|`` (the predicted next step after a
    quadratic stop, else the last step); ``converged`` is False when
    ``max_steps`` ran out, no step length in 30 halvings improved ``f``, or
    ``v`` is not finite (``err`` is then inf).
    """
    md = ctx.md
    D = sum(md.sizes)
    w_cap = _COND_MAX / jnp.maximum(_gram_bound(md, Ls), 1e-300)
    base = md.X @ beta + (0.0 if offset is None else offset)

    def f_eta(eta, v):
        # f up to terms free of v: the step test needs differences only.
        return jnp.sum(_loglik_eta(ctx.family, md.y, eta, ctx.trials, phi)) - 0.5 * v @ v

    def step(state):
        # eta is carried with v, so a step costs one Z Lambda product (for the direction) besides
        # the Gram accumulation and the factorization, and a halving only a pass of the likelihood.
        v, eta, fv, prev, k, nh, full_prev, _, _ = state
        g, w = _gw(ctx.family, md.y, eta, ctx.trials, phi)
        w = jnp.minimum(w, w_cap)
        c1, c2 = _lam_zt(md, Ls, w * (eta - base) + g)
        rhs = c1.reshape(-1) if c2 is None else jnp.concatenate([c1.reshape(-1), c2])
        target, _ = _solve(md, _wblocks(md, Ls, w), rhs)
        dv = target - v
        zdv = _zlam_v(md, Ls, dv)
        reach = jnp.max(jnp.abs(zdv))
        t0 = jnp.where(reach > _ETA_RADIUS, _ETA_RADIUS / reach, 1.0)
        # Step halving: f is concave, so some t in (0, t0] increases it.
        slack = 1e-12 * (1.0 + jnp.abs(fv))

        def halve(s):
            t, _, h = s
            return t * 0.5, f_eta(eta + 0.5 * t * zdv, v + 0.5 * t * dv), h + 1

        def worse(s):
            t, ft, _ = s
            # Written as "not better" so that a NaN objective (exp overflow far out) also halves.
            return ~(ft >= fv - slack) & (t > t0 * 2.0 ** -30)

        t, ft, h = jax.lax.while_loop(worse, halve, (t0, f_eta(eta + t0 * zdv, v + t0 * dv), 0))
        ok = ft >= fv - slack
        v_new = jnp.where(ok, v + t * dv, v)
        eta_new = jnp.where(ok, eta + t * zdv, eta)
        change = jnp.where(ok, jnp.max(jnp.abs(t * dv)), 0.0)
        full = ok & (t == 1.0)
        # Quadratic convergence: the next step would be about C change^2, C = change / prev^2.
        pred = jnp.where(full & full_prev & (change < 1e-3) & (change < prev),
                         10.0 * change ** 3 / prev ** 2, jnp.inf)
        return v_new, eta_new, jnp.where(ok, ft, fv), change, k + 1, nh + h, full, pred, ~ok

    def go(state):
        _, _, _, change, k, _, _, pred, stuck = state
        return (change >= ctx.tol) & (k < ctx.max_steps) & (pred >= ctx.tol) & ~stuck

    if v_init is None:
        v0 = jnp.zeros(D)
        eta0 = base + jnp.zeros(md.n_obs)
    else:
        # A start from an earlier solve that failed (NaN) would fail every solve after it.
        v0 = jnp.where(jnp.all(jnp.isfinite(v_init)), v_init, 0.0)
        eta0 = base + _zlam_v(md, Ls, v0)
    state = (v0, eta0, f_eta(eta0, v0), jnp.inf, 0, 0, False, jnp.inf, False)
    v, _, _, change, k, nh, _, pred, stuck = jax.lax.while_loop(go, step, state)
    err = jnp.minimum(pred, change)
    converged = (err < ctx.tol) & ~stuck & jnp.all(jnp.isfinite(v))
    return v, k, jnp.where(stuck, jnp.inf, err), nh, converged


def _make_mode(ctx):
    @jax.custom_vjp
    def mode(beta, Ls, offset, phi):
        return _newton(ctx, beta, Ls, offset, phi)[0]

    def fwd(beta, Ls, offset, phi):
        v = mode(beta, Ls, offset, phi)
        return v, (v, beta, Ls, offset, phi)

    def bwd(res, vbar):
        # Implicit function theorem at the root of F(v, theta) = df/dv = 0:
        # dv/dtheta = H^{-1} dF/dtheta (H = -dF/dv), so
        # theta_bar = (dF/dtheta)^T lam with H lam = v_bar: one blocked solve.
        v, beta, Ls, offset, phi = res
        eta = _eta(ctx, beta, Ls, offset, v)
        _, _, w = _derivs(ctx.family, ctx.md.y, eta, ctx.trials, phi)
        lam, _ = _solve(ctx.md, _wblocks(ctx.md, Ls, w), vbar)
        _, pull = jax.vjp(lambda b, L, o, p: _grad_f(ctx, v, b, L, o, p), beta, Ls, offset, phi)
        return pull(lam)

    mode.defvjp(fwd, bwd)
    return mode


def _context(md, family, trials, max_steps, tol) -> _Ctx:
    """The checked, parameter-free part of every entry point: rows mode, family and link, trials."""
    if md.mode != "rows":
        raise ValueError("the Laplace log-density needs MarginalData built with sufficient=False")
    family = (family if isinstance(family, Family) else Family(*np.atleast_1d(family))).checked()
    if trials is not None and family.name != "binomial":
        raise ValueError(f"trials are only meaningful for the binomial family, not {family.name!r}")
    if trials is not None:
        trials = np.asarray(trials, dtype=np.float64)
        if trials.shape != (md.n_obs,):
            raise ValueError(f"trials must have shape ({md.n_obs},), got {trials.shape}")
    return _Ctx(md, family, trials, int(max_steps), float(tol))


def _setup(md, family, Ls, offset, trials, phi, max_steps, tol):
    ctx = _context(md, family, trials, max_steps, tol)
    if not jax.config.jax_enable_x64:
        raise RuntimeError("bayeslmm's Laplace log-density needs float64: call it inside "
                           "`with jax.enable_x64(True):` (bayeslmm's fits do).")
    if len(Ls) != md.n_factors:
        raise ValueError(f"expected {md.n_factors} scale factors L, got {len(Ls)}")
    if ctx.family.name in ("negbinomial", "gaussian") and phi is None:
        raise ValueError(f"family {ctx.family.name!r} needs phi "
                         f"({'shape' if ctx.family.name == 'negbinomial' else 'sigma'})")
    return ctx, [jnp.asarray(Ls[k]) for k in md.order]


def laplace_mode(md: MarginalData, family, beta, Ls, offset=None, trials=None, phi=None,
                 max_steps=100, tol=1e-10):
    """Conditional mode ``v_hat`` of the whitened effects, the Newton step count and its estimated error.

    The error estimate is ``max |v - v_hat|`` as predicted from the last two
    steps (or the last step; inf where no step improved the objective): below
    ``tol`` when the solve converged (:func:`laplace_newton_info` says so, and
    :func:`laplace_logp` is ``-inf`` where it did not).
    ``v_hat`` is flat in ``md``'s internal layout (length D). Differentiable in
    reverse mode through the implicit function theorem (one solve with ``H``).
    Cost per Newton step: O(N (p + sum_jk d_j d_k)) row passes plus one blocked
    factorization O(M1 d1^3 + M1 d1 D2^2 + D2^3).
    """
    ctx, Ls = _setup(md, family, Ls, offset, trials, phi, max_steps, tol)
    _, k, change, _, _ = _newton(ctx, beta, Ls, offset, phi)
    return _make_mode(ctx)(beta, Ls, offset, phi), k, change


def laplace_newton_info(md: MarginalData, family, beta, Ls, offset=None, trials=None, phi=None,
                        max_steps=100, tol=1e-10) -> dict:
    """Work done by the Newton solve of :func:`laplace_logp` at one point: a diagnostic.

    Returns ``{"steps", "halvings", "error", "converged"}``: Newton steps
    taken, step halvings (each one extra objective evaluation, a row pass),
    the estimated remaining error of the mode (see :func:`laplace_mode`) and
    whether the solve converged
    (where it did not, :func:`laplace_logp` is ``-inf``). Cost: one Newton solve.
    """
    ctx, Ls = _setup(md, family, Ls, offset, trials, phi, max_steps, tol)
    _, k, err, nh, ok = jax.jit(lambda b, L, o, p: _newton(ctx, b, L, o, p))(beta, Ls, offset, phi)
    return {"steps": int(k), "halvings": int(nh), "error": float(err), "converged": bool(ok)}


def laplace_logp(md: MarginalData, family, beta, Ls, offset=None, trials=None, phi=None,
                 max_steps=100, tol=1e-10):
    """Laplace approximation of ``log p(y | beta, L, phi)`` with the effects integrated out.

    ``f(v_hat) - log|H(v_hat)| / 2`` with ``f(v) = sum_i log p(y_i | eta_i) - v^T v / 2``
    and ``H = I + Lambda^T Z^T W Z Lambda`` at the mode.

    Parameters
    ----------
    md : MarginalData (rows mode)
    family : Family or str or (name, link)
    beta : array (p,)
    Ls : sequence of arrays (d_k, d_k), caller order
    offset : array (N,), optional
    trials : array (N,), optional (binomial; default 1 = bernoulli)
    phi : scalar, optional (negbinomial shape, gaussian sigma)
    max_steps, tol : Newton limits (maximum step count; stop when the largest
        change of ``v``, or its prediction from quadratic convergence, is below
        ``tol``). Where the solve does not converge the value is ``-inf`` (its
        gradient NaN): NUTS then rejects the point as a divergence.

    Notes
    -----
    Cost: K Newton steps (typically 4-7 from ``v = 0``; 2 for gaussian) of
    O(N (p + sum_jk d_j d_k)) plus one blocked factorization each, and one
    more factorization at the mode that serves the value, the blocks of
    ``H^{-1}`` and the adjoint solve of the gradient; the reverse pass stores
    nothing from the iterations. Nothing N x N is formed.
    """
    ctx, Ls = _setup(md, family, Ls, offset, trials, phi, max_steps, tol)
    active, start = next_start()
    if not active:
        return _make_logp(ctx)(beta, Ls, offset, phi, None)[0]
    # Inside bayeslmm.ops.warm.warm_started: Newton from the given start; the mode goes back as a
    # constant (it only seeds the next solve), zeros where this solve did not converge.
    value, mode = _make_logp(ctx)(beta, Ls, offset, phi, None if start is None else jax.lax.stop_gradient(start))
    record_mode(jax.lax.stop_gradient(mode))
    return value


def _f_and_blocks(ctx, beta, Ls, offset, phi, v):
    """``f(v)`` (normalizing constants included) and the blocks of ``H(v)``."""
    md = ctx.md
    eta = _eta(ctx, beta, Ls, offset, v)
    _, w = _gw(ctx.family, md.y, eta, ctx.trials, phi)
    f = jnp.sum(pointwise_loglik(ctx.family, md.y, eta, ctx.trials, phi)) - 0.5 * v @ v
    return f, _wblocks(md, Ls, w)


def _core_solve(md, core, rhs):
    """``H^{-1} rhs`` (flat) with an existing blocked factor of ``H``: two block substitutions."""
    d1, m1 = md.dims[0], md.levels[0]
    w1 = solve_lower(core.C1, rhs[:d1 * m1].reshape(d1, m1))
    w2 = None
    if core.C2 is not None:
        w2 = tri_solve(core.C2, rhs[d1 * m1:] - core.B.reshape(core.B.shape[0], -1) @ w1.reshape(-1))
    v1, v2 = solve_mean(core._replace(w1=w1, w2=w2))
    return v1.reshape(-1) if v2 is None else jnp.concatenate([v1.reshape(-1), v2])


def _make_logp(ctx):
    """``(f(v_hat) - log|H(v_hat)|/2, v_hat)`` as one custom-VJP function of ``(beta, Ls, offset, phi, v_init)``.

    Newton starts from ``v_init`` (None: from 0); ``v_hat`` (zeros where the
    solve did not converge) is returned for warm starts only: its cotangent
    is ignored, and so is ``v_init``'s (the value does not depend on the
    start beyond the solve's tolerance).

    One function rather than the mode's VJP composed with logdet_quad's, so
    that the factorization of ``H(v_hat)`` made for the value also serves the
    gradient: the blocks of ``H^{-1}`` (d log|H|) and the adjoint solve. The
    reverse pass: ``theta_bar = df/dtheta - (1/2) dlog|H|/dtheta |_v
    + (dgrad_f/dtheta)^T lam`` with ``H lam = d/dv (f - log|H|/2)`` (the
    implicit function theorem at ``grad_f(v_hat) = 0``, where ``df/dv = 0``).
    A non-converged Newton solve gives ``-inf`` and NaN gradients, which
    samplers treat as a divergence.
    """
    md = ctx.md

    def value(beta, Ls, offset, phi, v_init):
        return fwd(beta, Ls, offset, phi, v_init)[0]

    def fwd(beta, Ls, offset, phi, v_init):
        v, _, _, _, ok = _newton(ctx, beta, Ls, offset, phi, v_init)
        # Linearized here rather than in bwd: the pullbacks are residuals, so the reverse
        # pass does not run the row passes of f, H and grad_f a second time.
        (f, blocks), pull = jax.vjp(lambda b, L, o, p, vv: _f_and_blocks(ctx, b, L, o, p, vv),
                                    beta, Ls, offset, phi, v)
        _, pull_g = jax.vjp(lambda b, L, o, p: _grad_f(ctx, v, b, L, o, p), beta, Ls, offset, phi)
        d1, m1 = md.dims[0], md.levels[0]
        core = factor_core(*blocks, jnp.zeros((d1, m1)), None if blocks[2] is None else jnp.zeros(md.dense_size))
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(core.C1)))
        if core.C2 is not None:
            logdet = logdet + 2.0 * jnp.sum(jnp.log(jnp.diagonal(core.C2)))
        out = jnp.where(ok, f - 0.5 * logdet, -jnp.inf)
        mode = jnp.where(ok, v, 0.0)
        return (out, mode), (ok, core, pull, pull_g, None if v_init is None else jnp.zeros_like(v_init))

    def bwd(res, cts):
        gbar = cts[0]
        ok, core, pull, pull_g, v_init_bar = res
        # d log|H| / dA is H^{-1} blockwise: logdet_quad's reverse pass with c = 0, on the same factor.
        gA1, gA21, gA22, _, _ = _logdet_quad_bwd(core, 1.0)
        # Partial derivatives at fixed v; the v part also carries df/dv, ~0 at the mode.
        part = pull((jnp.ones(()), (-0.5 * gA1, None if gA21 is None else -0.5 * gA21,
                                    None if gA22 is None else -0.5 * gA22)))
        lam = _core_solve(md, core, part[4])
        adj = pull_g(lam)
        return tuple(jax.tree.map(lambda t, a: jnp.where(ok, gbar * (t + a), jnp.nan), t, a)
                     for t, a in zip(part[:4], adj)) + (v_init_bar,)

    out = jax.custom_vjp(value)
    out.defvjp(fwd, bwd)
    return out


def laplace_recover(md: MarginalData, family, key, beta, Ls, offset=None, trials=None, phi=None,
                    max_steps=100, tol=1e-10):
    """One draw of the effects from the Laplace approximation ``v ~ N(v_hat, H(v_hat)^{-1})``.

    ``v = v_hat + C^{-T} xi``, ``xi ~ N(0, I_D)`` with ``H = C C^T`` blocked, then
    ``u_{k,j} = L_k v_{k,j}``. Returns a list (caller order) of (M_k, d_k)
    arrays. Approximate given the parameters (exact for gaussian). Cost: one
    :func:`laplace_logp` evaluation plus two triangular solves.
    """
    ctx, Ls = _setup(md, family, Ls, offset, trials, phi, max_steps, tol)
    v = _newton(ctx, beta, Ls, offset, phi)[0]
    return _draw(ctx, Ls, key, beta, offset, phi, v)


def _draw(ctx, Ls, key, beta, offset, phi, v):
    md = ctx.md
    eta = _eta(ctx, beta, Ls, offset, v)
    _, _, w = _derivs(ctx.family, md.y, eta, ctx.trials, phi)
    d1, m1 = md.dims[0], md.levels[0]
    xi = jax.random.normal(key, (sum(md.sizes),), dtype=jnp.float64)
    core = factor_core(*_wblocks(md, Ls, w), jnp.zeros((d1, m1)),
                       None if md.n_factors == 1 else jnp.zeros(md.dense_size))
    x1, x2 = solve_mean(core, xi[:d1 * m1].reshape(d1, m1), None if md.n_factors == 1 else xi[d1 * m1:])
    dv = x1.reshape(-1) if x2 is None else jnp.concatenate([x1.reshape(-1), x2])
    us = [None] * md.n_factors
    for i, (vk, L) in enumerate(zip(_split(md, v + dv), Ls)):
        us[md.order[i]] = mm(vk, L.T, 0).T
    return us


def laplace_recover_batch(md: MarginalData, family, key, beta, Ls, offset=None, trials=None, phi=None,
                          max_steps=100, tol=1e-10, starts=None):
    """:func:`laplace_recover` over S parameter draws in one jitted ``lax.map``.

    ``beta`` (S, p), ``Ls`` (S, d_k, d_k) each, ``offset`` (S, N) or None,
    ``phi`` (S,) or None; ``starts`` (S, D) or None: each draw's Newton solve
    starts there (the modes a sampler's warm-started solves found at these
    draws: then one step confirms each) instead of at 0. Returns a list
    (caller order) of (S, M_k, d_k). Draws run one after another inside the
    compiled loop, so memory does not grow with S beyond inputs and outputs;
    cost S times that of one draw.
    """
    ctx, _ = _setup(md, family, [L[0] for L in Ls], None, trials, None if phi is None else phi[0],
                    max_steps, tol)
    args = (jnp.asarray(beta), [jnp.asarray(L) for L in Ls],
            None if offset is None else jnp.asarray(offset), None if phi is None else jnp.asarray(phi),
            None if starts is None else jnp.asarray(starts))
    return jax.jit(_recover_loop(ctx))(key, *args)


def compile_laplace_recover_batch(md: MarginalData, family, n_draws, n_fixed, dims, n_rows=None, trials=None,
                                  has_phi=False, max_steps=100, tol=1e-10, compiler_options=None,
                                  has_starts=False):
    """:func:`laplace_recover_batch` compiled for ``n_draws`` draws: a callable ``(key, beta, Ls, offset, phi, starts)``.

    ``dims`` are the effect dimensions of the factors in caller order;
    ``n_rows`` the length of ``offset`` (None: no offset); ``has_phi``
    whether ``phi`` is passed, ``has_starts`` whether ``starts`` is (else
    None). The compilation is what a first
    :func:`laplace_recover_batch` call of these shapes would do, with
    ``compiler_options`` (extra XLA options) applied; one compiled loop
    serves every chunk of draws, from any thread.
    """
    ctx = _context(md, family, trials, max_steps, tol)
    f64 = partial(jax.ShapeDtypeStruct, dtype=jnp.float64)
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)  # jax.random.PRNGKey's raw key
    with jax.enable_x64(True):
        lowered = jax.jit(_recover_loop(ctx)).lower(
            key, f64((n_draws, n_fixed)), [f64((n_draws, d, d)) for d in dims],
            None if n_rows is None else f64((n_draws, n_rows)), f64((n_draws,)) if has_phi else None,
            f64((n_draws, sum(md.sizes))) if has_starts else None)
    return lowered.compile(compiler_options=compiler_options or None)


def _recover_loop(ctx):
    """``(key, beta, Ls, offset, phi, starts) -> effects``: one Laplace draw per parameter draw, in a ``lax.map``."""
    md = ctx.md

    def one(a):
        k, b, L, off, p, s = a
        L = [L[i] for i in md.order]
        v = _newton(ctx, b, L, off, p, s)[0]
        return _draw(ctx, L, k, b, off, p, v)

    def loop(key, beta, Ls, offset, phi, starts=None):
        keys = jax.random.split(key, beta.shape[0])
        return jax.lax.map(one, (keys, beta, Ls, offset, phi, starts))

    return loop
