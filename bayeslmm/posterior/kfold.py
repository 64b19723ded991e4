"""K-fold cross-validation by refitting (brms ``kfold``), and the comparison of LOO/k-fold results.

Fold k is fitted on every row outside it; each held-out row i then gets

    elpd_i = log( (1/S) sum_s p(y_i | theta_s^(-k), r_s^(-k)) )

from that fold's S posterior draws (the same conditional log-likelihood as
:mod:`bayeslmm.posterior.loglik`; levels of a grouping factor that the fold
never saw get effects drawn from the fitted group-level distribution, brms
``allow_new_levels = TRUE`` with ``sample_new_levels = "gaussian"``; brms's
``kfold`` default is ``"uncertainty"``, resampling the training levels'
effects, see docs/analysis.md).
``elpd_kfold = sum_i elpd_i`` and its SE is ``sqrt(n var(elpd_i))`` (as
``az.loo`` computes the SE of elpd_loo).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayeslmm.model.checks import check_positive_int, check_random_seed

from .loglik import pointwise_logpdf
from .predict import linear_predictor, prediction_rows
from .recover import stack_draws

__all__ = ["KFold", "kfold", "fold_ids", "heldout_log_likelihood", "compare_kfold"]


@dataclasses.dataclass
class KFold:
    """Result of :func:`kfold`, brms ``kfold`` object.

    Attributes: ``elpd_kfold``, ``se``, ``p_kfold`` (lpd of the full-data
    fit minus elpd_kfold, NaN without one), ``kfoldic`` (-2 elpd_kfold),
    ``pointwise`` (elpd_i per row), ``folds`` (fold id per row, 0..K-1),
    ``K``, ``fits`` (the K fold fits), ``heldout_ll`` (per fold, the S x
    n_k held-out log-likelihood draws).
    """

    elpd_kfold: float
    se: float
    p_kfold: float
    pointwise: np.ndarray
    folds: np.ndarray
    K: int
    fits: list
    heldout_ll: list

    @property
    def kfoldic(self) -> float:
        return -2.0 * self.elpd_kfold

    def table(self) -> pd.DataFrame:
        """Estimates as brms prints them: rows elpd_kfold, p_kfold, kfoldic; columns Estimate, SE."""
        return pd.DataFrame({"Estimate": [self.elpd_kfold, self.p_kfold, self.kfoldic],
                             "SE": [self.se, np.nan, 2 * self.se]}, index=["elpd_kfold", "p_kfold", "kfoldic"])

    def __repr__(self):
        return (f"Based on {self.K}-fold cross-validation ({len(self.pointwise)} observations)\n\n"
                + self.table().to_string(float_format=lambda v: f"{v:.1f}"))


def fold_ids(n: int, K: int, groups=None, random_seed=None) -> np.ndarray:
    """Fold (0..K-1) of each of n rows, balanced and random (loo's ``kfold_split_random``).

    With ``groups`` (one label per row) whole groups are assigned, the
    groups spread evenly over the folds (loo's ``kfold_split_grouped``).
    """
    rng = np.random.default_rng(random_seed)
    if groups is None:
        if K > n:
            raise ValueError(f"K={K} folds need at least K rows; the data have {n}.")
        return rng.permutation(np.arange(n) % K)
    codes, uniq = pd.factorize(pd.Series(groups), sort=False)
    if K > len(uniq):
        raise ValueError(f"K={K} folds by group need at least K groups; there are {len(uniq)}.")
    return rng.permutation(np.arange(len(uniq)) % K)[codes]


def heldout_log_likelihood(fold_fit, design, rows, heldout: pd.DataFrame, rng) -> np.ndarray:
    """log p(y_i | draw s of ``fold_fit``) for the held-out rows (S x n_k).

    ``design`` is the full-data design, ``rows`` the held-out row positions
    in it (its y, weights, trials and offset are those rows'); the linear
    predictor comes from ``fold_fit``'s draws on ``heldout`` with the fold's
    encoding, new levels drawn from N(0, Sigma_g). Cost O(S n_k (p + sum d_g)).
    """
    fam = design.family
    pr = prediction_rows(fold_fit.design, heldout, None, True)
    eta = linear_predictor(fold_fit.posterior, pr, rng=rng)
    if not fam.gaussian and design.offset is not None:
        eta = eta + design.offset[rows]
    sub = dataclasses.replace(
        design, y=design.y[rows], y_original=design.y_original[rows], X=design.X[rows],
        weights=None if design.weights is None else design.weights[rows],
        trials=None if design.trials is None else design.trials[rows],
        offset=None if design.offset is None else design.offset[rows])
    aux = {a: stack_draws(fold_fit.posterior[a])[:, None] for a in fam.aux}
    y = np.asarray(sub.y if fam.gaussian else sub.y_original, dtype=float)
    ll = pointwise_logpdf(sub, y, eta, aux)
    if sub.weights is not None and not fam.gaussian:
        ll = ll * sub.weights
    return ll


def _progress(iterable, total, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc="kfold", unit="fold")


def kfold(fit, K: int = 10, group=None, folds=None, random_seed=None, progressbar: bool = True, **fit_args) -> KFold:
    """K-fold cross-validation of ``fit`` by K refits (brms ``kfold``).

    Parameters
    ----------
    K : int
        Number of folds (ignored when ``folds`` is given).
    group : str, optional
        A grouping factor of the model (``"subj"``, ``"a:b"``) or a column of
        the data: whole levels are held out together (brms ``group``).
    folds : array-like of int, optional
        The fold of each row (any K distinct labels), instead of a random split.
    random_seed : int, optional
        Seeds the split and the effects of levels a fold never saw.
    progressbar : bool
        A tqdm bar over the folds (if tqdm is installed).
    **fit_args
        Changes to the original fit's arguments for the refits (``draws``,
        ``chains``...); ``progressbar`` of each refit is False unless given.

    Returns
    -------
    KFold
        Usable in :func:`bayeslmm.compare` with other KFold results.

    Cost: K fits on (K-1)/K of the data plus O(S n (p + sum_g d_g)).
    """
    if getattr(fit, "origin", None) is None:
        raise ValueError("kfold refits the model, which needs the data it was fitted on: this fit has none "
                         "(it was loaded from a file). Refit it with BayesLMM(...).fit() first.")
    data = fit.origin.model_args["data"]
    design = fit.design
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"kfold needs the fit's data as a pandas DataFrame, got {type(data).__name__}.")
    if design.n_dropped or len(data) != design.n:
        raise ValueError(f"kfold needs one model row per data row; {design.n_dropped} rows with NaN were "
                         "dropped. Drop them from the data (data.dropna(subset=...)) and fit again.")
    seed = check_random_seed(random_seed)
    rng = np.random.default_rng(seed)
    n = design.n
    if folds is not None:
        f = np.asarray(folds)
        if f.shape != (n,):
            raise ValueError(f"folds must give one fold per row ({n}); got shape {f.shape}.")
        ids, labels = pd.factorize(pd.Series(f), sort=True)
        if len(labels) < 2:
            raise ValueError(f"folds must name at least 2 folds; got {list(labels)}.")
    else:
        K = check_positive_int(K, "K")
        if K < 2:
            raise ValueError(f"K must be at least 2, got {K}.")
        groups = None
        if group is not None:
            names = [b.name for b in design.blocks]
            if group in names:
                groups = design.block(group).group_index
            elif isinstance(group, str) and group in data.columns:
                groups = data[group].to_numpy()
            else:
                raise ValueError(f"group={group!r} is neither a grouping factor of the model ({names}) "
                                 "nor a column of the data.")
        ids = fold_ids(n, K, groups, rng)
    K = int(ids.max()) + 1
    w = fit.origin.model_args.get("weights")
    refit_args = {"progressbar": False, **fit_args}
    pointwise = np.empty(n)
    fits, lls = [], []
    for k in _progress(range(K), K, progressbar):
        test = np.flatnonzero(ids == k)
        train = np.flatnonzero(ids != k)
        extra = {}
        if w is not None and not isinstance(w, str):
            extra["weights"] = np.asarray(w)[train]
        with warnings.catch_warnings():
            # A fold's convergence warnings are about that fold; the final table carries the result.
            warnings.simplefilter("ignore")
            fk = fit.origin(data=data.iloc[train].reset_index(drop=True), **extra, **refit_args)
        ll = heldout_log_likelihood(fk, design, test, data.iloc[test].reset_index(drop=True), rng)
        pointwise[test] = logsumexp(ll, axis=0) - np.log(ll.shape[0])
        fits.append(fk)
        lls.append(ll)
    elpd = float(pointwise.sum())
    se = float(np.sqrt(n * pointwise.var()))
    from .loglik import _ensure

    full = np.asarray(_ensure(fit).log_likelihood["y"]).reshape(-1, n)
    lpd = float((logsumexp(full, axis=0) - np.log(full.shape[0])).sum())
    return KFold(elpd, se, lpd - elpd, pointwise, ids, K, fits, lls)


def compare_kfold(results: dict) -> pd.DataFrame:
    """Rank KFold results of the same data (brms ``loo_compare`` on kfold objects).

    Columns: rank, elpd_kfold, p_kfold, elpd_diff (to the best), se (of
    elpd_kfold), dse (SE of the pointwise differences to the best,
    sqrt(n var(d_i))), sorted best first. Cost O(models n).
    """
    n = {len(r.pointwise) for r in results.values()}
    if len(n) != 1:
        raise ValueError(f"k-fold results to compare must be of the same rows; their sizes are {sorted(n)}.")
    best = max(results, key=lambda k: results[k].elpd_kfold)
    rows = {}
    for name, r in results.items():
        d = results[best].pointwise - r.pointwise
        rows[name] = {"elpd_kfold": r.elpd_kfold, "p_kfold": r.p_kfold,
                      "elpd_diff": results[best].elpd_kfold - r.elpd_kfold, "se": r.se,
                      "dse": float(np.sqrt(len(d) * d.var()))}
    df = pd.DataFrame.from_dict(rows, orient="index").sort_values("elpd_kfold", ascending=False)
    df.insert(0, "rank", np.arange(len(df)))
    return df
