"""How far to centre each sampled group-level effect: partially non-centred parameterization.

A sampled effect ``u_j ~ N(0, tau^2)`` of level ``j`` can be written
non-centred, ``u_j = tau z_j`` with ``z_j ~ N(0, 1)``, centred, ``z_j = u_j``,
or anywhere between (Papaspiliopoulos, Roberts and Skold 2007; Gorinova,
Moore and Hoffman 2020): ``u_j = tau^(1 - w_j) z_j`` with
``z_j ~ N(0, tau^(2 w_j))``. Every ``w_j`` in [0, 1] gives the same model
(``u_j ~ N(0, tau^2)``); they differ in how strongly ``z_j`` and ``log tau``
are coupled in the posterior. With the level's data precision
``a_j = sum_i x_ij^2 / sigma^2`` (``x_ij`` the effect's covariate, 1 for an
intercept), ``u_j``'s conditional posterior SD is ``(a_j + tau^-2)^-1/2``,
whose derivative in ``log tau`` is ``1 / (1 + a_j tau^2)``; choosing

    w_j = a_j tau^2 / (1 + a_j tau^2)

makes the SD of ``z_j`` locally independent of ``tau``: 0 (non-centred) for
levels with little data, towards 1 (centred) for levels with much.

On the InstEval-shaped model (2,972 sampled student effects of about 25
rows each, ``w`` 0.29-0.71, median 0.59, from one-way estimates, 0.31-0.73
from :func:`variance_components`; d and dept marginalized; 2 chains,
1000 + 1000, both with :mod:`bayeslmm.uturn`'s checks): non-centred, the
student SD had the lowest bulk ESS, 978 and 729 (seeds 1, 2), from 62,000
leapfrog steps after warm-up; partially centred its ESS was 1,677, 3,760
and 1,450 (seeds 1-3), the lowest over all parameters 1,362-1,447 (the
recovered lecturer effects), from 35,000-62,000 steps. Min ESS per second
of the whole fit: 23.0 and 17.6 against 33.4, 29.8 and 31.1.

The builder applies it to sampled factors whose effects are uncorrelated
and that are not nested in another factor (see ``bayeslmm.builder._centring``).
It writes ``tau^w_j`` as ``exp(w_j log tau)``, one exponential per level and
effect: written as two powers, each a logarithm and an exponential per
level, the InstEval-shaped log-density and gradient took 0.67-0.82 ms
against 0.54-0.58 ms non-centred; as one exponential 0.57-0.60 ms.

``tau`` and ``sigma`` are unknown before sampling; :func:`centring_weights`
plugs in quick estimates (:func:`variance_components`). They only choose the parameterization: rough
values cost efficiency, never correctness.
"""

from __future__ import annotations

import numpy as np

__all__ = ["centring_weights", "moment_sds", "variance_components"]

#: Levels needed for a moment estimate of an effect's SD; with fewer the
#: estimate is 0 (and :func:`variance_components` starts from a tenth of
#: the residual variance).
MIN_LEVELS = 5


def _level_gram(group_index, values, n_levels):
    """Per-level ``G_j = V_j' V_j`` (n_levels x d x d): the data each level's effects see."""
    G = np.zeros((n_levels, values.shape[1], values.shape[1]))
    np.add.at(G, group_index, values[:, :, None] * values[:, None, :])
    return G


def moment_sds(resid, group_index, values, n_levels, G=None):
    """Moment estimates of the residual variance and of each effect's SD (Swamy's estimator).

    Per level ``j`` the least-squares coefficients ``b_j = G_j^-1 g_j`` of the
    residuals on the level's covariates (``G_j = V_j' V_j``, ``g_j = V_j' r_j``),
    over the levels where ``G_j`` is well conditioned and rows are left over
    for a residual. Then ``s^2`` is the pooled within-level residual variance
    and ``tau_k^2 = var_j(b_jk) - s^2 mean_j (G_j^-1)_kk`` (the spread of the
    per-level fits less their sampling noise), set to 0 where not positive or
    where fewer than :data:`MIN_LEVELS` levels qualify.

    ``G``: the levels' Gram matrices if already at hand (:func:`_level_gram`).

    Returns ``(s2, tau2)``, ``tau2`` of length d. Cost O(N d^2 + L d^3).
    """
    resid = np.asarray(resid, float)
    V = np.asarray(values, float)
    d = V.shape[1]
    G = _level_gram(group_index, V, n_levels) if G is None else G
    g = np.zeros((n_levels, d))
    np.add.at(g, group_index, V * resid[:, None])
    rr = np.bincount(group_index, resid**2, minlength=n_levels)
    counts = np.bincount(group_index, minlength=n_levels)
    tau2 = np.zeros(d)
    # Well conditioned and with at least one residual degree of freedom.
    cond = np.linalg.cond(G) if n_levels else np.zeros(0)
    ok = (counts > d) & np.isfinite(cond) & (cond < 1e8)
    if ok.sum() < MIN_LEVELS:
        return float(resid.var()), tau2
    Ginv = np.linalg.inv(G[ok])
    b = np.einsum("jkl,jl->jk", Ginv, g[ok])
    rss = rr[ok] - np.einsum("jk,jk->j", b, g[ok])
    s2 = float(max(rss.sum(), 0.0) / (counts[ok] - d).sum())
    if not s2 > 0:
        return float(resid.var()), tau2
    tau2 = b.var(axis=0, ddof=1) - s2 * np.einsum("jkk->jk", Ginv).mean(axis=0)
    return s2, np.where(np.isfinite(tau2) & (tau2 > 0), tau2, 0.0)


