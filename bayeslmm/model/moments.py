"""Quick estimates from the data alone: least-squares residuals and variance components.

They choose how the model is parameterized and what is marginalized (the
plan's cost model, the partial centring weights); they never enter the
posterior, so rough values cost efficiency, never correctness. NumPy only.

``factors`` below are :class:`~bayeslmm.model.design.ReBlock` objects, or
anything with ``group_index`` (N,), ``values`` (N, d) and ``n_levels``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_LEVELS", "least_squares", "level_gram", "moment_sds", "variance_components"]

#: Levels needed for a moment estimate of an effect's SD; with fewer the
#: estimate is 0 (and :func:`variance_components` starts from a tenth of
#: the residual variance).
MIN_LEVELS = 5


def least_squares(y, X):
    """``(beta_hat, e)``: the least-squares coefficients of ``y`` on ``X`` and the residuals ``e = y - X beta_hat``.

    With no columns, ``e = y - mean(y)`` (``beta_hat`` empty). Cost O(N p^2).
    """
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    if not X.shape[1]:
        return np.zeros(0), y - y.mean()
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    return beta, y - X @ beta


def level_gram(group_index, values, n_levels):
    """Per-level ``G_j = V_j' V_j`` (n_levels x d x d): the data each level's effects see. Cost O(N d^2)."""
    values = np.asarray(values, float)
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

    ``G``: the levels' Gram matrices if already at hand (:func:`level_gram`).

    Returns ``(s2, tau2)``, ``tau2`` of length d. Cost O(N d^2 + M d^3).
    """
    resid = np.asarray(resid, float)
    V = np.asarray(values, float)
    d = V.shape[1]
    G = level_gram(group_index, V, n_levels) if G is None else G
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


def variance_components(y, X, factors, iters=50, grams=None):
    """Residual variance and each factor's effect variances, by approximate EM over all factors at once.

    One-way estimates (:func:`moment_sds`) of a factor that contains another
    (grouseticks: broods within locations) count the inner factor's
    variance as its own. Here the factors share out the residual of the
    least-squares fit of ``y`` on ``X`` by backfitting: for each factor in
    turn, given the current effects of the others, each level's effects get
    their conditional posterior ``N(m_j, C_j)`` with
    ``C_j = (G_j / s^2 + diag(tau^-2))^-1``, ``m_j = C_j V_j' r_j / s^2``; then
    ``tau_k^2 = mean_j (m_jk^2 + C_jkk)`` and
    ``s^2 = (|r - sum Z m|^2 + sum tr(G_j C_j)) / N``: the EM updates of a
    model whose factors' effects are independent given the data (they are
    not, so this is an approximation). Starts from the one-way estimates (at
    least a tenth of the residual variance, since EM cannot leave 0).

    ``grams``: each factor's :func:`level_gram`, if already at hand.

    Returns ``(s2, [tau2_k])``. Cost O(iters (N sum d_k + sum M_k d_k^3)).
    """
    prep = [(f.group_index, np.asarray(f.values, float), f.n_levels,
             level_gram(f.group_index, f.values, f.n_levels) if grams is None else grams[k])
            for k, f in enumerate(factors)]
    resid = least_squares(y, X)[1]
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
