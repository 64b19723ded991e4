"""Laplace marginal log-likelihood vs adaptive Gauss-Hermite quadrature, by observations per level.

One-factor random-intercept models (d = 1), poisson (log) and bernoulli /
binomial (logit): the levels are independent given the parameters, so the
exact marginal log-likelihood is a sum of one-dimensional integrals, each
computed by adaptive Gauss-Hermite quadrature (nodes centred at the level's
conditional mode and scaled by its curvature, as lme4's nAGQ). With one node
the rule is exactly the Laplace approximation; with 100 nodes it is accurate
to rounding for these integrands. Prints the error table (Laplace minus
quadrature, per level and in total) that docs/marginalization.md quotes.

Run: PYTHONPATH=. python reference/laplace_quadrature.py
"""

from __future__ import annotations

import jax
import numpy as np
from numpy.polynomial.hermite import hermgauss
from scipy.special import gammaln, log_expit

__all__ = ["agq_loglik", "simulate"]


def _level_loglik(family, y, eta, trials):
    """log p(y_i | eta_i) summed per row (numpy, vectorized over trailing axes of eta)."""
    if family == "poisson":
        return y * eta - np.exp(eta) - gammaln(y + 1.0)
    const = gammaln(trials + 1.0) - gammaln(y + 1.0) - gammaln(trials - y + 1.0)
    return const + y * log_expit(eta) + (trials - y) * log_expit(-eta)


def agq_loglik(family, y, fixed, group, n_levels, tau, trials=None, n_nodes=100):
    """Marginal log-likelihood of ``eta = fixed + tau v_g``, ``v_g ~ N(0, 1)`` by adaptive Gauss-Hermite.

    Per level: Newton for the mode ``m`` of ``h(v) = sum_i l_i - v^2/2`` and its
    curvature ``s^-2 = -h''(m)``; then ``log int e^h = log(sqrt(2) s) + log sum_k
    w_k e^{t_k^2 + h(m + sqrt(2) s t_k)}``, minus ``log sqrt(2 pi)`` for the prior.
    Returns the per-level values (n_levels,).
    """
    y = np.asarray(y, float)
    trials = np.ones_like(y) if trials is None else np.asarray(trials, float)
    t, wt = hermgauss(n_nodes)
    out = np.empty(n_levels)
    for j in range(n_levels):
        rows = group == j
        yj, fj, nj = y[rows], fixed[rows], trials[rows]

        def h(v):
            v = np.atleast_1d(v)
            eta = fj[:, None] + tau * v[None, :]
            return _level_loglik(family, yj[:, None], eta, nj[:, None]).sum(0) - 0.5 * v**2

        m = 0.0
        for _ in range(100):
            mu = np.exp(fj + tau * m) if family == "poisson" else None
            if family == "poisson":
                g, w = np.sum(yj - mu), np.sum(mu)
            else:
                p = 1.0 / (1.0 + np.exp(-(fj + tau * m)))
                g, w = np.sum(yj - nj * p), np.sum(nj * p * (1 - p))
            step = (tau * g - m) / (tau * tau * w + 1.0)
            m += step
            if abs(step) < 1e-14:
                break
        if family == "poisson":
            w = np.sum(np.exp(fj + tau * m))
        else:
            p = 1.0 / (1.0 + np.exp(-(fj + tau * m)))
            w = np.sum(nj * p * (1 - p))
        s = 1.0 / np.sqrt(tau * tau * w + 1.0)
        vals = t**2 + h(m + np.sqrt(2.0) * s * t)
        top = vals.max()
        out[j] = (np.log(np.sqrt(2.0) * s) + top + np.log(np.sum(wt * np.exp(vals - top)))
                  - 0.5 * np.log(2 * np.pi))
    return out


def simulate(family, n_per, n_levels, tau, seed, trials=1):
    """A one-factor data set: intercept -0.5 (poisson 0.5), slope 0.3 on a normal covariate."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_levels), n_per)
    x = rng.normal(size=g.size)
    b0 = 0.5 if family == "poisson" else -0.5
    fixed = b0 + 0.3 * x
    eta = fixed + tau * rng.normal(size=n_levels)[g]
    if family == "poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
        n = None
    else:
        n = np.full(g.size, float(trials))
        y = rng.binomial(trials, 1 / (1 + np.exp(-eta))).astype(float)
    return y, np.c_[np.ones(g.size), x], np.array([b0, 0.3]), g, n


def main():
    from bayeslmm.model.design import ReBlock
    from bayeslmm.ops import MarginalData
    from bayeslmm.ops.laplace import laplace_logp

    n_levels, tau = 40, 1.0
    print(f"Laplace minus adaptive Gauss-Hermite (100 nodes), {n_levels} levels, tau = {tau}, "
          "5 seeds: mean per-level error, and total error (mean [min, max])")
    print(f"{'family':<22}{'obs/level':>10}{'per level':>14}{'total':>12}{'  range':>22}")
    rows = []
    for family, trials in [("poisson", None), ("bernoulli", 1), ("binomial", 10)]:
        for n_per in (1, 2, 5, 10, 20, 50, 100):
            errs = []
            for seed in range(5):
                y, X, beta, g, n = simulate("poisson" if family == "poisson" else "binomial",
                                            n_per, n_levels, tau, seed, trials or 1)
                f = ReBlock.of(g.astype(np.int64), np.ones((g.size, 1)), n_levels, name="g")
                md = MarginalData.build(y, X, [f], sufficient=False)
                with jax.enable_x64(True):
                    lap = float(laplace_logp(md, "poisson" if family == "poisson" else "binomial",
                                             beta, [np.array([[tau]])], trials=n))
                exact = agq_loglik("poisson" if family == "poisson" else "binomial", y, X @ beta, g,
                                   n_levels, tau, n).sum()
                errs.append(lap - exact)
            errs = np.array(errs)
            label = family + ("" if trials in (None, 1) else f" (n={trials})")
            print(f"{label:<22}{n_per:>10}{errs.mean() / n_levels:>14.2e}{errs.mean():>12.4f}"
                  f"  [{errs.min():.4f}, {errs.max():.4f}]")
            rows.append((label, n_per, errs.mean() / n_levels, errs.mean()))


if __name__ == "__main__":
    main()
