"""Diagnostic and result plots; ArviZ draws them where it has the plot.

matplotlib is imported inside each function, so importing bayeslmm never
starts a GUI backend; every function returns the matplotlib ``Figure`` it drew
(with ``ax=`` given, ``ax.figure``); its axes are ``fig.axes``.

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
           "plot_caterpillar", "plot_ppc", "pp_check", "plot_ess_per_second"]


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


def _layout(axes, title_size=None, label_size=None):
    """Constrained layout on the figure of ``axes`` so that panel titles and tick labels do not overlap; the figure."""
    fig = np.ravel(axes)[0].figure
    fig.set_layout_engine("constrained")
    for ax in np.ravel(axes):
        if title_size:
            ax.title.set_fontsize(title_size)
        if label_size:
            # ArviZ's axis labels are larger than the panel titles, which reads as shouting in a grid of panels
            ax.xaxis.label.set_fontsize(label_size)
            ax.yaxis.label.set_fontsize(label_size)
    return fig


def _panel_figsize(var_names, fit, per_row=1.6):
    n = len(var_names) if var_names is not None else len(sampled_parameters(fit).data_vars)
    return (9, max(2.5, per_row * n))


def plot_trace(fit, var_names=None, **kwargs):
    """Trace and density of each sampled parameter (``az.plot_trace``), one row each, titles not overlapping.

    kwargs go to ArviZ; the figure height grows with the number of
    parameters and the layout is constrained (no overlapping titles).
    Returns the Figure. Cost O(S) per parameter plus the plot.
    """
    import arviz as az

    kwargs.setdefault("figsize", _panel_figsize(var_names, fit))
    kwargs.setdefault("compact", False)
    return _layout(az.plot_trace(sampled_parameters(fit), var_names=var_names, **kwargs), title_size=9)


def plot_rank(fit, var_names=None, **kwargs):
    """Rank histograms per chain of each sampled parameter (``az.plot_rank``); kwargs go to ArviZ.

    Returns the Figure. Cost O(S log S) per parameter plus the plot.
    """
    import arviz as az

    n = len(var_names) if var_names is not None else len(sampled_parameters(fit).data_vars)
    kwargs.setdefault("figsize", (10, 2.4 * int(np.ceil(n / 3))))
    return _layout(az.plot_rank(sampled_parameters(fit), var_names=var_names, **kwargs), title_size=10,
                   label_size=9)


def _interval(a, prob, axis=0):
    """Equal-tailed ``prob`` interval (the tables' Q2.5/Q97.5 for 0.95)."""
    return np.quantile(a, [(1 - prob) / 2, (1 + prob) / 2], axis=axis)


def plot_fixef(fit, terms=None, prob=0.95, inner_prob=0.5, ax=None):
    """Coefficient plot of the population-level effects: posterior mean, equal-tailed intervals.

    One row per term (labelled as the formula names it, ``cond``,
    ``f[b]``), the thin line the central ``prob`` interval (the Q2.5/Q97.5
    of :meth:`~bayeslmm.posterior.results.LMMFit.fixef` for 0.95), the thick
    one the ``inner_prob`` interval, as brms ``mcmc_plot``. ``terms``
    selects and orders them (leave out a large Intercept that squeezes the
    others). Returns the Figure (``ax.figure`` when ``ax`` is given). Cost O(S p).
    """
    import matplotlib.pyplot as plt

    names = list(fit.design.fixed_names)
    terms = names if terms is None else list(terms)
    missing = [t for t in terms if t not in names]
    if missing:
        raise ValueError(f"terms {missing} are not population-level effects of the model; they are {names}.")
    a = np.stack([np.asarray(fit.posterior["fixef"].sel(fixef_term=t)).reshape(-1) for t in terms], axis=1)
    mean = a.mean(0)
    lo, hi = _interval(a, prob)
    ilo, ihi = _interval(a, inner_prob)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 0.45 * len(terms) + 1.3), layout="constrained")
    pos = np.arange(len(terms))[::-1]
    ax.hlines(pos, lo, hi, color="C0", lw=1.2)
    ax.hlines(pos, ilo, ihi, color="C0", lw=3.5)
    ax.plot(mean, pos, "o", color="C0", ms=5, mec="white", mew=0.8)
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(pos, terms)
    ax.set_ylim(-0.7, len(terms) - 0.3)
    ax.set_xlabel(f"Estimate ({100 * prob:g}% and {100 * inner_prob:g}% equal-tailed intervals)")
    ax.set_title(f"Population-level effects on {fit.design.spec.response}", fontsize=10)
    return ax.figure


