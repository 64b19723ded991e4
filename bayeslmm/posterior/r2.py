"""Bayesian R-squared (Gelman, Goodrich, Gabry & Vehtari 2019), as brms ``bayes_R2``.

Per posterior draw s, with mu_s the expected response of the training rows
(``predict(kind="mean")``, brms ``posterior_epred``) and e_s = y - mu_s,
R2_s = var(mu_s) / (var(mu_s) + var(e_s)) (sample variances over rows).
This is brms' residual-based definition, so it works for every family.
``re_formula="NA"`` gives the marginal R2 (population-level part only),
``None`` the conditional R2 (all group-level effects).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .predict import predict, summarise_draws

__all__ = ["bayes_R2"]


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
