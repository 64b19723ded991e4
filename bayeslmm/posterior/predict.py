"""Predictions from a fitted model: linear predictor, expected value, posterior and prior predictive draws.

Every prediction is one value per posterior draw, computed from the draws of
``fixef``, ``sigma`` and the group-level effects ``r_<g>`` in
``fit.idata.posterior``. For marginalized factors ``r_<g>`` holds the exact
draws recovered after sampling (:mod:`bayeslmm.posterior.recover`), so marginalized and
unmarginalized fits predict the same way.

The three kinds follow brms:

- ``"link"``: ``eta = X beta + sum_g Z_g r_g`` (brms ``posterior_linpred``);
- ``"mean"``: the expected response, ``eta`` for gaussian and
  ``exp(eta + sigma^2 / 2)`` for lognormal (brms ``posterior_epred``);
- ``"response"``: draws of a new response (brms ``posterior_predict``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from bayeslmm.model.design import (ReBlock, evaluate_expression, factor_labels, formula_variables,
                                   formulae_matrices, offset_of)
from bayeslmm.model.checks import check_bool, check_finite_rows, check_mixed_types, check_probability, check_random_seed
from bayeslmm.model.formula import FormulaSpec, parse_formula, unquote

from .recover import stack_draws

__all__ = ["PredictionRows", "summarise_draws", "linear_predictor", "posterior_predictive", "predict", "prediction_rows",
           "prior_predictive"]

KINDS = ("link", "mean", "response")


@dataclass(frozen=True)
class _Part:
    """One grouping factor's contribution to the rows being predicted.

    ``block`` holds the rows' group index and covariates, its levels the
    training levels followed by the new ones; ``effects`` the indices of
    the block's terms that enter the prediction.
    """

    block: ReBlock
    effects: tuple
    n_train: int

    @property
    def n_new(self) -> int:
        return self.block.n_levels - self.n_train


@dataclass(frozen=True)
class PredictionRows:
    """The rows to predict for: the fixed-effects matrix and each kept factor's part."""

    X: np.ndarray  # (n, p)
    parts: tuple

    @property
    def n(self) -> int:
        return self.X.shape[0]


# --- re_formula -----------------------------------------------------------------

def _strip_levels(label: str) -> str:
    """formulae label -> term name: ``f[b]:x`` -> ``f:x``."""
    return re.sub(r"\[[^\]]*\]", "", label)


def _included_effects(design, re_formula) -> dict:
    """factor -> indices of its effects that ``re_formula`` keeps (factors absent are dropped)."""
    if re_formula is None:
        return {b.name: tuple(range(b.dim)) for b in design.blocks}
    if isinstance(re_formula, float) and np.isnan(re_formula):
        return {}
    if not isinstance(re_formula, str):
        raise TypeError(f"re_formula must be None, 'NA' or a one-sided formula string, got {re_formula!r}.")
    text = re_formula.strip()
    if text.upper() == "NA":
        return {}
    if not text.startswith("~"):
        raise ValueError(f"re_formula must be None, 'NA' or start with '~', like '~ (1 | subj)'; got {re_formula!r}.")
    try:
        spec = parse_formula("__response__ " + text)
    except ValueError as err:
        raise ValueError(f"Cannot read re_formula {re_formula!r}: {err}") from None
    import formulae as fm

    out: dict = {}
    for t in spec.random:
        name = t.factor_name
        try:
            blk = design.block(name)
        except KeyError:
            raise ValueError(f"re_formula names grouping factor {name!r}, which is not in the model; "
                             f"its factors are {[b.name for b in design.blocks]}.") from None
        wanted = {"Intercept"} if t.expr.strip() == "1" else {
            getattr(term, "name", "Intercept") for term in fm.model_description(t.expr).terms}
        have = {_strip_levels(lbl) for lbl in blk.terms}
        missing = wanted - have
        if missing:
            raise ValueError(f"re_formula asks for effect(s) {sorted(missing)} of {name!r}, but the model's "
                             f"effects of {name!r} are {list(blk.terms)}.")
        idx = [i for i, lbl in enumerate(blk.terms) if _strip_levels(lbl) in wanted]
        out[name] = tuple(sorted(set(out.get(name, ())) | set(idx)))
    return out