def plot_caterpillar(fit, factor, effect="Intercept", prob=0.95, max_levels=60, n_extreme=15, ax=None):
    """Caterpillar plot: one level per row, sorted by posterior mean, with central ``prob`` intervals.

    Uses the draws of ``r_<factor>`` (recovered ones for marginalized
    factors): deviations from the population-level effect, as lme4's
    ``ranef``. With more than ``max_levels`` levels it shows the
    ``n_extreme`` lowest and highest levels (drawn in a second colour) and
    evenly spaced levels between them, ``max_levels`` in all, every row
    labelled, and says so in the title. Returns the Figure (``ax.figure``
    when ``ax`` is given). Cost O(S L log L) for L levels.
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
    lo, hi = _interval(a, prob)
    order = np.argsort(mean)
    L = blk.n_levels
    title = f"{factor}: {L} levels"
    extreme = np.zeros(L, bool)
    if L > max_levels:
        k = max(0, min(n_extreme, max_levels // 2))
        middle = order[k:L - k]
        n_mid = max_levels - 2 * k
        picks = middle[np.round(np.linspace(0, len(middle) - 1, n_mid)).astype(int)] if n_mid > 0 else middle[:0]
        shown = np.concatenate([order[:k], picks, order[L - k:]])
        extreme[order[:k]] = extreme[order[L - k:]] = True
        # two lines: on one, the title fills the default width edge to edge
        title = (f"{factor}: {len(shown)} of {L} levels shown\n({k} lowest, {k} highest, "
                 f"{n_mid} evenly spaced between)")
        order = shown
    n = len(order)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, max(2.5, min(14, 0.16 * n + 1.2))), layout="constrained")
    pos = np.arange(n)
    colors = np.where(extreme[order], "C1", "C0")
    ax.hlines(pos, lo[order], hi[order], colors=colors, lw=1)
    ax.scatter(mean[order], pos, c=colors, s=9, zorder=3)
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(pos, [str(blk.levels[i]) for i in order], fontsize=max(4.5, min(8, 500 / max(n, 1))))
    ax.set_ylim(-1, n)
    ax.set_xlabel(f"{effect} deviation by {factor} (mean, {100 * prob:g}% equal-tailed interval)")
    ax.set_ylabel(factor)
    ax.set_title(title, fontsize=9)
    return ax.figure


PPC_KINDS = ("dens_overlay", "hist", "stat", "stat_grouped", "intervals")
_STATS = {"mean": np.mean, "median": np.median, "sd": lambda v, axis: np.std(v, axis=axis, ddof=1),
          "min": np.min, "max": np.max}


def _yrep(fit, random_seed):
    if "posterior_predictive" not in fit.idata.groups():
        posterior_predictive(fit, random_seed=random_seed)
    yrep = np.asarray(fit.idata.posterior_predictive["y"])
    return yrep.reshape(-1, yrep.shape[-1]), np.asarray(fit.design.y_original, dtype=float)


def _stat_fn(stat):
    if callable(stat):
        return getattr(stat, "__name__", "T"), lambda v, axis: np.apply_along_axis(stat, axis, v)
    if stat not in _STATS:
        raise ValueError(f"stat must be one of {sorted(_STATS)} or a function; got {stat!r}.")
    return stat, _STATS[stat]


def plot_ppc(fit, kind="dens_overlay", ndraws=None, stat="mean", group=None, prob=0.9, inner_prob=0.5,
             max_obs=200, random_seed=None, ax=None, num_pp_samples=None):
    """Posterior predictive check, brms ``pp_check(type=...)``, axes labelled with the response as written.

    ``kind``:

    - ``"dens_overlay"``: density of y (thick) over those of ``ndraws``
      (default 50) replicated data sets (``ppc_dens_overlay``);
    - ``"hist"``: histograms of y and of ``ndraws`` (default 8) replicated
      data sets, one panel each (``ppc_hist``);
    - ``"stat"``: histogram over draws of the statistic ``stat`` ("mean",
      "median", "sd", "min", "max" or a function of a 1-d array) of the
      replicated data, with its value on y (``ppc_stat``);
    - ``"stat_grouped"``: the same per level of the grouping factor
      ``group`` (up to 16 panels, the first levels) (``ppc_stat_grouped``);
    - ``"intervals"``: per observation the central ``prob`` and
      ``inner_prob`` intervals of the replicated values with y as points
      (``ppc_intervals``); beyond ``max_obs`` rows an evenly spaced subset,
      said in the title.

    Draws ``posterior_predictive`` first (seeded by ``random_seed``) if the
    fit does not have it. Returns the Figure (``ax.figure`` when ``ax`` is
    given; ``ax`` is ignored by the multi-panel kinds); its panels are
    ``fig.axes``. Cost: O(S n) plus the plot.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if kind not in PPC_KINDS:
        raise ValueError(f"kind must be one of {PPC_KINDS}; got {kind!r}.")
    if ndraws is None and num_pp_samples is not None:
        ndraws = num_pp_samples
    yrep, y = _yrep(fit, random_seed)
    rng = np.random.default_rng(random_seed)
    name = fit.design.spec.response
    S = yrep.shape[0]

    def pick(k):
        return yrep[rng.choice(S, size=min(k, S), replace=False)]

    if kind == "dens_overlay":
        from scipy.stats import gaussian_kde

        sub = pick(50 if ndraws is None else ndraws)
        lo, hi = np.quantile(np.concatenate([y, sub.ravel()]), [0.001, 0.999])
        grid = np.linspace(lo, hi, 256)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
        def density(v):
            # A replicated data set with a single value (a small bernoulli fit) has no KDE: draw it flat.
            return gaussian_kde(v)(grid) if np.ptp(v) > 0 else np.zeros_like(grid)

        for row in sub:
            ax.plot(grid, density(row), color="C0", alpha=0.25, lw=0.7)
        ax.plot(grid, density(y), color="k", lw=2)
        ax.plot([], [], color="C0", alpha=0.6, label=f"y_rep ({len(sub)} draws)")
        ax.plot([], [], color="k", lw=2, label="y")
        ax.legend(frameon=False, fontsize=8)
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.set_title("Posterior predictive check: densities", fontsize=10)
        return ax.figure
    if kind == "hist":
        sub = pick(8 if ndraws is None else ndraws)
        panels = [("y", y)] + [(f"y_rep {i + 1}", r) for i, r in enumerate(sub)]
        ncol = min(3, len(panels))
        nrow = int(np.ceil(len(panels) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.0 * nrow), sharex=True, layout="constrained")
        axes = np.atleast_1d(axes).ravel()
        bins = np.histogram_bin_edges(np.concatenate([y, sub.ravel()]), bins=30)
        for a, (title, v) in zip(axes, panels):
            a.hist(v, bins=bins, color="k" if title == "y" else "C0", alpha=0.85 if title == "y" else 0.6)
            a.set_title(title, fontsize=9)
            a.set_yticks([])
        for a in axes[len(panels):]:
            a.set_visible(False)
        for a in axes[(nrow - 1) * ncol:]:
            a.set_xlabel(name)
        fig.suptitle("Posterior predictive check: histograms", fontsize=10)
        return fig
    if kind in ("stat", "stat_grouped"):
        label, fn = _stat_fn(stat)
        if kind == "stat":
            if ax is None:
                _, ax = plt.subplots(figsize=(5, 3.4), layout="constrained")
            t_rep, t_y = fn(yrep, axis=1), float(fn(y, axis=0))
            ax.hist(t_rep, bins=30, color="C0", alpha=0.7, label=f"{label}(y_rep)")
            ax.axvline(t_y, color="k", lw=2, label=f"{label}(y) = {t_y:.3g}")
            ax.legend(frameon=False, fontsize=8)
            ax.set_xlabel(f"{label}({name})")
            ax.set_ylabel("draws")
            ax.set_title(f"Posterior predictive check: {label}, p = {np.mean(t_rep >= t_y):.2f}", fontsize=10)
            return ax.figure
        if group is None:
            raise ValueError("kind='stat_grouped' needs group=, a grouping factor of the model: "
                             f"{[b.name for b in fit.design.blocks]}.")
        try:
            blk = fit.design.block(group)
        except KeyError:
            raise ValueError(f"group={group!r} is not a grouping factor of the model; its factors are "
                             f"{[b.name for b in fit.design.blocks]}.") from None
        levels = list(range(min(blk.n_levels, 16)))
        ncol = min(4, len(levels))
        nrow = int(np.ceil(len(levels) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.5 * ncol, 2.0 * nrow), layout="constrained")
        axes = np.atleast_1d(axes).ravel()
        for a, lev in zip(axes, levels):
            rows = blk.group_index == lev
            t_rep, t_y = fn(yrep[:, rows], axis=1), float(fn(y[rows], axis=0))
            a.hist(t_rep, bins=20, color="C0", alpha=0.7)
            a.axvline(t_y, color="k", lw=1.8)
            a.set_title(f"{group} = {blk.levels[lev]}", fontsize=8)
            a.set_yticks([])
            a.xaxis.set_major_locator(MaxNLocator(4))
            a.tick_params(labelsize=7)
        for a in axes[len(levels):]:
            a.set_visible(False)
        for a in axes[:len(levels)][-ncol:]:
            a.set_xlabel(f"{label}({name})", fontsize=8)
        more = f" (first 16 of {blk.n_levels} levels)" if blk.n_levels > 16 else ""
        fig.suptitle(f"Posterior predictive check: {label} by {group}{more}; black: y", fontsize=10)
        return fig
    # intervals
    n = y.shape[0]
    idx = np.arange(n) if n <= max_obs else np.unique(np.round(np.linspace(0, n - 1, max_obs)).astype(int))
    lo, hi = _interval(yrep[:, idx], prob)
    ilo, ihi = _interval(yrep[:, idx], inner_prob)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 4 + 0.04 * len(idx)), 3.6), layout="constrained")
    ax.vlines(idx, lo, hi, color="C0", lw=0.8, alpha=0.6)
    ax.vlines(idx, ilo, ihi, color="C0", lw=2.2)
    ax.plot(idx, y[idx], "o", color="k", ms=2.5, label="y")
    ax.plot([], [], color="C0", lw=2.2, label=f"y_rep {100 * inner_prob:g}% / {100 * prob:g}%")
    ax.legend(frameon=False, fontsize=8, loc="best")
    ax.set_xlabel("observation" + (f" ({len(idx)} of {n}, evenly spaced)" if len(idx) < n else ""))
    ax.set_ylabel(name)
    ax.set_title("Posterior predictive check: intervals per observation", fontsize=10)
    return ax.figure


pp_check = plot_ppc


def plot_ess_per_second(fits: dict, ax=None):
    """Bar chart of the smallest bulk ESS per second of total fit time, one bar per fit.

    ``fits`` maps a label to a fit of the same model (see :func:`ess_per_second`).
    Returns the Figure (``ax.figure`` when ``ax`` is given).
    """
    import matplotlib.pyplot as plt

    tab = ess_per_second(fits)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(tab) + 2, 3), layout="constrained")
    bars = ax.bar([str(i) for i in tab.index], tab["ess_per_second"], color="C0")
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in tab["ess_per_second"]], fontsize=8)
    ax.set_ylabel("min bulk ESS / s")
    ax.set_title("Sampling efficiency (total fit time)")
    return ax.figure
