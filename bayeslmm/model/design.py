"""Design: response, fixed-effects matrix and one :class:`ReBlock` per grouping factor.

Random effects are never stored as a dense N x (levels * d) Z. Like
MixedModels.jl's ``ReMat``, a block holds the group index of each row (N ints)
and the N x d covariates of its terms; that is all both the unmarginalized
model (gather) and the marginalized one (scatter-add) need. Memory is
O(N d) per factor instead of O(N M d).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import formulae as fm
import numpy as np
import pandas as pd

from .checks import (
    check_columns_exist,
    check_data_frame,
    check_finite_rows,
    check_full_rank,
    check_constant_response,
    check_magnitude,
    check_fixed_factors,
    check_levels,
    check_levels_vs_rows,
    check_mixed_types,
    check_numeric_response,
    check_unique_columns,
)
from .families import Family, get_family
from .formula import QUOTED, FormulaSpec, parse_formula, unquote

__all__ = ["ReBlock", "Design", "build_design", "NAMESPACE", "factor_labels", "formula_variables",
           "common_matrix"]

# Functions R users write inline. formulae's own stateful center/scale take
# precedence where it defines them (they remember the training mean for new data).
NAMESPACE = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "log1p": np.log1p, "abs": np.abs,
             "log10": np.log10, "log2": np.log2, "np": np}
_RESERVED = set(NAMESPACE) | {"C", "I", "Sum", "Treatment", "S", "T", "levels", "True", "False",
                              "center", "scale", "standardize", "pow"}
# Unquoted names as formulae reads them: identifiers in any script, with dots.
_IDENT = re.compile(r"(?:[^\W\d]|\.)[\w.]*")
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")


@dataclass(frozen=True, eq=False)
class ReBlock:
    """The group-level effects of one grouping factor: the one type for "a grouping factor".

    Row ``n`` of the factor's ``Z`` holds ``values[n]`` in the ``d`` columns of
    level ``group_index[n]``; ``Z`` itself is never built.

    Attributes
    ----------
    name : str
        The factor as written in the formula ("subj", "a:b").
    group_index : ndarray of int64, shape (N,)
        Level of each row, in ``0 .. n_levels-1``.
    values : ndarray of float64, shape (N, d)
        Covariates of each term for each row (1 for an intercept).
    levels : tuple of str
        Level labels, in the order of ``group_index``; levels without rows are allowed.
    terms : tuple of str
        Effect names, e.g. ("Intercept", "c_int").
    corr_groups : tuple of tuple of int
        Effects correlated with each other; a singleton is uncorrelated
        (terms from ``||``, or separate bar terms on the same factor).
    """

    name: str
    group_index: np.ndarray
    values: np.ndarray
    levels: tuple
    terms: tuple
    corr_groups: tuple

    def __post_init__(self):
        g = np.asarray(self.group_index)
        z = np.asarray(self.values, dtype=np.float64)
        if g.ndim != 1 or not np.issubdtype(g.dtype, np.integer):
            raise ValueError(f"factor {self.name!r}: group_index must be a 1-D integer array")
        if z.ndim != 2 or z.shape[0] != g.shape[0] or z.shape[1] < 1:
            raise ValueError(f"factor {self.name!r}: values must have shape (N, d) with N = {g.shape[0]}, "
                             f"got {z.shape}")
        m = len(self.levels)
        if m < 1 or (g.size and (g.min() < 0 or g.max() >= m)):
            raise ValueError(f"factor {self.name!r}: group_index must lie in [0, {m})")
        if not np.all(np.isfinite(z)):
            raise ValueError(f"factor {self.name!r}: values must be finite")
        if len(self.terms) != z.shape[1]:
            raise ValueError(f"factor {self.name!r}: {len(self.terms)} term names for {z.shape[1]} columns")
        object.__setattr__(self, "group_index", g.astype(np.int64, copy=False))
        object.__setattr__(self, "values", z)
        object.__setattr__(self, "levels", tuple(self.levels))

    @classmethod
    def of(cls, group_index, values, n_levels, name="g", correlated=False):
        """A block from arrays alone: levels "0".."M-1", terms "x0".., correlated or not."""
        values = np.asarray(values, dtype=np.float64)
        d = values.shape[1] if values.ndim == 2 else 0
        groups = (tuple(range(d)),) if correlated else tuple((i,) for i in range(d))
        return cls(name, np.asarray(group_index), values, tuple(str(i) for i in range(int(n_levels))),
                   tuple(f"x{i}" for i in range(d)), groups)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def dim(self) -> int:
        return self.values.shape[1]

    @property
    def size(self) -> int:
        """Number of effects ``M d``."""
        return self.n_levels * self.dim

    @property
    def correlated(self) -> bool:
        return any(len(g) > 1 for g in self.corr_groups)


@dataclass(frozen=True)
class Moments:
    """Summary moments of a design: ``y_mean``, ``y_sd``, ``x_mean`` and ``x_sd`` (per column of X),
    ``z_sd`` (factor name -> SD of each effect column)."""

    y_mean: float
    y_sd: float
    x_mean: np.ndarray
    x_sd: np.ndarray
    z_sd: dict


@dataclass(frozen=True, eq=False)
class Design:
    """Everything the model needs from the data, computed once."""

    spec: FormulaSpec
    family: Family
    y: np.ndarray  # on the model (Gaussian) scale
    y_original: np.ndarray
    X: np.ndarray
    fixed_names: tuple
    blocks: tuple  # ReBlock, largest (levels * d) first
    n_dropped: int = 0
    fixed_matrix: object = field(default=None, repr=False)  # formulae CommonEffectsMatrix, for new data
    # Sum of the formula's offset() terms on the linear-predictor scale (zeros without any).
    # For Gaussian families it is already subtracted from ``y``, which keeps the exact marginal.
    offset: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    trials: np.ndarray | None = field(default=None, repr=False)

    @property
    def has_offset(self) -> bool:
        return self.offset is not None and bool(np.any(self.offset != 0))

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self.fixed_names

    @property
    def log_jacobian(self) -> float:
        """log |d model scale / d y| summed over the rows that enter the likelihood (0 for gaussian).

        A row of precision weight 0 has infinite variance and is not part of the likelihood.
        """
        if self.weights is not None and self.family.gaussian:
            return self.family.log_jacobian(self.y_original[self.weights > 0])
        return self.family.log_jacobian(self.y_original)

    def moments(self) -> "Moments":
        """Means and SDs (ddof 0) that the data-scaled default priors and brms centring read; O(N (p + sum_k d_k))."""
        return Moments(float(np.mean(self.y)), float(np.std(self.y)), self.X.mean(axis=0), self.X.std(axis=0),
                       {b.name: b.values.std(axis=0) for b in self.blocks})

    def block(self, name: str) -> ReBlock:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"No grouping factor {name!r}; factors are {[b.name for b in self.blocks]}.")


def nested_in(inner, outer) -> bool:
    """Whether every level of factor ``inner`` falls within one level of ``outer`` (and ``outer`` has fewer levels)."""
    if outer.n_levels >= inner.n_levels:
        return False
    pairs = np.unique(np.stack([inner.group_index, outer.group_index]), axis=1)
    return pairs.shape[1] == inner.n_levels


def formula_variables(spec: FormulaSpec) -> list[str]:
    """Column names a formula refers to (everything not a function or keyword)."""
    names: dict[str, None] = {}
    texts = [spec.response, spec.fixed] + [t.expr for t in spec.random] + list(spec.offsets)
    texts += [e for e in (spec.trials, spec.weights) if e is not None]
    for text in texts:
        text = _STRING.sub("", text)
        for q in QUOTED.findall(text):
            names.setdefault(q)
        text = QUOTED.sub(" ", text)
        for m in _IDENT.finditer(text):
            tok, end = m.group(), m.end()
            rest = text[end:].lstrip()
            if tok in _RESERVED or rest.startswith("(") or rest.startswith("=") or tok.startswith("np."):
                continue
            if re.fullmatch(r"\.?\d.*", tok):
                continue
            names.setdefault(tok)
    for t in spec.random:
        for c in t.factor:
            names.setdefault(c)
    return list(names)


def _columns_in(text: str, data: pd.DataFrame) -> list[str]:
    """The columns of ``data`` named in one formula part."""
    text = _STRING.sub("", text)
    found = QUOTED.findall(text) + [m.group() for m in _IDENT.finditer(QUOTED.sub(" ", text))]
    return list(dict.fromkeys(c for c in found if c in data.columns))


def _labels(col: pd.Series) -> pd.Series:
    """Level labels as strings; integer-valued floats (1.0) print as integers (1)."""
    if pd.api.types.is_float_dtype(col):
        vals = col.to_numpy()
        if np.all(vals == np.round(vals)):
            return pd.Series(vals.astype(np.int64), index=col.index).astype(str)
    return col.astype(str)


def factor_labels(data: pd.DataFrame, factor: tuple) -> np.ndarray:
    """The level label of each row for (the interaction of) the ``factor`` columns: "a", or "a:b" for two."""
    labels = _labels(data[factor[0]])
    for c in factor[1:]:
        labels = labels + ":" + _labels(data[c])
    return labels.to_numpy()


def level_sort_key(col: pd.Series):
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes
    if pd.api.types.is_numeric_dtype(col):
        return col
    return col.astype(str)


def _group_index(data: pd.DataFrame, factor: tuple) -> tuple[np.ndarray, tuple]:
    """Group index and labels of (the interaction of) factor columns, sorted like R's factor()."""
    keys = pd.DataFrame({c: level_sort_key(data[c]) for c in factor})
    labels = factor_labels(data, factor)
    keys["__label"] = labels
    order = keys.drop_duplicates().sort_values(list(factor), kind="stable")
    levels = tuple(order["__label"])
    index = pd.Index(levels).get_indexer(labels)
    return index.astype(np.int64), levels


