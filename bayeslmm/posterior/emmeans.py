"""Estimated marginal means and contrasts between them, as the emmeans package computes them.

The reference grid (emmeans ``ref_grid``) crosses every level of every
categorical predictor of the fixed part; numeric predictors are held at
their training mean (or at the values given in ``at``). Per posterior draw,
the linear predictor is computed on each grid cell (group-level effects left
out by default, ``re_formula="NA"``), then averaged over the cells that
share the levels of ``specs`` (and ``by``) with **equal weights** over the
other factors' levels (emmeans's default ``weights = "equal"``), whatever the
number of observations per cell. With ``type="response"`` the average is
then back-transformed by the inverse link (exp() for lognormal, the median
of y; emmeans's back-transform without bias adjustment); ``type="link"``
keeps the link scale.

Contrasts are linear combinations of those per-draw means, on the same
scale; ``Post.Prob`` is the share of draws in which the contrast is > 0.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .grid import complete_grid, grid_draws, link_to_response, model_variables
from .predict import summarise_draws

__all__ = ["emmeans", "contrasts", "emmeans_draws"]

TYPES = ("response", "link")
METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl")


def _names(value, what) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{what} must be a variable name or a list of them, got {value!r}.")


def _check(fit, specs, by, at, scale):
    variables = model_variables(fit.design)
    specs, by = _names(specs, "specs"), _names(by, "by")
    if not specs:
        raise ValueError("specs must name at least one predictor, e.g. specs='cond'.")
    for v in specs + by:
        if v not in variables:
            raise ValueError(f"{v!r} is not a predictor of the fixed part {fit.design.spec.fixed!r}; the "
                             f"predictors are {list(variables)}.")
    if set(specs) & set(by):
        raise ValueError(f"specs and by share {sorted(set(specs) & set(by))}; a variable is one or the other.")
    if scale not in TYPES:
        raise ValueError(f"type must be one of {TYPES}, got {scale!r}.")
    at = {} if at is None else at
    if not isinstance(at, dict):
        raise TypeError(f"at must be a dict variable -> value(s), got {type(at).__name__}.")
    for k, vals in at.items():
        if k not in variables:
            raise ValueError(f"at names {k!r}, which is not a predictor; the predictors are {list(variables)}.")
        vals = list(np.atleast_1d(vals))
        if not vals:
            raise ValueError(f"at[{k!r}] is empty.")
        var = variables[k]
        if var.categorical:
            bad = [v for v in vals if v not in var.levels]
            if bad:
                raise ValueError(f"at[{k!r}] has {bad}, which are not levels of {k!r}: {list(var.levels)}.")
    return variables, specs, by, at


def reference_grid(fit, at=None) -> pd.DataFrame:
    """emmeans ``ref_grid``: every level of each factor crossed with the numeric predictors at their means.

    ``at`` (variable -> values) replaces a factor's levels or a numeric
    predictor's mean. Rows: the product of the numbers of values.
    """
    variables = model_variables(fit.design)
    at = at or {}
    values = {}
    for name, var in variables.items():
        if name in at:
            values[name] = list(np.atleast_1d(at[name]))
        else:
            values[name] = list(var.levels) if var.categorical else [var.mean]
    rows = list(itertools.product(*values.values()))
    grid = pd.DataFrame(rows, columns=list(values))
    for name, var in variables.items():
        if not var.categorical:
            grid[name] = grid[name].astype(float)
    return grid


def emmeans_draws(fit, specs, by=None, at=None, re_formula="NA", type="response", random_seed=None):
    """Per-draw marginal means: (labels DataFrame, draws S x cells), cells ordered by ``by`` then ``specs``.

    Cost: one linear-predictor evaluation on the reference grid, O(S G (p + sum_g d_g))
    for G grid rows, then O(S G) averaging.
    """
    variables, specs, by, at = _check(fit, specs, by, at, type)
    grid = reference_grid(fit, at)
    full = complete_grid(fit.design, grid, re_formula)
    eta = grid_draws(fit, full, re_formula=re_formula, method="posterior_linpred", random_seed=random_seed)
    keys = by + specs
    # by varies slowest, then specs in the order given, each in its level order (emmeans's layout)
    cells = pd.DataFrame(list(itertools.product(*(list(dict.fromkeys(grid[k])) for k in keys))), columns=keys)
    out = np.empty((eta.shape[0], len(cells)))
    for j, row in cells.iterrows():
        mask = np.ones(len(grid), dtype=bool)
        for k in keys:
            mask &= (grid[k] == row[k]).to_numpy()
        # equal weights: every remaining grid cell counts once (emmeans weights = "equal")
        out[:, j] = eta[:, mask].mean(axis=1)
    if type == "response":
        out = link_to_response(fit.design.family, out)
    return cells, out, specs, by


def _table(labels, draws, prob, post_prob=False):
    s = summarise_draws(draws, None, prob)
    if post_prob:
        s["Post.Prob"] = (np.asarray(draws) > 0).mean(axis=0)
    return pd.concat([labels.reset_index(drop=True), s], axis=1)


def emmeans(fit, specs, by=None, at=None, re_formula="NA", type="response", prob=0.95):
    """Estimated marginal means per level of ``specs`` (within each level of ``by``), like emmeans ``emmeans``.

    Returns a DataFrame with the ``by`` and ``specs`` columns, then
    Estimate (posterior mean), Est.Error (SD) and the equal-tailed ``prob``
    interval (``Q2.5``, ``Q97.5``: brms ``fixef``/``fitted`` names).
    ``specs`` may be a numeric predictor: its means at the ``at`` values
    (its training mean if not given). See the module docstring for the
    averaging rule. Cost: see :func:`emmeans_draws`.
    """
    cells, draws, _, _ = emmeans_draws(fit, specs, by, at, re_formula, type)
    return _table(cells, draws, prob)


def _weights(method, levels):
    k = len(levels)
    lab = [str(v) for v in levels]
    if isinstance(method, dict):
        out = {}
        for name, w in method.items():
            w = np.asarray(w, dtype=float)
            if w.shape != (k,):
                raise ValueError(f"contrast {name!r} has {w.size} weights for {k} levels {lab}.")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"contrast {name!r} has non-finite weights {w.tolist()}.")
            out[str(name)] = w
        if not out:
            raise ValueError("method is an empty dict; give name -> weight vector, e.g. {'b - a': [-1, 1]}.")
        return out
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or a dict of weight vectors, got {method!r}.")
    if k < 2:
        raise ValueError(f"contrasts need at least two levels; there is one: {lab}.")
    out = {}
    if method == "trt.vs.ctrl":
        for j in range(1, k):
            w = np.zeros(k)
            w[j], w[0] = 1, -1
            out[f"{lab[j]} - {lab[0]}"] = w
        return out
    for i, j in itertools.combinations(range(k), 2):
        w = np.zeros(k)
        if method == "pairwise":
            w[i], w[j] = 1, -1
            out[f"{lab[i]} - {lab[j]}"] = w
        else:
            w[j], w[i] = 1, -1
            out[f"{lab[j]} - {lab[i]}"] = w
    if method == "revpairwise":
        # emmeans lists revpairwise from the last level down
        out = dict(reversed(list(out.items())))
    return out


def contrasts(fit, specs, method="pairwise", by=None, at=None, re_formula="NA", type="response", prob=0.95):
    """Contrasts between marginal means, like emmeans ``contrast`` / ``pairs``.

    ``method``: ``"pairwise"`` (each level minus each later one, emmeans's
    order), ``"revpairwise"`` (each later level minus each earlier one),
    ``"trt.vs.ctrl"`` (each level minus the first), or a dict name ->
    weights (one per level of ``specs``, in the order of :func:`emmeans`'s
    rows within a ``by`` group). With several ``specs`` the levels are their
    combinations, labelled ``"a:x"``.

    Returns a DataFrame: the ``by`` columns, ``contrast``, Estimate,
    Est.Error, ``Q2.5``/``Q97.5`` and ``Post.Prob`` (posterior probability
    that the contrast is > 0). Differences are on the ``type`` scale
    (probabilities for ``"response"`` with a logit link; emmeans would
    report odds ratios there). Cost: see :func:`emmeans_draws`.
    """
    cells, draws, specs, by = emmeans_draws(fit, specs, by, at, re_formula, type)
    groups = [((), cells.index.to_numpy())] if not by else [
        (key if isinstance(key, tuple) else (key,), idx.to_numpy())
        for key, idx in cells.groupby(by, sort=False).groups.items()]
    labels, cols = [], []
    for key, idx in groups:
        sub = cells.loc[idx, specs]
        levels = [":".join(str(v) for v in row) for row in sub.itertuples(index=False)]
        for name, w in _weights(method, levels).items():
            labels.append(dict(zip(by, key)) | {"contrast": name})
            cols.append(draws[:, idx] @ w)
    return _table(pd.DataFrame(labels), np.column_stack(cols), prob, post_prob=True)
