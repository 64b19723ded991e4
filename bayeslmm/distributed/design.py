"""Sufficient statistics of a Dask DataFrame, partition by partition.

When every grouping factor is marginalized (plan "all"), the Gaussian
log-density and the recovery of the effects read the data only through
cross-products (:class:`~bayeslmm.ops.data.MarginalData`, sufficient mode):
``X^T X``, ``X^T e``, ``e^T e``, ``Z_k^T e``, ``Z_k^T X``, the per-level blocks
``S_k`` and the cross blocks ``Z_k^T Z_l``, where ``e = y - X beta_hat`` is the
residual of the least-squares fit, plus ``sum(y)`` for the lognormal
Jacobian. With precision weights (``y | weights(w) ~`` or a column named by
``weights=``) every cross-product and the least-squares fit carry the row
weights, as :meth:`MarginalData.build` does with ``weights=``; the moments for
the default priors stay unweighted, as for a pandas frame. This module
computes them with Dask, never collecting rows on the driver:

1. pass 1, per partition: the distinct level keys of each factor, the
   column names of each term, ``X^T X``, ``X^T y`` and ``n``; summed, then the
   levels sorted like R's ``factor()`` (as :func:`bayeslmm.model.design.build_design`).
2. pass 2, per partition, with the global levels and ``beta_hat``: the
   residual cross-products above, summed by a tree reduction.

Both passes are ``dask.delayed`` graphs over ``ddf.to_delayed()`` computed
with ``dask.compute``, so they run on whatever scheduler is active (threads,
processes, a ``dask.distributed`` Client). Dask is imported only when a Dask
frame is passed; the rest of the package does not need it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import formulae as fm
import numpy as np
import pandas as pd

from bayeslmm.model.checks import check_levels
from bayeslmm.model.design import (NAMESPACE, formulae_matrices, Moments, ReBlock, common_matrix, evaluate_expression, factor_labels,
                                   formula_variables, level_sort_key)
from bayeslmm.model.families import get_family
from bayeslmm.model.formula import FormulaSpec, parse_formula, unquote
from bayeslmm.ops.data import MarginalData, cross_blocks, dense_layout, level_blocks, level_sums

__all__ = ["DaskDesign", "dask_design", "is_dask_frame", "check_dask_plan"]


def is_dask_frame(data) -> bool:
    """True for a ``dask.dataframe.DataFrame``, without importing Dask when it is not loaded."""
    import sys
    if "dask.dataframe" not in sys.modules:
        return False
    import dask.dataframe as dd
    return isinstance(data, dd.DataFrame)


def check_dask_plan(plan) -> None:
    """A Dask frame supports only plans that marginalize every factor (no rows per gradient)."""
    if not plan.sufficient:
        raise ValueError(
            f"A Dask DataFrame needs marginalize='all' (every factor integrated out, so the likelihood "
            f"uses sufficient statistics); the plan {plan.describe()!r} reads the rows at every gradient."
        )


@dataclass(frozen=True, eq=False)
class DaskDesign:
    """A :class:`~bayeslmm.model.design.Design` summarised by sufficient statistics: no rows.

    Has the attributes the model, priors and recovery read (``spec``,
    ``family``, ``fixed_names``, ``blocks``, ``n``, ``moments()``,
    ``log_jacobian``); ``y``, ``y_original`` and ``X`` are None. The blocks
    carry levels and effect names but zero rows. ``md`` is the sufficient-mode
    :class:`~bayeslmm.ops.data.MarginalData` of the plan "all"; ``data`` the
    Dask frame it came from (for lazy predictions).
    """

    spec: FormulaSpec
    family: object
    fixed_names: tuple
    blocks: tuple
    n: int
    md: MarginalData
    moments_: Moments
    log_jacobian: float
    data: object
    # The weights' column or expression, evaluated per partition (None: unweighted). There is
    # no per-row array on the driver; the weights are inside md's statistics.
    weights_source: str | None = None
    # The formula as evaluated on the partitions, and what turns a frame into the one it
    # reads (global scale()/center() columns added; see _global_transforms).
    eval_spec: object = None
    transform: object = None
    y = None
    y_original = None
    X = None
    n_dropped = 0
    fixed_matrix = None
    # Refused on a Dask frame (dask_design raises), so always absent here.
    offset = None
    trials = None
    # No rows on the driver; see weights_source.
    weights = None
    has_offset = False

    @property
    def has_intercept(self) -> bool:
        return "Intercept" in self.fixed_names

    def moments(self) -> Moments:
        return self.moments_

    def block(self, name: str):
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"No grouping factor {name!r}; factors are {[b.name for b in self.blocks]}.")


def _factors(spec: FormulaSpec) -> dict:
    by: dict[str, list] = {}
    for t in spec.random:
        by.setdefault(t.factor_name, []).append(t)
    return by


def _response(spec, fam, part: pd.DataFrame) -> np.ndarray:
    resp = formulae_matrices(f"{spec.response} ~ 1", part)
    return fam.to_model_scale(np.asarray(resp.response.design_matrix, dtype=float).ravel())


def _term_values(spec, part: pd.DataFrame) -> dict:
    """Effect columns and names of each factor on one partition."""
    out = {}
    for name, terms in _factors(spec).items():
        cols, names = [], []
        for t in terms:
            if t.expr.strip() == "1":
                vals, nm = np.ones((len(part), 1)), ("Intercept",)
            else:
                vals, nm, _ = common_matrix(t.expr, part)
            cols.append(vals)
            names.append(tuple(nm))
        out[name] = (np.column_stack(cols), tuple(names))
    return out


def _part_weights(spec, part: pd.DataFrame, column) -> np.ndarray | None:
    """The precision weights of one partition (None without weights); negative ones are an error.

    A partition may have only zero weights; that not every row does is checked on the totals.
    """
    if spec.weights is not None:
        w = evaluate_expression(spec.weights, part, "weights")
    elif column is None:
        return None
    else:
        if not pd.api.types.is_numeric_dtype(part[column]):
            raise TypeError(f"weights={column!r} must be a numeric column, got dtype {part[column].dtype}.")
        w = part[column].to_numpy(dtype=float)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"weights={column!r} has non-finite values.")
    if np.any(w < 0):
        raise ValueError(f"weights must be non-negative; got min {w.min()!r}.")
    return w


def _pass1(part: pd.DataFrame, spec, fam, weights=None) -> dict:
    part = part.reset_index(drop=True)
    y = _response(spec, fam, part)
    X, fixed_names, _ = common_matrix(spec.fixed, part)
    w = _part_weights(spec, part, weights)
    pos = np.ones(len(part), bool) if w is None else w > 0
    Xw = X if w is None else X * w[:, None]
    keys, terms = {}, {}
    for name, tl in _factors(spec).items():
        factor = tl[0].factor
        k = pd.DataFrame({c: level_sort_key(part[c]) for c in factor})
        k["__label"] = factor_labels(part, factor)
        keys[name] = k.drop_duplicates()
    for name, (_, nm) in _term_values(spec, part).items():
        terms[name] = nm
    # sum_y_lik: the lognormal Jacobian's sum, over the rows in the likelihood (w > 0).
    return dict(n=len(part), XtX=Xw.T @ X, Xty=Xw.T @ y, sum_y=float(y.sum()), sum_X=X.sum(axis=0),
                n_pos=int(pos.sum()), sum_log_w=0.0 if w is None else float(np.log(w[pos]).sum()),
                sum_y_lik=float(y[pos].sum()),
                sum_z={k: v.sum(axis=0) for k, (v, _) in _term_values(spec, part).items()},
                fixed_names=fixed_names, keys=keys, terms=terms)


def _merge1(a: dict, b: dict) -> dict:
    if a["fixed_names"] != b["fixed_names"] or a["terms"] != b["terms"]:
        raise ValueError(
            "The design columns differ between partitions (a categorical predictor whose levels are not all "
            f"present in every partition?): {a['fixed_names']}, {a['terms']} vs {b['fixed_names']}, {b['terms']}. "
            "Give such columns a pandas Categorical dtype with the same categories in every partition.")
    return dict(n=a["n"] + b["n"], XtX=a["XtX"] + b["XtX"], Xty=a["Xty"] + b["Xty"],
                n_pos=a["n_pos"] + b["n_pos"], sum_log_w=a["sum_log_w"] + b["sum_log_w"],
                sum_y_lik=a["sum_y_lik"] + b["sum_y_lik"],
                sum_y=a["sum_y"] + b["sum_y"], sum_X=a["sum_X"] + b["sum_X"],
                sum_z={k: a["sum_z"][k] + b["sum_z"][k] for k in a["sum_z"]}, fixed_names=a["fixed_names"], terms=a["terms"],
                keys={k: pd.concat([a["keys"][k], b["keys"][k]]).drop_duplicates() for k in a["keys"]})


def _pass2(part: pd.DataFrame, spec, fam, levels: dict, names: tuple, beta_hat: np.ndarray, means,
           weights=None) -> dict:
    """Residual cross-products of one partition, factors in ``names`` order."""
    part = part.reset_index(drop=True)
    y = _response(spec, fam, part)
    X, _, _ = common_matrix(spec.fixed, part)
    tv = _term_values(spec, part)
    w = _part_weights(spec, part, weights)
    # Rows scaled by w^{1/2}: the unweighted products below are then the weighted ones.
    sw = None if w is None else np.sqrt(w)
    e = y - X @ beta_hat
    Xs = X
    if sw is not None:
        e, Xs = sw * e, X * sw[:, None]
    # The moments (ss_z below) are of the unweighted columns, as for a pandas frame.
    tz = {k: v if sw is None else v * sw[:, None] for k, (v, _) in tv.items()}
    fac = _factors(spec)
    blocks = []
    for name in names:
        gidx = pd.Index(levels[name]).get_indexer(factor_labels(part, fac[name][0].factor)).astype(np.int64)
        if (gidx < 0).any():
            raise ValueError(f"Partition has levels of {name!r} not seen in the first pass (data changed?).")
        blocks.append(ReBlock.of(gidx, tz[name], len(levels[name]), name=name))
    y_mean, x_mean, z_mean = means
    return dict(
        ss_y=float(((y - y_mean) ** 2).sum()), ss_X=((X - x_mean) ** 2).sum(axis=0),
        ss_z={k: ((tv[k][0] - z_mean[k]) ** 2).sum(axis=0) for k in names},
        ete=float(e @ e), Xte=Xs.T @ e,
        S={b.name: level_blocks(b) for b in blocks},
        Zte={b.name: level_sums(b, e[:, None])[:, 0] for b in blocks},
        ZtX={b.name: level_sums(b, Xs) for b in blocks},
        cross={(a.name, b.name): cross_blocks(a, b) for i, a in enumerate(blocks) for b in blocks[i + 1:]},
    )


def _merge2(a: dict, b: dict) -> dict:
    return {k: (a[k] + b[k]) if not isinstance(a[k], dict) else {j: a[k][j] + b[k][j] for j in a[k]}
            for k in a}


def _tree(items, merge):
    import dask
    items = list(items)
    while len(items) > 1:
        items = [dask.delayed(merge)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _assemble(p2: dict, names: tuple, levels: dict, terms: dict, XtX, beta_hat, n, weighted=None) -> MarginalData:
    """The sufficient-mode MarginalData that ``MarginalData.build`` would give on the collected rows."""
    sizes = {k: len(levels[k]) * len(terms[k]) for k in names}
    order = tuple(sorted(range(len(names)), key=lambda k: -sizes[names[k]]))
    fs = [names[k] for k in order]
    f1, dense = fs[0], fs[1:]
    dims = {k: len(terms[k]) for k in names}
    M = {k: len(levels[k]) for k in names}

    def cross(a, b):
        return p2["cross"][(a, b)] if (a, b) in p2["cross"] else p2["cross"][(b, a)].T

    fields = dict(mode="sufficient", names=names, order=order, levels=tuple(M[k] for k in fs),
                  dims=tuple(dims[k] for k in fs), n_obs=int(n), n_fixed=XtX.shape[0],
                  S1=p2["S"][f1], S2=tuple(p2["S"][k] for k in dense))
    fields.update(dense_layout([dims[k] for k in fs], [M[k] for k in fs], lambda i, j: cross(fs[i], fs[j])))
    fields.update(beta_hat=beta_hat, ete=p2["ete"], Xte=p2["Xte"], XtX=XtX,
                  Zte=np.concatenate([p2["Zte"][k] for k in fs]),
                  ZtX=np.concatenate([p2["ZtX"][k] for k in fs]))
    if weighted is not None:  # (rows with w > 0, sum of their log w)
        fields.update(n_positive=int(weighted[0]), sum_log_w=float(weighted[1]))
    return MarginalData(**fields)


# scale(x), center(x), standardize(x) of one column, quoted or not.
_STATEFUL = re.compile(r"\b(scale|center|standardize)\(\s*(`[^`]*`|(?:[^\W\d]|\.)[\w.]*)\s*\)")


def _global_transforms(spec: FormulaSpec, ddf):
    """Stateful transforms with the frame's global moments: ``(ddf, spec, names_back)``.

    formulae would standardize each partition with its own mean and SD. So
    the global mean and population SD of each transformed column (formulae's
    ``scale`` divides by the population SD) are computed with Dask first, the
    transformed column is added to every partition under an internal name,
    and the formula evaluated on the partitions reads that column;
    ``names_back`` turns the internal names in the design's column names
    back into ``scale(x)``, as formulae writes them on a pandas frame.
    Cost: one extra pass over the transformed columns.
    """
    import dask

    calls = list(dict.fromkeys((m.group(0), m.group(1), unquote(m.group(2)))
                               for m in _STATEFUL.finditer(spec.formula)))
    rest = _STATEFUL.sub("", spec.formula).replace(" ", "")
    left = [t for t in ("scale(", "center(", "standardize(") if t in rest]
    if left:
        raise ValueError(f"Stateful transforms {[t + ')' for t in left]} of an expression in {spec.formula!r} are not "
                         "supported on a Dask DataFrame; on a Dask frame they take one column, like scale(x) "
                         "(add the expression as a column with ddf.assign(...) first).")
    if not calls:
        return ddf, spec, lambda names: names, lambda frame: frame
    missing = [c for _, _, c in calls if c not in ddf.columns]
    if missing:
        raise ValueError(f"Column(s) {missing} used in {spec.formula!r} are not in the Dask DataFrame.")
    cols = list(dict.fromkeys(c for _, _, c in calls))
    stats = dask.compute(*[(ddf[c].mean(), ddf[c].var(ddof=0)) for c in cols])
    moments = {c: (float(m), float(np.sqrt(v))) for c, (m, v) in zip(cols, stats)}
    text, back, how = spec.formula, {}, {}
    for i, (call, fn, col) in enumerate(calls):
        mean, sd = moments[col]
        if fn != "center" and not sd > 0:
            raise ValueError(f"{call} in {spec.formula!r}: column {col!r} is constant over the Dask frame (SD 0).")
        token = f"bayeslmm__{fn}{i}__"  # formulae reads no name that starts with "_"
        how[token] = (col, mean, 1.0 if fn == "center" else sd)
        text = text.replace(call, token)
        back[token] = f"{fn}({col})"

    def transform(frame):
        """``frame`` (Dask or pandas) with the transformed columns, by the training frame's moments."""
        return frame.assign(**{t: (frame[c] - m) / s for t, (c, m, s) in how.items()})

    def names_back(names):
        out = []
        for nm in names:
            for token, shown in back.items():
                nm = nm.replace(token, shown)
            out.append(nm)
        return tuple(out)

    return transform(ddf), parse_formula(text), names_back, transform


