"""Bayesian R-squared (Gelman, Goodrich, Gabry & Vehtari 2019), as brms ``bayes_R2`` and ``loo_R2``.

Per posterior draw s, with mu_s the expected response of the training rows
(``predict(kind="mean")``, brms ``posterior_epred``) and e_s = y - mu_s,
R2_s = var(mu_s) / (var(mu_s) + var(e_s)) (sample variances over rows).
This is brms' residual-based definition, so it works for every family.
``re_formula="NA"`` gives the marginal R2 (population-level part only),
``None`` the conditional R2 (all group-level effects).

``loo_R2`` replaces the in-sample fit by the PSIS-LOO prediction of each row,
E_loo[mu_i] = sum_s w_is mu_si with the Pareto-smoothed importance weights
of leaving row i out, and reports R2 = 1 - var(y - E_loo[mu]) / var(y); its
uncertainty comes from Bayesian-bootstrap (Dirichlet(1, ..., 1)) weights over
the rows, exactly as brms ``loo_R2`` computes it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .predict import predict, summarise_draws

__all__ = ["bayes_R2", "loo_R2", "psis_log_weights"]


def bayes_R2(fit, re_formula=None, summary: bool = True, prob: float = 0.95):
    """Bayesian R2 of a fit on its training rows (brms ``bayes_R2``).

    ``re_formula=None``: conditional R2; ``"NA"``: marginal R2 (fixed
    effects only). ``summary=True`` returns a one-row DataFrame ``R2`` with
    Estimate, Est.Error, Q2.5, Q97.5; ``summary=False`` the S draws of R2.
    Cost: that of ``predict`` on the training rows, O(S n).
    """
    mu = predict(fit, re_formula=re_formula, kind="mean")
    y = np.asarray(fit.design.y_original, dtype=float)
    var_mu = mu.var(axis=1, ddof=1)
    var_e = (y[None, :] - mu).var(axis=1, ddof=1)
    r2 = var_mu / (var_mu + var_e)
    if not summary:
        return r2
    return summarise_draws(r2[:, None], pd.Index(["R2"]), prob)


def psis_log_weights(fit) -> np.ndarray:
    """Normalized log PSIS-LOO weights (S, n): ``az.psislw(-log_lik, reff)`` with ``az.loo``'s relative efficiency.

    Column i weights the draws to approximate the posterior without row i.
    Computes the pointwise log-likelihood first if the fit lacks it.
    Cost: O(S n) plus the ESS of the posterior's variables (for ``reff``).
    """
    import arviz as az

    from .loglik import _ensure

    idata = _ensure(fit)
    ll = np.asarray(idata.log_likelihood["y"].stack(__sample__=("chain", "draw")).transpose("__sample__", ...))
    S = ll.shape[0]
    post = idata.posterior
    if post.sizes["chain"] == 1:
        reff = 1.0
    else:
        # az.loo's relative efficiency: mean ESS over every posterior variable, over S.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess = az.ess(post, method="mean")
        reff = float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw, _ = az.psislw(-ll.T, reff)
    return np.asarray(lw).T


def loo_R2(fit, summary: bool = True, prob: float = 0.95, random_seed=None):
    """LOO-adjusted R2 (brms ``loo_R2``): 1 - var(y - E_loo[mu]) / var(y), Bayesian-bootstrapped.

    E_loo[mu_i] is the PSIS-LOO expectation of the expected response of row
    i (:func:`psis_log_weights`); the S values returned are the R2 under S
    Dirichlet(1, ..., 1) weightings of the rows (``random_seed`` seeds them),
    clipped to [-1, 1] as brms does. ``summary=True``: a one-row DataFrame
    ``R2`` with Estimate, Est.Error, Q2.5, Q97.5; ``summary=False``: the S
    values. Gaussian fits of a transformed response (``log(y) ~``) use y on
    that scale. Cost: that of :func:`psis_log_weights` plus O(S n).
    """
    from bayeslmm.model.checks import check_bool, check_random_seed

    check_bool(summary, "summary")
    rng = np.random.default_rng(check_random_seed(random_seed))
    mu = predict(fit, kind="mean")
    y = np.asarray(fit.design.y_original, dtype=float)
    w = np.exp(psis_log_weights(fit))
    err = (w * mu).sum(axis=0) - y
    S, n = mu.shape
    e = rng.exponential(size=(S, n))
    b = e / e.sum(axis=1, keepdims=True)
    corr = n / (n - 1)
    var_y = corr * (b @ y ** 2 - (b @ y) ** 2)
    var_err = corr * (b @ err ** 2 - (b @ err) ** 2)
    r2 = np.clip(1 - var_err / var_y, -1, 1)
    if not summary:
        return r2
    return summarise_draws(r2[:, None], pd.Index(["R2"]), prob)
