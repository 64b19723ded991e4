"""Validators run before any model is built: each checks one thing and names the problem.

PyTensor's runtime assertions vanish on the JAX path, so everything a user can
get wrong is checked here, in NumPy/pandas, before compilation.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

__all__ = [
    "check_data_frame",
    "check_columns_exist",
    "check_finite_rows",
    "check_numeric_response",
    "check_levels",
    "check_full_rank",
    "check_positive_int",
    "check_choice",
    "check_bool",
    "check_probability",
    "check_random_seed",
    "check_unique_columns",
    "check_mixed_types",
    "check_constant_response",
    "check_levels_vs_rows",
    "check_fixed_factors",
]


def check_data_frame(data) -> None:
    """Data must be a non-empty pandas DataFrame."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("data is empty: the DataFrame has no rows.")


def check_columns_exist(names, data: pd.DataFrame, formula: str) -> None:
    """Every variable the formula uses must be a column of ``data``."""
    missing = [n for n in names if n not in data.columns]
    if missing:
        cols = ", ".join(map(str, data.columns[:20])) + (" ..." if len(data.columns) > 20 else "")
        odd = [c for c in data.columns if isinstance(c, str) and not (c.replace(".", "_").isidentifier())]
        hint = (f" Names that are not identifiers must be quoted with backticks, like `{odd[0]}`." if odd else "")
        raise ValueError(
            f"Column(s) {', '.join(repr(m) for m in missing)} used in formula {formula!r} "
            f"not found in data. Available columns: {cols}.{hint}"
        )


def _bad_mask(col: pd.Series) -> np.ndarray:
    bad = col.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        bad |= ~np.isfinite(col.to_numpy(dtype=float, na_value=np.nan))
    return bad


def check_finite_rows(data: pd.DataFrame, columns, na_action: str, labels=None) -> tuple[pd.DataFrame, int]:
    """Find rows with NaN/inf in the used columns; raise, or drop them.

    ``labels`` maps a column the package added (an array argument carried
    as a column) to the name the user knows it by, for the message.
    Returns the (possibly reduced) data and the number of rows dropped.
    """
    labels = labels or {}
    check_choice(na_action, ("error", "drop"), "na_action")
    bad = np.zeros(len(data), dtype=bool)
    per_col = {}
    for c in columns:
        m = _bad_mask(data[c])
        if m.any():
            per_col[labels.get(c, c)] = int(m.sum())
        bad |= m
    n_bad = int(bad.sum())
    if n_bad == 0:
        return data, 0
    detail = ", ".join(f"{c!r}: {n}" for c, n in per_col.items())
    if na_action == "error":
        raise ValueError(
            f"{n_bad} of {len(data)} rows have NaN or infinite values in the model's columns ({detail}). "
            "Remove them, or pass na_action='drop' to drop them."
        )
    kept = data.loc[~bad]
    if len(kept) == 0:
        raise ValueError(f"All {len(data)} rows have NaN or infinite values ({detail}); nothing left to fit.")
    return kept, n_bad


def check_numeric_response(values, name: str) -> np.ndarray:
    """The response must be numeric and finite after transformation."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"The response {name!r} must be numeric, got dtype {arr.dtype}.")
    arr = arr.astype(float).reshape(-1)
    n_bad = int((~np.isfinite(arr)).sum())
    if n_bad:
        raise ValueError(
            f"The response {name!r} has {n_bad} non-finite values after transformation "
            "(for example log of a value <= 0)."
        )
    return arr


def check_levels(name: str, n_levels: int) -> None:
    """A grouping factor needs at least two levels to define a variance."""
    if n_levels < 2:
        raise ValueError(
            f"Grouping factor {name!r} has {n_levels} level(s); a group-level effect needs at least 2 levels."
        )


def check_full_rank(X: np.ndarray, names) -> None:
    """Raise if the fixed-effects matrix is rank deficient, naming the aliased columns.

    Uses an unpivoted QR (cost O(N p^2)): column j is aliased when |R_jj| is
    negligible against its norm, i.e. it lies in the span of the columns
    before it. So, as in lme4, the later of two collinear columns is named.
    """
    if X.shape[1] == 0:
        return
    R = np.linalg.qr(X, mode="r")
    norms = np.linalg.norm(X, axis=0)
    aliased = [names[j] for j in range(X.shape[1]) if abs(R[j, j]) <= 1e-9 * max(norms[j], 1e-300)]
    if aliased:
        raise ValueError(
            f"The fixed-effects design matrix is rank deficient ({len(aliased)} of {X.shape[1]} columns aliased): "
            f"column(s) {', '.join(repr(a) for a in aliased)} are linear combinations of the columns before them. "
            "Drop or recode them."
        )


def check_positive_int(value, name: str) -> int:
    """``draws``, ``tune``, ``chains``: positive integers (tune may be 0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}.")
    if value < (0 if name == "tune" else 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_choice(value, choices, name: str) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; choose one of: {', '.join(map(repr, choices))}.")


def check_bool(value, name: str) -> bool:
    """A flag must be a real bool (``"False"`` is truthy, so strings are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
    return bool(value)


def check_probability(value, name: str) -> float:
    """A number strictly between 0 and 1 (``target_accept``, ``prob``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r} ({type(value).__name__}).")
    if not 0 < float(value) < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}.")
    return float(value)