def formulae_matrices(expr: str, data: pd.DataFrame):
    """formulae's design matrices of ``expr`` on ``data``, NA rows an error.

    NumPy's floating-point warnings (``log`` of a negative value) are silenced
    for the evaluation only: every caller checks the result for non-finite
    values and raises an error naming the term, which says more than the
    RuntimeWarning would.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return fm.design_matrices(expr, data, na_action="error", extra_namespace=NAMESPACE)


def common_matrix(expr: str, data: pd.DataFrame):
    """formulae's common design matrix for a right-hand side; returns (array, names, matrix object)."""
    dm = formulae_matrices(expr, data)
    common = dm.common
    if common is None:
        return np.zeros((len(data), 0)), (), None
    names = tuple(lbl for term in common.terms.values() for lbl in term.labels)
    return np.asarray(common.design_matrix, dtype=float), names, common


def _random_blocks(spec: FormulaSpec, data: pd.DataFrame) -> list[ReBlock]:
    by_factor: dict[str, list] = {}
    for t in spec.random:
        by_factor.setdefault(t.factor_name, []).append(t)
    blocks = []
    for name, terms in by_factor.items():
        gidx, levels = _group_index(data, terms[0].factor)
        check_levels(name, len(levels))
        cols, tnames, groups = [], [], []
        for t in terms:
            if t.expr.strip() == "1":
                vals, names = np.ones((len(data), 1)), ("Intercept",)
            else:
                vals, names, _ = common_matrix(t.expr, data)
            if vals.shape[1] == 0:
                raise ValueError(f"Random term ({t.expr} | {name}) has no columns.")
            dup = set(names) & set(tnames)
            if dup:
                raise ValueError(
                    f"Grouping factor {name!r} gets effect(s) {sorted(dup)} from more than one random term; "
                    "each effect may appear once per factor."
                )
            start = len(tnames)
            idx = tuple(range(start, start + len(names)))
            groups.extend([idx] if t.correlated else [(i,) for i in idx])
            cols.append(vals)
            tnames.extend(names)
        blocks.append(ReBlock(name, gidx, np.column_stack(cols), levels, tuple(tnames), tuple(groups)))
    # Largest block first: its part of A is block diagonal, the rest is the dense Schur part.
    return sorted(blocks, key=lambda b: -b.size)