# --- rows to predict for --------------------------------------------------------

def _check_finite_design(M, names, what):
    """A transformation of finite newdata (``log`` of a negative value) gives no silent NaN predictions."""
    bad = ~np.isfinite(M)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(f"The {what} are not finite on {len(set(rows.tolist()))} row(s) of newdata, e.g. row "
                         f"{int(rows[0])} in column {names[int(cols[0])]!r} (a transformation such as log of a "
                         "value <= 0?).")


def _term_values(design, term, newdata: pd.DataFrame) -> np.ndarray:
    """Columns of one random term on ``newdata``, with the training data's encoding where it is known."""

    if term.expr.strip() == "1":
        return np.ones((len(newdata), 1))
    train = getattr(design.fixed_matrix, "data", None)
    variables = formula_variables(FormulaSpec(term.expr, "", term.expr, ()))
    if train is not None and set(variables) <= set(train.columns):
        # The fixed part's training columns carry the state of stateful transforms and the
        # categorical levels; evaluating newdata alone would re-derive them from newdata.
        common = formulae_matrices(term.expr, train).common
        return np.asarray(common.evaluate_new_data(newdata).design_matrix, dtype=float)
    common = formulae_matrices(term.expr, newdata).common
    return np.asarray(common.design_matrix, dtype=float)


def _block_rows(design, blk, newdata, effects, allow_new_levels) -> _Part:
    terms = [t for t in design.spec.random if t.factor_name == blk.name]
    missing = [c for c in terms[0].factor if c not in newdata.columns]
    if missing:
        raise ValueError(f"newdata lacks grouping column(s) {missing} of factor {blk.name!r}; "
                         "drop the factor with re_formula to predict without it.")
    if newdata[list(terms[0].factor)].isna().any().any():
        raise ValueError(f"newdata has missing values in the grouping column(s) of {blk.name!r}.")
    labels = factor_labels(newdata, terms[0].factor)
    gidx = pd.Index(blk.levels).get_indexer(labels)
    new = tuple(pd.unique(labels[gidx < 0]))
    if new and not allow_new_levels:
        shown = ", ".join(map(repr, new[:10])) + (f", ... ({len(new)} in all)" if len(new) > 10 else "")
        raise ValueError(f"newdata has level(s) of {blk.name!r} not seen in training: {shown}. Pass "
                         "allow_new_levels=True to draw their effects from the fitted group-level distribution, "
                         "or drop the factor with re_formula.")
    if new:
        gidx = gidx.copy()
        gidx[gidx < 0] = blk.n_levels + pd.Index(new).get_indexer(labels[gidx < 0])
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values = np.column_stack([_term_values(design, t, newdata) for t in terms])
    except Exception as err:
        raise ValueError(f"Could not evaluate the random terms of {blk.name!r} on newdata: {err}") from err
    if values.shape[1] != blk.dim:
        raise ValueError(f"The random terms of {blk.name!r} give {values.shape[1]} column(s) on newdata but "
                         f"{blk.dim} ({list(blk.terms)}) in training: newdata must contain every level of "
                         "categorical predictors that appear only in random terms.")
    _check_finite_design(values, blk.terms, f"random terms of {blk.name!r}")
    rows = ReBlock(blk.name, gidx.astype(np.int64), values, blk.levels + new, blk.terms, blk.corr_groups)
    return _Part(rows, effects, blk.n_levels)