def check_random_seed(value, name: str = "random_seed"):
    """None, a non-negative integer, or a ``numpy.random.Generator``/``SeedSequence``."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None or a non-negative integer, got {value!r} ({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(value)


def check_unique_columns(data: pd.DataFrame) -> None:
    """Duplicate column names make ``data[name]`` a frame: refuse them, naming them."""
    dup = data.columns[data.columns.duplicated()].unique()
    if len(dup):
        raise ValueError(f"data has duplicate column names: {', '.join(map(repr, dup))}; rename them.")


def check_mixed_types(data: pd.DataFrame, columns) -> None:
    """An object column mixing types (``1`` and ``"1"``) gives levels that print the same but differ."""
    for c in columns:
        col = data[c]
        if pd.api.types.is_complex_dtype(col):
            raise TypeError(f"Column {c!r} holds complex numbers; the model's columns must be real.")
        if col.dtype != object:
            continue
        vals = col.dropna()
        kinds = {}
        for v in vals.unique() if len(vals) else ():
            kinds.setdefault(type(v).__name__, v)
        if len(kinds) > 1:
            ex = ", ".join(f"{v!r} ({k})" for k, v in kinds.items())
            raise TypeError(f"Column {c!r} mixes value types: {ex}. Convert it to one type, "
                            f"e.g. data[{c!r}].astype(str).")
        strs = {str(v) for v in vals.unique()}
        if len(strs) < vals.nunique():
            raise TypeError(f"Column {c!r} has distinct values that print the same; convert it to one type.")


def check_constant_response(y: np.ndarray, name: str) -> None:
    """A response with no variation has no residual scale to learn (and default priors scale by its SD)."""
    if y.size > 1 and np.ptp(y) == 0:
        raise ValueError(f"The response {name!r} is constant (every value is {float(y[0])!r}); nothing to model.")
    if y.size == 1:
        raise ValueError("data has one row; a mixed model needs several observations.")


def check_levels_vs_rows(name: str, n_levels: int, n: int) -> None:
    """lme4's check for gaussian models: a factor with one level per row is confounded with the residual."""
    if n_levels >= n:
        raise ValueError(
            f"number of levels of each grouping factor must be < number of observations "
            f"(problems: {name}; {n_levels} levels for {n} observations)."
        )


def check_magnitude(x, name: str) -> None:
    """Values beyond 1e150 overflow when squared; non-zero values all below 1e-150 underflow (their SD is 0)."""
    x = np.abs(np.asarray(x, dtype=float))
    if not x.size or not np.isfinite(x).all():
        return
    top = x.max()
    if top > 1e150:
        raise ValueError(f"Column {name!r} has magnitude {top:.3g}; rescale it "
                         "(values beyond 1e150 overflow when squared).")
    if 0 < top < 1e-150:
        raise ValueError(f"Column {name!r} has magnitude {top:.3g}; rescale it "
                         "(values below 1e-150 underflow when squared, so their spread reads as 0).")


def check_fixed_factors(data: pd.DataFrame, columns) -> None:
    """A categorical predictor with one level: R's "contrasts can be applied only to factors with 2 or more levels"."""
    for c in columns:
        col = data[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            check_magnitude(col.to_numpy(dtype=float), c)
            continue
        if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
            raise TypeError(f"Column {c!r} is a datetime column; convert it to a number "
                            "(e.g. days since a start date) or to a category.")
        n = col.nunique(dropna=True)
        if n < 2:
            raise ValueError(f"contrasts can be applied only to factors with 2 or more levels: column {c!r} "
                             f"has {n} level(s).")