def evaluate_expression(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    """One numeric value per row of ``expr`` (a column or an expression of columns), finite."""
    try:
        dm = formulae_matrices(f"I({expr}) ~ 1", data)
        vals = np.asarray(dm.response.design_matrix, dtype=float).reshape(len(data), -1)
    except Exception as err:
        raise ValueError(f"Could not evaluate the {what} {expr!r}: {err}") from err
    if vals.shape[1] != 1:
        raise ValueError(f"The {what} {expr!r} must give one number per row, got {vals.shape[1]} columns.")
    vals = vals[:, 0]
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"The {what} {expr!r} has {int(np.sum(~np.isfinite(vals)))} non-finite values.")
    return vals


def offset_of(spec: FormulaSpec, data: pd.DataFrame) -> np.ndarray:
    """Sum of the formula's ``offset()`` terms on ``data``; zeros without any."""
    out = np.zeros(len(data))
    for e in spec.offsets:
        out = out + evaluate_expression(e, data, "offset")
    return out


def _weights(spec, data, weights) -> np.ndarray | None:
    if weights is not None and spec.weights is not None:
        raise ValueError("Weights given twice: by weights() in the formula and by the weights= argument; give one.")
    if spec.weights is not None:
        w = evaluate_expression(spec.weights, data, "weights")
    elif weights is None:
        return None
    else:  # a column name: build_design carries an array of weights as a column
        if weights not in data.columns:
            raise ValueError(f"weights={weights!r} is not a column of data.")
        if not pd.api.types.is_numeric_dtype(data[weights]):
            raise TypeError(f"weights={weights!r} must be a numeric column, got dtype {data[weights].dtype}.")
        w = data[weights].to_numpy(dtype=float)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"weights={weights!r} has non-finite values.")
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"weights must be non-negative and not all zero; got min {w.min()!r}.")
    return w