def names_back_block(blk: ReBlock, names_back) -> ReBlock:
    """``blk`` with its effect names written as on a pandas frame (see :func:`_global_transforms`)."""
    terms = names_back(blk.terms)
    if terms == blk.terms:
        return blk
    return ReBlock(blk.name, blk.group_index, blk.values, blk.levels, terms, blk.corr_groups)


def dask_design(formula, ddf, family="gaussian", weights=None) -> DaskDesign:
    """Levels, moments and sufficient statistics of ``ddf`` for the plan that marginalizes every factor.

    ``weights``: the name of a column of precision weights (or ``y | weights(w) ~``
    in the formula; not both), as for a pandas frame: residual variance
    ``sigma^2 / w_i``, every cross-product weighted.

    Two passes over the partitions on the active Dask scheduler; the driver
    holds only per-partition statistics, O(p^2 + sum_k M_k d_k (p + d_k) +
    D2 M1 d1) numbers each, never rows. Cost O(N (p^2 + (sum_k d_k)^2)) work,
    spread over the workers. Rows with NaN are an error, as with
    ``na_action="error"``.
    """
    import dask

    spec = formula if isinstance(formula, FormulaSpec) else parse_formula(formula)
    fam = get_family(family)
    if fam.name not in ("gaussian", "lognormal"):
        raise ValueError(f"family={fam.name!r} on a Dask DataFrame: only 'gaussian' and 'lognormal' are fitted "
                         "from sufficient statistics (their effects integrate out exactly); use a pandas "
                         "DataFrame for other families.")
    extras = [e for e in (list(spec.offsets) + [spec.trials]) if e]
    if extras:
        raise ValueError(f"offset() and trials() are not supported on a Dask DataFrame; the formula "
                         f"{spec.formula!r} uses {extras}.")
    if weights is not None:
        if spec.weights is not None:
            raise ValueError("Weights given twice: by weights() in the formula and by the weights= argument; "
                             "give one.")
        if not isinstance(weights, str):
            raise TypeError(f"weights= on a Dask DataFrame must be a column name, got {type(weights).__name__}; "
                            "add the weights to the frame as a column.")
        if weights not in ddf.columns:
            raise ValueError(f"weights={weights!r} is not a column of the Dask DataFrame.")
    if not spec.random:
        raise ValueError(f"The formula {spec.formula!r} has no group-level terms; nothing to marginalize.")
    shown = spec
    ddf, spec, names_back, transform = _global_transforms(spec, ddf)
    missing = [v for v in formula_variables(spec) if v not in ddf.columns]
    if missing:
        raise ValueError(f"Column(s) {missing} used in {spec.formula!r} are not in the Dask DataFrame.")
    parts = ddf.to_delayed()
    p1 = dask.compute(_tree([dask.delayed(_pass1)(p, spec, fam, weights) for p in parts], _merge1))[0]
    weighted = spec.weights is not None or weights is not None
    if weighted and p1["n_pos"] == 0:
        raise ValueError("weights are all zero: no row enters the likelihood.")

    levels = {}
    for name, tl in _factors(spec).items():
        keys = p1["keys"][name].sort_values(list(tl[0].factor), kind="stable")
        levels[name] = tuple(keys["__label"].drop_duplicates())
        check_levels(name, len(levels[name]))
    term_groups = p1["terms"]  # factor -> per-term effect names
    terms = {k: tuple(n for t in v for n in t) for k, v in term_groups.items()}
    names = tuple(sorted(levels, key=lambda k: -len(levels[k]) * len(terms[k])))
    XtX = p1["XtX"]
    beta_hat = np.linalg.lstsq(XtX, p1["Xty"], rcond=None)[0]
    n = int(p1["n"])
    means = (p1["sum_y"] / n, p1["sum_X"] / n, {k: v / n for k, v in p1["sum_z"].items()})

    p2 = dask.compute(_tree([dask.delayed(_pass2)(p, spec, fam, levels, names, beta_hat, means, weights)
                             for p in parts], _merge2))[0]
    md = _assemble(p2, names, levels, terms, XtX, beta_hat, n,
                   (p1["n_pos"], p1["sum_log_w"]) if weighted else None)
    moments = Moments(float(means[0]), float(np.sqrt(p2["ss_y"] / n)), means[1], np.sqrt(p2["ss_X"] / n),
                      {k: np.sqrt(p2["ss_z"][k] / n) for k in names})
    fac = _factors(spec)
    blocks = []
    for k in names:
        groups, start = [], 0
        for t, nm in zip(fac[k], term_groups[k]):
            idx = tuple(range(start, start + len(nm)))
            groups.extend([idx] if t.correlated else [(i,) for i in idx])
            start += len(nm)
        blocks.append(ReBlock(k, np.zeros(0, np.int64), np.zeros((0, len(terms[k]))), levels[k], terms[k],
                              tuple(groups)))
    jac = -p1["sum_y_lik"] if fam.log_scale else 0.0
    source = spec.weights if spec.weights is not None else weights
    return DaskDesign(shown, fam, names_back(p1["fixed_names"]), tuple(names_back_block(b, names_back) for b in blocks),
                      n, md, moments, jac, ddf, source, spec, transform)
