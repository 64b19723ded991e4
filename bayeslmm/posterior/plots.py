"""Diagnostic and result plots; ArviZ draws them where it has the plot.

matplotlib is imported inside each function, so importing bayeslmm never
starts a GUI backend; every function returns the matplotlib axes it drew on
(an array of axes for ArviZ's multi-panel plots).

Sampled parameters are named as brms names them: ``b_<term>``,
``sd_<g>__<effect>``, ``cor_<g>__<effect1>__<effect2>``, ``sigma``. They are
the same for every marginalization plan (the group-level effects ``r_<g>``
are not among them: for marginalized factors they are not sampled at all).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .predict import posterior_predictive

__all__ = ["sampled_parameters", "ess_per_second", "plot_trace", "plot_rank", "plot_fixef",
           "plot_caterpillar", "plot_ppc", "plot_ess_per_second"]


def sampled_parameters(fit):
    """xarray.Dataset of the hyperparameters, one (chain, draw) variable each, brms-named.

    Holds the fixed effects, every group-level SD, the off-diagonal
    correlations (each pair once) and sigma. Cost: a copy of those draws.
    """
    import xarray as xr

    post = fit.posterior
    out = {}
    for t in fit.design.fixed_names:
        out[f"b_{t}"] = post["fixef"].sel(fixef_term=t, drop=True)
    for blk in fit.design.blocks:
        eff = f"{blk.name}__effect"
        for t in blk.terms:
            out[f"sd_{blk.name}__{t}"] = post[f"sd_{blk.name}"].sel({eff: t}, drop=True)
        for grp in blk.corr_groups:
            for a in range(len(grp)):
                for b in range(a + 1, len(grp)):
                    ta, tb = blk.terms[grp[a]], blk.terms[grp[b]]
                    out[f"cor_{blk.name}__{ta}__{tb}"] = post[f"cor_{blk.name}"].sel(
                        {eff: ta, f"{eff}_bis": tb}, drop=True)
    out["sigma"] = post["sigma"]
    return xr.Dataset(out)


def ess_per_second(fits: dict) -> pd.DataFrame:
    """Smallest bulk ESS over the sampled parameters, per second of ``fit.timings["total"]``.

    ``fits`` maps a label to an LMMFit of the same model (e.g. one per
    marginalization plan). Returns a DataFrame indexed by label with columns
    ``min_bulk_ess``, ``worst`` (the parameter that has it), ``seconds`` and
    ``ess_per_second``.
    """
    import arviz as az

    rows = {}
    for label, fit in fits.items():
        ess = az.ess(sampled_parameters(fit), method="bulk")
        vals = {k: float(v) for k, v in ess.data_vars.items()}
        worst = min(vals, key=lambda k: vals[k] if np.isfinite(vals[k]) else np.inf)
        sec = float(fit.timings["total"])
        rows[label] = {"min_bulk_ess": vals[worst], "worst": worst, "seconds": sec,
                       "ess_per_second": vals[worst] / sec}
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_trace(fit, var_names=None, **kwargs):
    """Trace and density of each sampled parameter (``az.plot_trace``); kwargs go to ArviZ."""
    import arviz as az

    return az.plot_trace(sampled_parameters(fit), var_names=var_names, **kwargs)


def plot_rank(fit, var_names=None, **kwargs):
    """Rank histograms per chain of each sampled parameter (``az.plot_rank``); kwargs go to ArviZ."""
    import arviz as az

    return az.plot_rank(sampled_parameters(fit), var_names=var_names, **kwargs)


def plot_fixef(fit, terms=None, prob=0.95, ax=None, **kwargs):
    """Coefficient (forest) plot of the fixed effects with ``prob`` HDIs (``az.plot_forest``).

    ``terms`` selects and orders the coefficients (e.g. leave out a large
    Intercept that squeezes the others).
    """
    import arviz as az

    coords = {"fixef_term": list(terms)} if terms is not None else None
    return az.plot_forest(fit.idata, var_names=["fixef"], coords=coords, combined=True, hdi_prob=prob,
                          ax=ax, **kwargs)


def plot_caterpillar(fit, factor, effect="Intercept", prob=0.95, ax=None):
    """Caterpillar plot: one level per row, sorted by posterior mean, with central ``prob`` intervals.

    Uses the draws of ``r_<factor>`` (recovered ones for marginalized
    factors): deviations from the fixed effect, as lme4's ``ranef``.
    """
    import matplotlib.pyplot as plt

    try:
        blk = fit.design.block(factor)
    except KeyError:
        raise ValueError(f"No grouping factor {factor!r}; the model's factors are "
                         f"{[b.name for b in fit.design.blocks]}.") from None
    if effect not in blk.terms:
        raise ValueError(f"{factor!r} has effects {list(blk.terms)}, not {effect!r}.")
    r = fit.posterior[f"r_{factor}"].sel({f"{factor}__effect": effect})
    a = np.asarray(r).reshape(-1, blk.n_levels)
    mean = a.mean(0)
    lo, hi = np.quantile(a, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    order = np.argsort(mean)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, max(2.5, min(12, 0.18 * blk.n_levels + 1))))
    pos = np.arange(blk.n_levels)
    ax.hlines(pos, lo[order], hi[order], color="C0", lw=1)
    ax.plot(mean[order], pos, "o", color="C0", ms=3)
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    if blk.n_levels <= 60:
        ax.set_yticks(pos, [blk.levels[i] for i in order], fontsize=7)
    else:
        ax.set_yticks([])
    ax.set_xlabel(f"r_{factor}[{effect}] ({100 * prob:g}% interval)")
    ax.set_ylabel(factor)
    return ax


def plot_ppc(fit, num_pp_samples=100, random_seed=None, ax=None, **kwargs):
    """Posterior predictive check (``az.plot_ppc``): density of y against replicated data sets.

    Draws ``posterior_predictive`` first (seeded by ``random_seed``) if the
    fit does not have it yet.
    """
    import arviz as az

    if "posterior_predictive" not in fit.idata.groups():
        posterior_predictive(fit, random_seed=random_seed)
    n = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    return az.plot_ppc(fit.idata, num_pp_samples=min(num_pp_samples, n), random_seed=random_seed, ax=ax, **kwargs)


def plot_ess_per_second(fits: dict, ax=None):
    """Bar chart of the smallest bulk ESS per second of total fit time, one bar per fit.

    ``fits`` maps a label to a fit of the same model (see :func:`ess_per_second`).
    """
    import matplotlib.pyplot as plt

    tab = ess_per_second(fits)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(tab) + 2, 3))
    bars = ax.bar([str(i) for i in tab.index], tab["ess_per_second"], color="C0")
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in tab["ess_per_second"]], fontsize=8)
    ax.set_ylabel("min bulk ESS / s")
    ax.set_title("Sampling efficiency (total fit time)")
    return ax