def build_design(formula, data: pd.DataFrame, family="gaussian", na_action: str = "error", link=None,
                 weights=None) -> Design:
    """Validate ``data`` against ``formula`` and build the :class:`Design`.

    Cost: O(N (p + sum_k d_k)) time and memory, plus a pivoted QR of X
    (O(N p^2)) for the rank check; no dense random-effects matrix.
    The caller's DataFrame is never modified.
    """
    spec = formula if isinstance(formula, FormulaSpec) else parse_formula(formula)
    fam = get_family(family, link)
    if weights is not None and not isinstance(weights, str):
        # Rows dropped for NaN must drop their weight too: carry it as a column.
        try:
            w_arr = np.asarray(weights, dtype=float).reshape(-1)
        except (TypeError, ValueError) as err:
            raise TypeError(f"weights must be a column name or one number per row; got a "
                            f"{type(weights).__name__} that is not numeric ({err}).") from None
        if w_arr.shape[0] != len(data):
            raise ValueError(f"weights has {w_arr.shape[0]} values for {len(data)} rows of data.")
        data = data.assign(**{"__weights__": w_arr})
        weights = "__weights__"
    check_data_frame(data)
    variables = formula_variables(spec)
    if isinstance(weights, str) and weights in data.columns and weights not in variables:
        variables.append(weights)
    check_unique_columns(data)
    check_columns_exist(variables, data, spec.formula)
    check_mixed_types(data, variables)
    data, n_dropped = check_finite_rows(data, variables, na_action, labels={"__weights__": "weights"})
    if n_dropped:
        warnings.warn(f"Dropped {n_dropped} rows with NaN or infinite values (na_action='drop').", stacklevel=3)
    data = data.reset_index(drop=True)

    response_col = unquote(spec.response)
    if response_col in data.columns and not pd.api.types.is_numeric_dtype(data[response_col]):
        raise TypeError(f"The response {response_col!r} must be numeric, got dtype {data[response_col].dtype}.")
    try:
        resp = formulae_matrices(f"{spec.response} ~ 1", data)
    except Exception as err:  # formulae's errors do not say which part of the formula failed
        raise ValueError(f"Could not evaluate the response {spec.response!r}: {err}") from err
    y_orig = check_numeric_response(resp.response.design_matrix, spec.response)
    trials = evaluate_expression(spec.trials, data, "number of trials") if spec.trials is not None else None
    if spec.failures is not None:
        f = evaluate_expression(spec.failures, data, "failures")
        if np.any(f < 0):
            i = int(np.argmax(f < 0))
            raise ValueError(f"cbind({spec.response}, {spec.failures}): {int(np.sum(f < 0))} row(s) have a negative "
                             f"number of failures, e.g. row {i}: {float(f[i])!r}.")
    fam.check_response(y_orig, spec.response, trials)
    if fam.gaussian:
        check_constant_response(y_orig, spec.response)
    check_fixed_factors(data, [c for c in _columns_in(spec.fixed, data) if c != response_col])
    w = _weights(spec, data, weights)
    offset = offset_of(spec, data)
    y = fam.to_model_scale(y_orig)
    if fam.gaussian:
        check_magnitude(y, spec.response)
        y = y - offset

    try:
        X, fixed_names, fixed_matrix = common_matrix(spec.fixed, data)
    except Exception as err:
        raise ValueError(f"Could not build the fixed effects {spec.fixed!r}: {err}") from err
    check_full_rank(X, fixed_names)
    try:
        blocks = _random_blocks(spec, data)
        if fam.gaussian:
            for b in blocks:
                check_levels_vs_rows(b.name, b.n_levels, len(data))
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"Could not build the random terms of {spec.formula!r}: {err}") from err
    return Design(spec, fam, y, y_orig, X, fixed_names, tuple(blocks), n_dropped, fixed_matrix, offset, w, trials)
