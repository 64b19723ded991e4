"""Variance components in brms's ``VarCorr`` structure and lme4's printed ``VarCorr`` layout.

Both are computed per posterior draw from ``sd_<g>`` and ``cor_<g>``:
Sigma_g = diag(sd) cor diag(sd) (terms of different ``||`` groups have
correlation 0), and then summarised, so the covariance estimate is the
posterior mean of sd_i sd_j cor_ij, not the product of the posterior means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .predict import summarise_draws
from .recover import stack_draws

__all__ = ["group_cov_draws", "varcorr_brms", "varcorr_lme4"]


def group_cov_draws(fit, blk):
    """(sd (S, d), cor (S, d, d), cov (S, d, d)) draws of factor ``blk``'s group-level effects."""
    post = fit.posterior
    sd = stack_draws(post[f"sd_{blk.name}"])
    name = f"cor_{blk.name}"
    if name in post:
        cor = stack_draws(post[name])
    else:
        cor = np.broadcast_to(np.eye(blk.dim), (sd.shape[0], blk.dim, blk.dim))
    cov = sd[:, :, None] * cor * sd[:, None, :]
    return sd, cor, cov


def _matrix_table(a, terms, prob):
    """(S, d, d) draws -> DataFrame rows = term, columns (term, stat): brms's ``[term, stat, term]`` array."""
    d = len(terms)
    stats = summarise_draws(a.reshape(a.shape[0], d * d), None, prob)
    cols = pd.MultiIndex.from_product([list(terms), list(stats.columns)], names=["effect", "stat"])
    return pd.DataFrame(stats.to_numpy().reshape(d, -1), index=pd.Index(list(terms), name="effect"), columns=cols)


def varcorr_brms(fit, prob: float = 0.95) -> dict:
    """brms ``VarCorr(fit)``: factor -> {"sd", "cor", "cov"}, and "residual__" -> {"sd"}.

    ``sd`` is a DataFrame (effect x Estimate/Est.Error/Q2.5/Q97.5); ``cor``
    and ``cov`` (only for factors with more than one effect, as brms) have
    rows = effect and columns (effect, stat), so
    ``vc["subj"]["cov"].xs("Estimate", axis=1, level="stat")`` is the
    posterior-mean covariance matrix. Cost O(S sum_g d_g^2).
    """
    out = {}
    for blk in fit.design.blocks:
        sd, cor, cov = group_cov_draws(fit, blk)
        entry = {"sd": summarise_draws(sd, pd.Index(list(blk.terms), name="effect"), prob)}
        if blk.dim > 1:
            entry["cor"] = _matrix_table(cor, blk.terms, prob)
            entry["cov"] = _matrix_table(cov, blk.terms, prob)
        out[blk.name] = entry
    if "sigma" in fit.design.family.aux:
        out["residual__"] = {"sd": summarise_draws(stack_draws(fit.posterior["sigma"])[:, None],
                                                   pd.Index(["sigma"]), prob)}
    return out


def varcorr_lme4(fit) -> pd.DataFrame:
    """lme4's printed ``VarCorr``: Groups, Name, Variance, Std.Dev., Corr (posterior means).

    One row per effect; Groups is written on a factor's first row only;
    Variance is the posterior mean of sd^2 and Std.Dev. that of sd; the
    Corr columns hold the lower triangle (row k: correlation with effects
    1..k-1, blank where the two effects are uncorrelated by the formula);
    a Residual row for families with sigma. Cost O(S sum_g d_g^2).
    """
    rows = []
    n_corr = max([b.dim - 1 for b in fit.design.blocks] + [0])
    corr_cols = ["Corr"] + [f"Corr.{j + 1}" for j in range(1, n_corr)]
    for blk in fit.design.blocks:
        sd, cor, _ = group_cov_draws(fit, blk)
        together = np.zeros((blk.dim, blk.dim), bool)
        for grp in blk.corr_groups:
            together[np.ix_(grp, grp)] = True
        cmean = cor.mean(axis=0)
        for k, term in enumerate(blk.terms):
            row = {"Groups": blk.name if k == 0 else "", "Name": "(Intercept)" if term == "Intercept" else term,
                   "Variance": float((sd[:, k] ** 2).mean()), "Std.Dev.": float(sd[:, k].mean())}
            for j, c in enumerate(corr_cols):
                row[c] = f"{cmean[k, j]:.2f}" if j < k and together[k, j] else ""
            rows.append(row)
    if "sigma" in fit.design.family.aux:
        s = stack_draws(fit.posterior["sigma"])
        rows.append({"Groups": "Residual", "Name": "", "Variance": float((s ** 2).mean()),
                     "Std.Dev.": float(s.mean()), **{c: "" for c in corr_cols}})
    df = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev."] + (corr_cols if n_corr else []))
    return df