def prediction_rows(design, newdata, re_formula, allow_new_levels) -> PredictionRows:
    """The :class:`PredictionRows` of ``newdata`` (the training rows if None), with the training data's encoding.

    Raises ``ValueError`` for columns newdata lacks, levels not seen in
    training (unless ``allow_new_levels``) and an invalid ``re_formula``.
    Cost O(n (p + sum_g d_g)).
    """
    check_bool(allow_new_levels, "allow_new_levels")
    keep = _included_effects(design, re_formula)
    if newdata is None:
        parts = tuple(_Part(b, keep[b.name], b.n_levels) for b in design.blocks if keep.get(b.name))
        return PredictionRows(design.X, parts)
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
    if len(newdata) == 0:
        raise ValueError("newdata is empty: the DataFrame has no rows to predict for.")
    used = [c for c in formula_variables(design.spec) if c in newdata.columns and c != unquote(design.spec.response)]
    check_mixed_types(newdata, used)
    check_finite_rows(newdata, used, "error")
    newdata = newdata.reset_index(drop=True)
    if design.fixed_matrix is not None:
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                X = np.asarray(design.fixed_matrix.evaluate_new_data(newdata).design_matrix, dtype=float)
        except Exception as err:
            raise ValueError(f"Could not evaluate the fixed effects {design.spec.fixed!r} on newdata: {err}") from err
        X = X.reshape(len(newdata), -1)
        _check_finite_design(X, design.fixed_names, "fixed effects")
    else:
        X = np.zeros((len(newdata), 0))
    parts = tuple(_block_rows(design, b, newdata, keep[b.name], allow_new_levels) for b in design.blocks
                  if keep.get(b.name))
    return PredictionRows(X, parts)


# --- draws ----------------------------------------------------------------------

def _chol_cov(post, blk, sl) -> np.ndarray:
    """Cholesky factors of Sigma_g = diag(sd) cor diag(sd), one per draw: (S, d, d)."""
    sd = stack_draws(post[f"sd_{blk.name}"])[sl]
    cor_name = f"cor_{blk.name}"
    if cor_name not in post:
        return sd[:, :, None] * np.eye(blk.dim)
    cor = stack_draws(post[cor_name])[sl]
    try:
        R = np.linalg.cholesky(cor)
    except np.linalg.LinAlgError:
        # A correlation at +-1 to rounding: take the symmetric square root instead.
        w, V = np.linalg.eigh(cor)
        R = V * np.sqrt(np.clip(w, 0, None))[:, None, :]
    return sd[:, :, None] * R


SAMPLE_NEW_LEVELS = ("gaussian", "uncertainty", "old_levels")


def new_level_effects(r: np.ndarray, L: np.ndarray | None, n_new: int, rule: str, rng) -> np.ndarray:
    """Effects (S, n_new, d) of levels unseen in training, by brms's ``sample_new_levels`` rule.

    ``r`` (S, n_levels, d) holds the trained levels' draws, ``L`` (S, d, d)
    the Cholesky factor of Sigma_g per draw (used by "gaussian" only).
    "gaussian": per draw, N(0, Sigma_g); "uncertainty": per draw and new
    level, the draw of a trained level chosen at random (a different one per
    draw); "old_levels": each new level takes every draw of one trained
    level chosen at random. Cost O(S n_new d^2).
    """
    S, n_old, d = r.shape
    if rule == "gaussian":
        z = rng.standard_normal((S, n_new, d))
        return np.einsum("snk,sdk->snd", z, L)
    if rule == "uncertainty":
        pick = rng.integers(0, n_old, size=(S, n_new))
        return np.take_along_axis(r, pick[:, :, None], axis=1)
    return r[:, rng.integers(0, n_old, size=n_new), :]


def _draws_for(post, part, sl, rng, sample_new_levels="gaussian") -> np.ndarray:
    """Group effects (S, n_levels + n_new, d): the posterior's, then new levels' by ``sample_new_levels``."""
    blk = part.block
    r = stack_draws(post[f"r_{blk.name}"])[sl]
    if not part.n_new:
        return r
    L = _chol_cov(post, blk, sl) if sample_new_levels == "gaussian" else None
    return np.concatenate([r, new_level_effects(r, L, part.n_new, sample_new_levels, rng)], axis=1)