def variance_components(y, X, factors, iters=50):
    """Residual variance and each factor's effect variances, by approximate EM over all factors at once.

    One-way estimates (:func:`moment_sds`) of a factor that contains another
    (grouseticks: broods within locations) count the inner factor's
    variance as its own: 0.45 for locations whose lme4 estimate is 0.025.
    Here the factors share out the residual of the least-squares fit of
    ``y`` on ``X`` by backfitting: for each factor in turn, given the current
    effects of the others, each level's effects get their conditional
    posterior ``N(m_j, C_j)`` with ``C_j = (G_j / s^2 + diag(tau^-2))^-1``,
    ``m_j = C_j V_j' r_j / s^2``; then ``tau_k^2 = mean_j (m_jk^2 + C_jkk)`` and
    ``s^2 = (|r - sum Z m|^2 + sum tr(G_j C_j)) / N``: the EM updates of a
    model whose factors' effects are independent given the data (they are
    not, so this is an approximation). ``factors``: (group_index, values,
    n_levels) each. Starts from the one-way estimates (at least a tenth of
    the residual variance, since EM cannot leave 0).

    Returns ``(s2, [tau2_k])``. Cost O(iters (N sum d_k + sum L_k d_k^3)).
    """
    return _components(y, X, _prepare(factors), iters)


def _prepare(factors):
    """(group_index, values as float, n_levels, Gram matrices) per factor."""
    out = []
    for g, V, m in factors:
        V = np.asarray(V, float)
        out.append((g, V, m, _level_gram(g, V, m)))
    return out


def _components(y, X, prep, iters=50):
    """:func:`variance_components` on prepared factors (:func:`_prepare`)."""
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0] if X.shape[1] else y - y.mean()
    n = resid.size
    s2 = float(resid.var())
    if not s2 > 0:  # y fitted exactly by X: nothing to share out
        return s2, [np.zeros(V.shape[1]) for _, V, _, _ in prep]
    floor = 1e-12 * s2
    tau2 = [np.maximum(moment_sds(resid, g, V, m, G)[1], 0.1 * s2) for g, V, m, G in prep]
    fitted = [np.zeros(n) for _ in prep]
    total = np.zeros(n)
    for _ in range(iters):
        trace = 0.0
        for k, (g, V, m, G) in enumerate(prep):
            r = resid - (total - fitted[k])
            gv = np.stack([np.bincount(g, V[:, a] * r, minlength=m) for a in range(V.shape[1])], axis=1)
            C = np.linalg.inv(G / s2 + np.diag(1.0 / np.maximum(tau2[k], floor)))
            mean = np.einsum("jab,jb->ja", C, gv) / s2
            tau2[k] = (mean**2 + np.einsum("jaa->ja", C)).mean(axis=0)
            trace += float(np.einsum("jab,jba->", G, C))
            total += (new := (V * mean[g]).sum(axis=1)) - fitted[k]
            fitted[k] = new
        s2 = max(float(((resid - total) ** 2).sum() + trace) / n, floor)
    return s2, tau2


def centring_weights(y, X, factors):
    """Weights ``w`` (n_levels x d, in [0, 1]) of the partially non-centred parameterization of each factor.

    ``w_jk = a_jk t_k / (1 + a_jk t_k)`` with ``a_jk = sum_{i in j} x_ik^2 / s^2``
    and ``(s^2, t_k)`` from :func:`variance_components` over all
    ``factors`` (group_index, values, n_levels) of the model. Effects
    estimated to vary little get ``w`` near 0 (non-centred).

    Cost that of :func:`variance_components`, once, before sampling.
    """
    prep = _prepare(factors)
    s2, tau2 = _components(y, X, prep)
    if not s2 > 0:
        return [np.zeros((m, V.shape[1])) for _, V, m, _ in prep]
    out = []
    for (_, _, _, G), t in zip(prep, tau2):
        at = np.einsum("jkk->jk", G) / s2 * t[None, :]  # a_jk t_k, a_jk = (G_j)_kk / s^2
        out.append(at / (1.0 + at))
    return out
