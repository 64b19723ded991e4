"""Conditional effects of predictors, as brms ``conditional_effects``.

For each effect (one predictor, or two joined by ``:``), predictions are
made on a grid where the effect's variables vary and every other predictor
is held fixed: numeric ones at their training mean, categorical ones at
their reference (first) level (brms's rule; see
:mod:`bayeslmm.posterior.grid`). A numeric effect varies over ``resolution``
points from its training minimum to its maximum; a categorical one over its
levels. The second variable of an interaction takes every level (a factor)
or its mean - SD, mean, mean + SD (numeric), as brms's default
``int_conditions``; ``int_conditions={"x": [...]}`` gives other values.

Each grid row is summarised from the posterior draws of the prediction as
brms does: with ``robust=True`` (brms's default) ``estimate__`` is the
median and ``se__`` the MAD (scaled by 1.4826), otherwise the mean and the
SD; ``lower__``/``upper__`` are the equal-tailed ``prob`` interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayeslmm.model.checks import check_bool, check_positive_int, check_probability

from .grid import (METHODS, complete_grid, grid_draws, model_variables, response_label, term_variables,
                   training_frame)

__all__ = ["ConditionalEffects", "conditional_effects", "summarise_columns"]

_MAD = 1.4826


def summarise_columns(draws, prob=0.95, robust=True) -> pd.DataFrame:
    """brms ``posterior_summary`` of each column of draws (S x n): estimate__, se__, lower__, upper__."""
    a = np.asarray(draws, dtype=float)
    lo, hi = np.quantile(a, [(1 - prob) / 2, 1 - (1 - prob) / 2], axis=0)
    if robust:
        med = np.median(a, axis=0)
        est, se = med, _MAD * np.median(np.abs(a - med), axis=0)
    else:
        est, se = a.mean(0), a.std(0, ddof=1)
    return pd.DataFrame({"estimate__": est, "se__": se, "lower__": lo, "upper__": hi})


class ConditionalEffects:
    """The result of :func:`conditional_effects`: one DataFrame per effect, and its figure.

    Behaves as a read-only dict effect -> DataFrame (``ce["x:f"]``,
    ``list(ce)``, ``ce.items()``); ``ce.figures`` maps each effect to its
    matplotlib Figure (empty with ``plot=False`` until :meth:`plot` is
    called). Each DataFrame holds the grid (every predictor variable),
    ``effect1__`` (and ``effect2__``), ``cond__`` (the condition's label),
    then ``estimate__``, ``se__``, ``lower__`` and ``upper__`` as brms
    names them. With ``spaghetti=True``, ``ce.spaghetti`` maps each effect
    whose first variable is numeric to a long DataFrame of individual draws
    (the grid columns, ``sample__`` the draw's index and ``estimate__`` its
    value), brms's ``attr(, "spaghetti")``.
    """

    def __init__(self, tables: dict, kinds: dict, response: str, prob: float, method: str, spaghetti=None):
        self.tables, self.kinds, self.response, self.prob, self.method = tables, kinds, response, prob, method
        self.spaghetti: dict = dict(spaghetti or {})
        self.figures: dict = {}

    def __getitem__(self, key):
        return self.tables[key]

    def __iter__(self):
        return iter(self.tables)

    def __len__(self):
        return len(self.tables)

    def keys(self):
        return self.tables.keys()

    def items(self):
        return self.tables.items()

    def __repr__(self):
        return f"<ConditionalEffects {list(self.tables)} ({self.method}, {100 * self.prob:g}% intervals)>"

    def plot(self, effects=None, dpi=100):
        """Draw (again) one figure per effect; returns dict effect -> Figure. Cost: O(rows) drawing."""
        names = list(self.tables) if effects is None else ([effects] if isinstance(effects, str) else list(effects))
        for name in names:
            if name not in self.tables:
                raise ValueError(f"No effect {name!r}; the effects are {list(self.tables)}.")
            self.figures[name] = _plot_effect(self.tables[name], tuple(name.split(":")), self.kinds[name],
                                              self.response, self.prob, self.method, dpi,
                                              self.spaghetti.get(name))
        return {n: self.figures[n] for n in names}


def _parse_effects(design, effects) -> list[tuple]:
    variables = model_variables(design)
    if effects is None:
        out = [t for t in term_variables(design) if len(t) <= 2]
        if not out:
            raise ValueError(f"The model {design.spec.formula!r} has no population-level predictors to show.")
        # main effects first, then the interactions (brms's order)
        return [t for t in out if len(t) == 1] + [t for t in out if len(t) == 2]
    if isinstance(effects, str):
        effects = [effects]
    if not isinstance(effects, (list, tuple)) or not all(isinstance(e, str) for e in effects):
        raise TypeError(f"effects must be None, a string such as 'x' or 'x:f', or a list of them; got {effects!r}.")
    out = []
    for e in effects:
        parts = tuple(p.strip() for p in e.split(":"))
        if len(parts) > 2:
            raise ValueError(f"effect {e!r} has {len(parts)} variables; at most two-way interactions can be shown "
                             "(hold a third variable at chosen values with conditions=).")
        unknown = [p for p in parts if p not in variables]
        if unknown:
            raise ValueError(f"effect {e!r} names {unknown}, which are not predictors of the fixed part; they are "
                             f"{list(variables)}.")
        if len(parts) == 2 and parts[0] == parts[1]:
            raise ValueError(f"effect {e!r} names the same variable twice.")
        if parts not in out:
            out.append(parts)
    return out


def _values(var, resolution):
    if var.categorical:
        return list(var.levels)
    if var.hi == var.lo:
        return [var.lo]
    return list(np.linspace(var.lo, var.hi, resolution))


def _second_values(var, int_conditions):
    if var.name in int_conditions:
        return int_conditions[var.name]
    if var.categorical:
        return list(var.levels)
    return [var.mean - var.sd, var.mean, var.mean + var.sd]


def _int_conditions(int_conditions, variables, frame) -> dict:
    """Validated ``int_conditions``: variable -> list of values (floats for numeric, known levels for factors).

    A callable value is applied to the variable's training values (``frame``'s column), as brms does.
    """
    if int_conditions is None:
        return {}
    if not isinstance(int_conditions, dict):
        raise TypeError(f"int_conditions must be a dict variable -> list of values, got "
                        f"{type(int_conditions).__name__}.")
    out = {}
    for name, vals in int_conditions.items():
        if name not in variables:
            raise ValueError(f"int_conditions names {name!r}, which is not a predictor of the fixed part; they are "
                             f"{list(variables)}.")
        if callable(vals):
            vals = vals(frame[name].to_numpy())
        vals = list(np.atleast_1d(np.asarray(vals, dtype=object)))
        if not vals:
            raise ValueError(f"int_conditions[{name!r}] is empty; give at least one value.")
        var = variables[name]
        if var.categorical:
            unknown = [v for v in vals if v not in var.levels]
            if unknown:
                raise ValueError(f"int_conditions[{name!r}] has {unknown}, which are not levels of {name!r}: "
                                 f"{list(var.levels)}.")
        else:
            try:
                vals = [float(v) for v in vals]
            except (TypeError, ValueError):
                raise TypeError(f"int_conditions[{name!r}] must be numbers for the numeric {name!r}; got "
                                f"{vals!r}.") from None
            if not np.all(np.isfinite(vals)):
                raise ValueError(f"int_conditions[{name!r}] has non-finite values {vals!r}.")
        out[name] = list(dict.fromkeys(vals))
    return out


def _conditions(conditions) -> list[tuple[str, dict]]:
    if conditions is None:
        return [("", {})]
    if not isinstance(conditions, pd.DataFrame):
        raise TypeError(f"conditions must be a pandas DataFrame (one row per condition), got "
                        f"{type(conditions).__name__}.")
    if len(conditions) == 0:
        raise ValueError("conditions has no rows; give at least one row of values to condition on.")
    out = []
    for idx, row in conditions.iterrows():
        vals = {k: v for k, v in row.items() if k != "cond__"}
        label = str(row["cond__"]) if "cond__" in conditions.columns else " & ".join(
            f"{k} = {v:.3g}" if isinstance(v, (float, np.floating)) else f"{k} = {v}" for k, v in vals.items())
        out.append((label, vals))
    labels = [lbl for lbl, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"conditions gives duplicate condition labels {labels}; make the rows unique or give a "
                         "cond__ column.")
    return out


def conditional_effects(fit, effects=None, conditions=None, re_formula="NA", prob=0.95, method="posterior_epred",
                        resolution=100, robust=True, plot=True, random_seed=None, int_conditions=None,
                        spaghetti=False, ndraws=None) -> ConditionalEffects:
    """Conditional effects of predictors, like brms ``conditional_effects``.

    Parameters
    ----------
    fit : LMMFit
    effects : None, str or list of str
        ``"x"`` or ``"x:f"``; None: every main effect and two-way interaction
        of the fixed part (terms of three or more variables are skipped).
    conditions : pandas.DataFrame, optional
        Values to hold other variables at, one row per condition (each
        drawn as its own panel; a ``cond__`` column labels them). Variables
        not given are held at their mean / reference level.
    re_formula : "NA" (default), None or str
        Group-level effects to include, as in :func:`bayeslmm.posterior.predict.predict`.
        The default ``"NA"`` leaves them out, as brms's default
        ``re_formula = NA``. With None (or a formula) a factor whose
        grouping column is not in ``conditions`` enters as one new level,
        its effect drawn from N(0, Sigma_g) per draw, so the band includes
        the between-group variation; a level given in ``conditions`` uses
        that level's effects.
    prob : float
        Probability mass of the equal-tailed intervals.
    method : {"posterior_epred", "posterior_predict", "posterior_linpred"}
        What is predicted (brms names): the expected response, new
        responses, or the linear predictor.
    resolution : int
        Number of points along a numeric effect.
    robust : bool
        True (brms's default): median and MAD; False: mean and SD.
    plot : bool
        Draw the figures now (``result.figures``); the data are there either way.
    random_seed : int, optional
        Seeds new-level effects, ``posterior_predict`` noise and the draws
        picked for ``spaghetti``.
    int_conditions : dict, optional
        brms ``int_conditions``: variable -> values the second variable of an
        interaction takes (numbers for a numeric one, a subset of the levels
        for a factor), instead of mean - SD, mean, mean + SD / every level;
        or a function of the variable's training values that returns them
        (``lambda v: np.quantile(v, [0.1, 0.5, 0.9])``).
    spaghetti : bool
        brms ``spaghetti``: also keep ``ndraws`` individual draws of each
        effect with a numeric first variable (``result.spaghetti``) and
        draw them as thin lines instead of the band.
    ndraws : int, optional
        Draws for ``spaghetti`` (default 100, as brms recommends), picked at
        random without replacement.

    Returns
    -------
    ConditionalEffects
        dict-like effect name (``"x"``, ``"x:f"``) -> DataFrame, with ``.figures``.

    Cost: one prediction of S draws on ``resolution x levels x conditions``
    rows per effect, O(S rows (p + sum_g d_g)).
    """
    prob = check_probability(prob, "prob")
    resolution = check_positive_int(resolution, "resolution")
    robust = check_bool(robust, "robust")
    plot = check_bool(plot, "plot")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    spaghetti = check_bool(spaghetti, "spaghetti")
    ndraws = 100 if ndraws is None else check_positive_int(ndraws, "ndraws")
    design = fit.design
    variables = model_variables(design)
    int_conds = _int_conditions(int_conditions, variables, training_frame(design))
    effs = _parse_effects(design, effects)
    conds = _conditions(conditions)
    tables, kinds, spag = {}, {}, {}
    for eff in effs:
        v1 = variables[eff[0]]
        frames = []
        for label, vals in conds:
            if len(eff) == 1:
                g = pd.DataFrame({eff[0]: _values(v1, resolution)})
            else:
                v2 = variables[eff[1]]
                a, b = _values(v1, resolution), _second_values(v2, int_conds)
                g = pd.DataFrame({eff[0]: np.repeat(np.array(a, dtype=object), len(b)),
                                  eff[1]: np.tile(np.array(b, dtype=object), len(a))})
                for v in (v1, v2):
                    if not v.categorical:
                        g[v.name] = g[v.name].astype(float)
            for k, v in vals.items():
                if k not in eff:
                    g[k] = v
            g["cond__"] = label
            frames.append(g)
        grid = pd.concat(frames, ignore_index=True)
        full = complete_grid(design, grid.drop(columns="cond__"), re_formula)
        draws = grid_draws(fit, full, re_formula=re_formula, method=method, random_seed=random_seed)
        out = full.copy()
        out["effect1__"] = grid[eff[0]].to_numpy()
        if len(eff) == 2:
            out["effect2__"] = grid[eff[1]].to_numpy()
        out["cond__"] = grid["cond__"].to_numpy()
        out = pd.concat([out, summarise_columns(draws, prob, robust)], axis=1)
        name = ":".join(eff)
        tables[name] = out
        kinds[name] = tuple("factor" if variables[e].categorical else "numeric" for e in eff)
        if spaghetti and kinds[name][0] == "numeric":
            picks = np.sort(np.random.default_rng(random_seed).choice(
                draws.shape[0], size=min(ndraws, draws.shape[0]), replace=False))
            long = out.drop(columns=["estimate__", "se__", "lower__", "upper__"]).loc[
                np.tile(np.arange(len(out)), len(picks))].reset_index(drop=True)
            long["sample__"] = np.repeat(picks, len(out))
            long["estimate__"] = draws[picks].ravel()
            spag[name] = long
    ce = ConditionalEffects(tables, kinds, response_label(design), prob, method, spag)
    if plot:
        ce.plot()
    return ce


# --- figures ----------------------------------------------------------------------

def _style(ax):
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    ax.grid(axis="y", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)


def _y_label(response, method):
    return {"posterior_epred": response, "posterior_predict": f"{response} (predicted)",
            "posterior_linpred": f"{response} (linear predictor)"}[method]


def _level_label(v, numeric):
    return f"{v:.3g}" if numeric else str(v)


def _draw_panel(ax, df, kind, name, prob, spag=None):
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    first_numeric = kind[0] == "numeric"
    if len(kind) == 1:
        series = [(None, df)]
    else:
        second = df["effect2__"]
        seen = list(dict.fromkeys(second))
        if kind[1] == "numeric":
            seen = sorted(seen, reverse=True)  # brms lists the largest value first
        series = [(lvl, df[second == lvl]) for lvl in seen]
    n = len(series)
    width = 0.6
    for k, (lvl, part) in enumerate(series):
        c = colors[k % len(colors)]
        label = None if lvl is None else _level_label(lvl, kind[1] == "numeric")
        x = part["effect1__"]
        if first_numeric:
            xs = x.to_numpy(dtype=float)
            order = np.argsort(xs)
            if spag is None:
                ax.fill_between(xs[order], part["lower__"].to_numpy()[order], part["upper__"].to_numpy()[order],
                                color=c, alpha=0.2, linewidth=0)
            else:
                sel = spag if lvl is None else spag[spag["effect2__"] == lvl]
                for _, one in sel.groupby("sample__"):
                    xo = one["effect1__"].to_numpy(dtype=float)
                    o = np.argsort(xo)
                    ax.plot(xo[o], one["estimate__"].to_numpy()[o], color=c, alpha=0.12, linewidth=0.6)
            ax.plot(xs[order], part["estimate__"].to_numpy()[order], color=c, linewidth=1.8, label=label)
        else:
            levels = list(dict.fromkeys(df["effect1__"]))
            pos = np.array([levels.index(v) for v in x], dtype=float)
            if n > 1:
                pos = pos + (k - (n - 1) / 2) * width / n
            est = part["estimate__"].to_numpy()
            yerr = np.vstack([est - part["lower__"].to_numpy(), part["upper__"].to_numpy() - est])
            ax.errorbar(pos, est, yerr=yerr, fmt="o", color=c, markersize=5, capsize=3, linewidth=1.4, label=label)
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels([str(v) for v in levels], rotation=30 if len(levels) > 6 else 0,
                               ha="right" if len(levels) > 6 else "center")
            ax.set_xlim(-0.6, len(levels) - 0.4)
    if len(kind) == 2:
        ax.legend(title=name.split(":")[1], fontsize=8, title_fontsize=9, frameon=False,
                  loc="center left", bbox_to_anchor=(1.0, 0.5))
    _style(ax)


def _plot_effect(df, eff, kind, response, prob, method, dpi, spag=None):
    import matplotlib.pyplot as plt

    conds = list(dict.fromkeys(df["cond__"]))
    n = len(conds)
    ncol = min(n, 3)
    width = 4.6 + (1.2 if len(kind) == 2 else 0)
    fig, axes = plt.subplots(int(np.ceil(n / ncol)), ncol, figsize=(width * ncol, 3.6 * int(np.ceil(n / ncol))),
                             dpi=dpi, squeeze=False, sharey=True, layout="constrained")
    axes = axes.ravel()
    for ax, cond in zip(axes, conds):
        _draw_panel(ax, df[df["cond__"] == cond], kind, ":".join(eff), prob,
                    None if spag is None else spag[spag["cond__"] == cond])
        ax.set_xlabel(eff[0], fontsize=10)
        if cond:
            ax.set_title(cond, fontsize=10)
    for ax in axes[::ncol]:
        ax.set_ylabel(_y_label(response, method), fontsize=10)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig
