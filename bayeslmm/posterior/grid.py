"""Reference grids and predictions on them, shared by conditional effects and marginal means.

A reference grid is a DataFrame of the model's predictor variables (not the
response): the training data's variables, each held at a value chosen by
rule, with some of them varied. The rules are brms's (``conditional_effects``)
and emmeans's (``ref_grid``):

- a numeric variable is held at its training mean;
- a categorical variable (non-numeric, boolean, or wrapped in ``C()`` in the
  formula) is held at its reference (first) level, or, for emmeans, crossed
  over all its levels;
- the number of trials of a binomial model is 1 (brms), so the expected
  response is a probability;
- offsets not given are held at their training mean on the link scale.

Predictions on a grid use :mod:`bayeslmm.posterior.predict` (the training
encoding of every variable, the exact or sampled group-level effects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayeslmm.model.design import formula_variables
from bayeslmm.model.formula import FormulaSpec

from .predict import _included_effects, _inverse_link, draws_for_rows, offset_of, prediction_rows

__all__ = ["Variable", "model_variables", "grid_draws", "new_level_label", "METHODS"]

METHODS = ("posterior_epred", "posterior_predict", "posterior_linpred")
new_level_label = "__new_level__"
_IDENT = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class Variable:
    """One predictor variable of the training data: its kind, mean, SD, range, or levels."""

    name: str
    categorical: bool
    levels: tuple = ()
    mean: float = float("nan")
    sd: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")

    @property
    def reference(self):
        """The value a grid holds the variable at: the first level, or the mean."""
        return self.levels[0] if self.categorical else self.mean


def _wrapped_in_c(name: str, fixed: str) -> bool:
    return re.search(r"\bC\(\s*" + re.escape(name) + r"\b", fixed) is not None


def _variable(name: str, col: pd.Series, fixed: str) -> Variable:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return Variable(name, True, tuple(col.cat.categories))
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col) or _wrapped_in_c(name, fixed):
        # formulae orders the levels of a non-categorical column by sorting them
        return Variable(name, True, tuple(sorted(pd.unique(col))))
    v = col.to_numpy(dtype=float)
    return Variable(name, False, (), float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0,
                    float(v.min()), float(v.max()))


def training_frame(design) -> pd.DataFrame:
    """The training columns of the fixed part (an empty frame for a model without one)."""
    fm = design.fixed_matrix
    frame = getattr(fm, "data", None)
    return frame if frame is not None else pd.DataFrame(index=range(design.n))


def model_variables(design) -> dict:
    """name -> :class:`Variable` for every predictor variable of the fixed part, in formula order."""
    frame = training_frame(design)
    return {c: _variable(c, frame[c], design.spec.fixed) for c in frame.columns if c != design.spec.response}


def term_variables(design) -> list[tuple]:
    """The variables of each fixed term (Intercept excluded), as formulae orders the terms: [("x",), ("x", "f")]."""
    fm = design.fixed_matrix
    if fm is None:
        return []
    cols = set(training_frame(design).columns)
    out = []
    for name in fm.terms:
        if name == "Intercept":
            continue
        vs = tuple(dict.fromkeys(m.group() for m in _IDENT.finditer(name) if m.group() in cols))
        if vs and vs not in out:
            out.append(vs)
    return out


def _group_columns(design, re_formula) -> list[str]:
    keep = _included_effects(design, re_formula)
    cols = []
    for t in design.spec.random:
        if keep.get(t.factor_name):
            cols += [c for c in t.factor if c not in cols]
    return cols


def complete_grid(design, grid: pd.DataFrame, re_formula) -> pd.DataFrame:
    """``grid`` with every variable a prediction needs: defaults for the fixed part's, a new level for groups.

    Grouping columns of the factors that ``re_formula`` keeps, when the grid
    lacks them, get one new level shared by all rows (so the prediction
    includes a group effect drawn from the fitted group-level distribution,
    as brms does for the ``NA`` groups of its conditions). Raises
    ``ValueError`` for a variable of a kept random term that the grid lacks
    and that has no training default.
    """
    grid = grid.reset_index(drop=True).copy()
    for name, var in model_variables(design).items():
        if name not in grid.columns:
            grid[name] = [var.reference] * len(grid)
    for c in _group_columns(design, re_formula):
        if c not in grid.columns:
            grid[c] = new_level_label
    keep = _included_effects(design, re_formula)
    needed = []
    for t in design.spec.random:
        if keep.get(t.factor_name):
            needed += formula_variables(FormulaSpec(t.expr, "", t.expr, ()))
    missing = sorted({c for c in needed if c not in grid.columns})
    if missing:
        raise ValueError(f"The group-level terms kept by re_formula={re_formula!r} use variable(s) {missing}, which "
                         "are not in the fixed part, so they have no default value: give them in conditions, or "
                         "use re_formula='NA'.")
    return grid


def _offset_trials(design, grid):
    spec = design.spec
    offset = 0.0
    if spec.offsets:
        probe = FormulaSpec(spec.formula, "1", " + ".join(spec.offsets), ())
        if all(c in grid.columns for c in formula_variables(probe)):
            offset = offset_of(spec, grid)
        elif design.offset is not None:
            offset = float(np.mean(design.offset))
    trials = None
    if design.family.trials:
        trials = np.ones(len(grid))
        if spec.trials is not None:
            probe = FormulaSpec(spec.formula, "1", spec.trials, ())
            names = formula_variables(probe)
            if names and all(c in grid.columns for c in names):
                from bayeslmm.model.design import evaluate_expression

                trials = evaluate_expression(spec.trials, grid, "number of trials")
    return offset, trials


def grid_draws(fit, grid: pd.DataFrame, re_formula="NA", method="posterior_epred", random_seed=None) -> np.ndarray:
    """Posterior draws (S x rows) of ``method`` on a complete grid (see :func:`complete_grid`).

    ``method``: ``"posterior_epred"`` (expected response),
    ``"posterior_predict"`` (new responses) or ``"posterior_linpred"``
    (linear predictor), as brms. Rows with the new-level label get one
    effect per draw from N(0, Sigma_g). Cost: that of
    :func:`bayeslmm.posterior.predict.predict` on ``len(grid)`` rows.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    rows = prediction_rows(fit.design, grid, re_formula, allow_new_levels=True)
    offset, trials = _offset_trials(fit.design, grid)
    kind = {"posterior_linpred": "link", "posterior_epred": "mean", "posterior_predict": "response"}[method]
    return draws_for_rows(fit, rows, offset, trials, kind, np.random.default_rng(random_seed))


def link_to_response(family, eta):
    """emmeans' back-transform of link-scale values: the inverse link, exp() for lognormal (its median)."""
    if family.log_scale:
        return np.exp(eta)
    return _inverse_link(family, eta)


def response_label(design) -> str:
    """The response as the user wrote it (``log(rt)``; the successes for ``cbind(s, f)`` / ``s | trials(n)``)."""
    return design.spec.response
