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

__all__ = ["group_cov_draws", "varcorr_brms", "varcorr_lme4", "VarCorrLme4", "format_lme4"]


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


def varcorr_brms(fit, prob: float = 0.95, summary: bool = True) -> dict:
    """brms ``VarCorr(fit)``: factor -> {"sd", "cor", "cov"}, and "residual__" -> {"sd"}.

    ``sd`` is a DataFrame (effect x Estimate/Est.Error/Q2.5/Q97.5); ``cor``
    and ``cov`` (only for factors with more than one effect, as brms) have
    rows = effect and columns (effect, stat), so
    ``vc["subj"]["cov"].xs("Estimate", axis=1, level="stat")`` is the
    posterior-mean covariance matrix. ``summary=False`` (brms
    ``VarCorr(fit, summary = FALSE)``): the same keys with the draws as
    arrays, ``sd`` (S, d), ``cor`` and ``cov`` (S, d, d), chain-major, and
    ``residual__["sd"]`` (S, 1). Cost O(S sum_g d_g^2).
    """
    out = {}
    for blk in fit.design.blocks:
        sd, cor, cov = group_cov_draws(fit, blk)
        if summary:
            entry = {"sd": summarise_draws(sd, pd.Index(list(blk.terms), name="effect"), prob)}
        else:
            entry = {"sd": np.asarray(sd)}
        if blk.dim > 1:
            entry["cor"] = _matrix_table(cor, blk.terms, prob) if summary else np.array(cor)
            entry["cov"] = _matrix_table(cov, blk.terms, prob) if summary else np.asarray(cov)
        out[blk.name] = entry
    if "sigma" in fit.design.family.aux:
        sigma = stack_draws(fit.posterior["sigma"])[:, None]
        out["residual__"] = {"sd": summarise_draws(sigma, pd.Index(["sigma"]), prob) if summary else sigma}
    return out


def _r_format(values, digits: int) -> list[str]:
    """R's ``format(x, digits=)`` for a numeric vector: common decimals so each value shows ``digits`` significant."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v) & (v != 0)]
    dec = 0
    if finite.size:
        # R drops trailing zeros of the value needing the most decimals, up to `digits` significant
        need = []
        for x in finite:
            d = max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))
            txt = f"{x:.{d}f}"
            need.append(len(txt.split(".")[1].rstrip("0")) if "." in txt else 0)
        dec = max(need)
    strs = [f"{x:.{dec}f}" for x in v]
    width = max(len(t) for t in strs)
    return [t.rjust(width) for t in strs]


def format_lme4(df: pd.DataFrame, digits: int = 4) -> str:
    """The text lme4 prints for ``print(VarCorr(fit), comp = c("Variance", "Std.Dev."))``.

    Numbers of each column share their decimals (R's ``format(digits=)``),
    columns are left-aligned under their names, one space apart, each line
    led by a space, as R prints a character matrix. Cost O(rows).
    """
    cols = list(df.columns)
    text = {c: [str(v) for v in df[c]] for c in cols}
    for c in ("Variance", "Std.Dev."):
        if c in df:
            text[c] = _r_format(df[c].to_numpy(), digits)
    widths = {c: max([len(c)] + [len(t) for t in text[c]]) for c in cols}
    lines = [" " + " ".join(c.ljust(widths[c]) for c in cols)]
    for i in range(len(df)):
        lines.append(" " + " ".join(text[c][i].ljust(widths[c]) for c in cols))
    return "\n".join(line.rstrip() for line in lines)


class VarCorrLme4(pd.DataFrame):
    """The wide lme4 table (a DataFrame) that prints as lme4 prints ``VarCorr``; see :func:`format_lme4`.

    Operations that give a table (``round``, row or column selection) keep
    the class, so they print the same way; ``str()``/``print`` give lme4's
    text, notebooks show the HTML table; ``pd.DataFrame(vc)`` is a plain copy.
    """

    @property
    def _constructor(self):
        return VarCorrLme4

    def __repr__(self):
        return format_lme4(self)

    __str__ = __repr__


def varcorr_lme4(fit) -> pd.DataFrame:
    """lme4's printed ``VarCorr``: Groups, Name, Variance, Std.Dev., Corr (posterior means).

    Returns a :class:`VarCorrLme4`, a DataFrame whose ``print`` is lme4's
    text (:func:`format_lme4`).

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
    return VarCorrLme4(pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev."]
                                    + (corr_cols if n_corr else [])))