def linear_predictor(posterior, rows: PredictionRows, sl=slice(None), rng=None,
                     sample_new_levels="gaussian") -> np.ndarray:
    """``eta = X beta + sum_g Z_g r_g`` for the draws in ``sl`` of the flattened (chain * draw) posterior: (S, n).

    ``rng`` draws the effects of new levels (needed only if ``rows`` has
    some), by brms's ``sample_new_levels`` rule (:func:`new_level_effects`).
    Cost O(S n (p + sum_g d_g)).
    """
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    S = len(range(n_draws)[sl])
    if rows.X.shape[1]:
        eta = stack_draws(posterior["fixef"])[sl] @ rows.X.T
    else:
        eta = np.zeros((S, rows.n))
    for part in rows.parts:
        r = _draws_for(posterior, part, sl, rng, sample_new_levels)
        for e in part.effects:
            eta += part.block.values[:, e] * r[:, part.block.group_index, e]
    return eta


def predict(fit, newdata=None, re_formula=None, allow_new_levels=False, kind="mean",
            sample_new_levels="gaussian", random_seed=None) -> np.ndarray:
    """Posterior draws of predictions, like brms ``posterior_epred`` / ``posterior_predict``.

    Parameters
    ----------
    fit : LMMFit
    newdata : pandas.DataFrame or dask.dataframe.DataFrame, optional
        Rows to predict for; the training rows if None. Needs the columns of
        the fixed part and of the random terms kept by ``re_formula`` (not
        the response). Categorical levels and stateful transforms
        (``center``, ``scale``) use the training data's encoding.
    re_formula : None, "NA" or str
        Which group-level effects enter: None all of them (brms
        ``re_formula = NULL``); ``"NA"`` or ``"~ 0"`` none (brms ``NA``);
        ``"~ (1 | subj)"`` only the listed effects, matched by factor and
        effect name (``(cond | subj)`` keeps subj's intercept and cond).
        Population-level terms in ``re_formula`` are ignored, as in brms.
    allow_new_levels : bool
        If False, levels of ``newdata`` unseen in training raise
        ``ValueError``. If True, new levels get effects by the
        ``sample_new_levels`` rule.
    kind : {"mean", "response", "link"}
        ``"mean"``: expected response (``exp(eta + sigma^2/2)`` for
        lognormal, the inverse link of eta for GLMM families, times the
        trials for binomial; brms ``posterior_epred``); ``"response"``: new
        observations, on the response's original scale; ``"link"``: the
        linear predictor eta (offsets included) on the link (for
        gaussian/lognormal the model) scale.
    sample_new_levels : {"gaussian", "uncertainty", "old_levels"}
        brms's rules for new levels. "gaussian" (the default here): per
        posterior draw an effect from N(0, Sigma_g), Sigma_g = diag(sd) cor
        diag(sd). "uncertainty" (brms's default): per draw, the draw of a
        randomly chosen trained level. "old_levels": all draws of one
        randomly chosen trained level.
    random_seed : int or numpy.random.Generator, optional
        Seeds new-level effects and response noise; the same seed gives the
        same draws.

    Returns
    -------
    ndarray, shape (chains * draws, n_rows)
        Draws in chain-major order (``idata.posterior.stack(sample=("chain", "draw"))``).
        For a model fitted on a Dask frame, a lazy Dask array of the same
        shape over the rows of ``newdata`` (a Dask frame; None: the training
        frame), see :mod:`bayeslmm.posterior.lazy`.

    Cost: O(S (n p + n sum_g d_g)) time and O(S n) memory for S draws and n rows.
    """
    from .lazy import is_dask_design

    if is_dask_design(fit.design):
        # A Dask-fitted model: lazy, partition by partition (bayeslmm.posterior.lazy).
        from .lazy import lazy_predict

        if allow_new_levels is not False:
            raise ValueError("allow_new_levels is not supported for a model fitted on a Dask frame.")
        return lazy_predict(fit, newdata, re_formula, kind)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if not isinstance(sample_new_levels, str) or sample_new_levels not in SAMPLE_NEW_LEVELS:
        raise ValueError(f"sample_new_levels must be one of {SAMPLE_NEW_LEVELS}, got {sample_new_levels!r}.")
    rng = np.random.default_rng(check_random_seed(random_seed))
    design = fit.design
    rows = prediction_rows(design, newdata, re_formula, allow_new_levels)
    offset, trials = row_offset_trials(design, newdata, need_trials=kind != "link")
    return draws_for_rows(fit, rows, offset, trials, kind, rng, sample_new_levels)


def draws_for_rows(fit, rows, offset, trials, kind, rng, sample_new_levels="gaussian") -> np.ndarray:
    """Draws (S, n) of ``kind`` ("link", "mean", "response") for prepared rows, offsets and trials.

    Cost O(S n (p + sum_g d_g)).
    """
    eta = linear_predictor(fit.posterior, rows, rng=rng, sample_new_levels=sample_new_levels) + offset
    if kind == "link":
        return eta
    aux = {a: stack_draws(fit.posterior[a])[:, None] for a in fit.design.family.aux}
    if kind == "mean":
        return response_mean(fit.design.family, eta, aux, trials)
    return response_draws(fit.design.family, eta, aux, trials, rng)


def summarise_draws(draws, index=None, prob: float = 0.95) -> pd.DataFrame:
    """brms-style table of draws (S x n): one row per column, Estimate, Est.Error, Q2.5, Q97.5.

    Estimate is the posterior mean, Est.Error the SD (ddof=1), the Q columns
    the equal-tailed ``prob`` interval, as brms ``fitted``/``predict`` with
    ``summary = TRUE``. ``index`` labels the rows (the newdata index).
    Cost: O(S n log S).
    """
    a = np.asarray(draws, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"draws must be a 2-d array (draws x rows); got shape {a.shape}")
    prob = check_probability(prob, "prob")
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    return pd.DataFrame({"Estimate": a.mean(0), "Est.Error": a.std(0, ddof=1),
                         f"Q{100 * lo:g}": np.quantile(a, lo, axis=0), f"Q{100 * hi:g}": np.quantile(a, hi, axis=0)},
                        index=index)


def row_offset_trials(design, newdata, need_trials=True):
    """Offsets (link scale) and binomial trials of the training rows (``newdata`` None) or of ``newdata``.

    Raises ``ValueError`` when newdata lacks a column of the formula's
    ``offset()`` terms, or (binomial) of its ``trials()``.
    """
    if newdata is None:
        return (design.offset if design.offset is not None else 0.0), design.trials
    newdata = newdata.reset_index(drop=True)
    spec = design.spec
    trial_exprs = [spec.trials] if need_trials and spec.trials is not None else []
    for what, exprs in (("offset", list(spec.offsets)), ("number of trials", trial_exprs)):
        probe = FormulaSpec(spec.formula, "1", " + ".join(exprs) or "1", ())
        missing = [c for c in formula_variables(probe) if c not in newdata.columns]
        if missing:
            raise ValueError(f"newdata lacks column(s) {missing} of the {what} in {spec.formula!r}; "
                             "predictions need them.")
    offset = offset_of(spec, newdata)
    trials = (evaluate_expression(spec.trials, newdata, "number of trials")
              if need_trials and spec.trials is not None else None)
    return offset, trials


def _inverse_link(fam, eta):
    if fam.link == "logit":
        return expit(eta)
    if fam.link == "probit":
        return ndtr(eta)
    if fam.link == "log":
        return np.exp(eta)
    return eta


def response_mean(fam, eta, aux, trials=None):
    """E[y | eta, aux] per draw and row (brms ``posterior_epred``)."""
    if fam.log_scale:
        return np.exp(eta + aux["sigma"] ** 2 / 2)
    mu = _inverse_link(fam, eta)
    if fam.trials:
        mu = mu * trials
    return mu


def response_draws(fam, eta, aux, trials, rng):
    """New responses per draw and row, on the scale of the formula's left-hand side."""
    name = fam.name
    if name in ("gaussian", "lognormal"):
        y = eta + aux["sigma"] * rng.standard_normal(eta.shape)
        return np.exp(y) if fam.log_scale else y
    if name == "student":
        return eta + aux["sigma"] * rng.standard_t(np.broadcast_to(aux["nu"], eta.shape))
    mu = _inverse_link(fam, eta)
    if name == "bernoulli":
        return (rng.random(eta.shape) < mu).astype(float)
    if name == "binomial":
        return rng.binomial(np.broadcast_to(trials.astype(np.int64), eta.shape), mu).astype(float)
    if name == "poisson":
        return rng.poisson(mu).astype(float)
    # negbinomial, brms/PyMC parametrization: variance mu + mu^2 / shape
    shape = np.broadcast_to(aux["shape"], eta.shape)
    return rng.poisson(rng.gamma(shape, mu / shape)).astype(float)


def posterior_predictive(fit, random_seed=None):
    """Add ``posterior_predictive`` (``y``, dims chain, draw, obs) and ``observed_data`` to ``fit.idata``.

    The draws are new responses for the training rows, conditional on each
    posterior draw of every parameter and group-level effect (recovered ones
    included), on the scale of the formula's left-hand side (the original y
    for lognormal). Existing groups of those names are replaced.
    Cost: that of ``predict(fit, kind="response")``. Returns ``fit.idata``.
    """
    import xarray as xr

    post = fit.posterior
    y = predict(fit, kind="response", random_seed=random_seed)
    n = fit.design.n
    obs = np.arange(n)
    pp = xr.Dataset({"y": (("chain", "draw", "obs"), y.reshape(post.sizes["chain"], post.sizes["draw"], n))},
                    coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": obs})
    observed = xr.Dataset({"y": ("obs", np.asarray(fit.design.y_original, dtype=float))}, coords={"obs": obs})
    for g in ("posterior_predictive", "observed_data"):
        if g in fit.idata.groups():
            delattr(fit.idata, g)
    fit.idata.add_groups(posterior_predictive=pp, observed_data=observed)
    return fit.idata


def prior_predictive(design, priors, draws=500, random_seed=None):
    """Draws from the prior and the prior predictive distribution of the model of ``design`` and ``priors``.

    Runs ``pm.sample_prior_predictive`` on the unmarginalized model: the
    prior is the same whatever is marginalized. The prior group holds every
    parameter, ``r_<g>`` included; ``prior_predictive`` holds ``y`` (dims
    chain, draw, obs) on the scale of the formula's left-hand side.

    Cost: one compile of the forward graph plus O(draws N) sampling.

    Returns
    -------
    arviz.InferenceData
        Groups ``prior``, ``prior_predictive`` and ``observed_data``.
    """
    import pymc as pm

    from bayeslmm.model.checks import check_positive_int
    from bayeslmm.model.plan import resolve_plan
    from bayeslmm.pymc_model import build_model
    from bayeslmm.sampling import drop_internal

    draws = check_positive_int(draws, "draws")
    with build_model(design, priors, resolve_plan(design, "none")):
        idata = drop_internal(pm.sample_prior_predictive(draws=draws, random_seed=random_seed))
    # PyMC names the observation dim y_dim_0; posterior_predictive and log_likelihood use obs.
    for g in ("prior_predictive", "observed_data"):
        if g in idata.groups():
            dims = [d for d in getattr(idata, g)["y"].dims if d not in ("chain", "draw")]
            if dims and dims[0] != "obs":
                idata.rename({dims[0]: "obs"}, groups=g, inplace=True)
    return idata
