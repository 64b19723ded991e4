"""Pointwise log-likelihood, PSIS-LOO and model comparison.

The log-likelihood of observation i in posterior draw s is conditional on
that draw's group-level effects:

    log p(y_i | beta_s, r_s, sigma_s) = log N(y_i | eta_si, sigma_s)

(the family's density for the other families, each term times its weight
for weighted GLMM families as in brms) on the model scale, minus log(y_i) (the Jacobian) for ``lognormal`` so that
it is the density of the original y. With weights every value is the row's
term of the fitted log-likelihood: ``w_i log p(y_i | ...)`` (brms) for the
GLMM families, the precision-weighted density (SD ``sigma / sqrt(w_i)``) for
gaussian and lognormal, and 0 for a row of weight 0, which the likelihood
leaves out (as brms's ``w_i log p`` does). For factors marginalized during
sampling, r_s are the effects drawn exactly after sampling
(:mod:`bayeslmm.posterior.recover`); the joint draws (theta_s, r_s) come from the same
posterior as in an unmarginalized fit, so the pointwise values, and LOO
computed from them, estimate the same quantity whatever was marginalized.

This is the conditional (not the marginal) log-likelihood, the one brms
uses by default: "leave one observation out" keeps its group's effect, so
PSIS can report high Pareto k for groups with few observations.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import gammaln, log_ndtr

from .predict import linear_predictor, prediction_rows
from .recover import stack_draws

__all__ = ["log_likelihood", "loo", "compare"]

_CHUNK_BYTES = 64e6
_LOG_2PI = np.log(2 * np.pi)


def log_likelihood(fit, max_chunk_bytes: float = _CHUNK_BYTES):
    """Pointwise log-likelihood, stored as ``fit.idata.log_likelihood["y"]`` (chain, draw, obs).

    Parameters
    ----------
    fit : LMMFit
    max_chunk_bytes : float
        Draws are processed in chunks whose temporaries stay under about
        this many bytes; the result itself takes 8 S N bytes.

    Returns
    -------
    xarray.DataArray
        The values just stored (an existing ``log_likelihood`` group is replaced).
        For a model fitted on a Dask frame: a lazy Dask array (chain * draw, obs),
        computed partition by partition, and nothing stored
        (:func:`bayeslmm.posterior.lazy.lazy_log_likelihood`).

    Cost: O(S N (p + sum_g d_g)) time for S draws and N observations.
    """
    import xarray as xr

    from .lazy import is_dask_design, lazy_log_likelihood

    if is_dask_design(fit.design):
        # No rows on the driver: a lazy Dask array (draws, rows), not stored in idata.
        return lazy_log_likelihood(fit)
    design = fit.design
    post = fit.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    S, n = n_chain * n_draw, design.n
    rows = prediction_rows(design, None, None, False)
    fam = design.family
    aux = {a: stack_draws(post[a]) for a in fam.aux}
    y = np.asarray(design.y if fam.gaussian else design.y_original, dtype=float)
    offset = 0.0 if fam.gaussian or design.offset is None else design.offset
    w = design.weights
    # About three S x N temporaries per chunk (eta, one gathered effect, the result).
    chunk = int(max(1, min(S, max_chunk_bytes // (3 * 8 * max(n, 1)))))
    out = np.empty((S, n))
    for start in range(0, S, chunk):
        sl = slice(start, min(S, start + chunk))
        eta = linear_predictor(post, rows, sl) + offset
        out[sl] = pointwise_logpdf(design, y, eta, {a: v[sl, None] for a, v in aux.items()})
    if w is not None:
        w = np.asarray(w, dtype=float)
        if not fam.gaussian:
            out *= w  # brms: each term times its weight
        # A zero weight removes the row from the likelihood (for gaussian: infinite variance), so its term is 0,
        # not 0 * (-inf) nor the density of an SD of sigma / sqrt(1e-300).
        out[:, w == 0] = 0.0
    da = xr.DataArray(out.reshape(n_chain, n_draw, n), dims=("chain", "draw", "obs"),
                      coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": np.arange(n)},
                      name="y")
    if "log_likelihood" in fit.idata.groups():
        delattr(fit.idata, "log_likelihood")
    fit.idata.add_groups(log_likelihood=da.to_dataset())
    return da


def pointwise_logpdf(design, y, eta, aux) -> np.ndarray:
    """log p(y_i | eta_si, aux_s) of the design's family, (S, n); y on the model scale for gaussian families.

    gaussian/lognormal with weights use lme4's precision weights (SD sigma / sqrt(w_i)).
    """
    fam = design.family
    if fam.gaussian:
        s = aux["sigma"]
        if design.weights is not None:
            s = s / np.sqrt(np.maximum(design.weights, 1e-300))
        jac = -np.log(design.y_original) if fam.log_scale else 0.0
        return -0.5 * _LOG_2PI - np.log(s) - 0.5 * ((y - eta) / s) ** 2 + jac
    if fam.name == "student":
        return stats.t.logpdf(y, aux["nu"], eta, aux["sigma"])
    if fam.name in ("bernoulli", "binomial"):
        if fam.link == "logit":
            lp, lq = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
        else:
            lp, lq = log_ndtr(eta), log_ndtr(-eta)
        if fam.name == "bernoulli":
            return np.where(y > 0, lp, lq)
        t = design.trials
        lchoose = gammaln(t + 1) - gammaln(y + 1) - gammaln(t - y + 1)
        return lchoose + y * lp + (t - y) * lq
    if fam.name == "poisson":
        return y * eta - np.exp(eta) - gammaln(y + 1)
    return stats.nbinom.logpmf(y, aux["shape"], aux["shape"] / (aux["shape"] + np.exp(eta)))


def _ensure(fit):
    if "log_likelihood" not in fit.idata.groups() or "y" not in fit.idata.log_likelihood:
        from .lazy import is_dask_design

        if not is_dask_design(fit.design):
            log_likelihood(fit)
        else:  # PSIS needs every value at once: the lazy array is computed, S x N on the driver
            import xarray as xr

            post = fit.posterior
            vals = np.asarray(log_likelihood(fit).compute())
            da = xr.DataArray(vals.reshape(post.sizes["chain"], post.sizes["draw"], -1),
                              dims=("chain", "draw", "obs"),
                              coords={"chain": post["chain"].values, "draw": post["draw"].values}, name="y")
            fit.idata.add_groups(log_likelihood=da.to_dataset())
    return fit.idata


def loo(fit, **kwargs):
    """PSIS-LOO of ``fit`` (``az.loo``), computing the log-likelihood first if it is missing.

    Keyword arguments go to :func:`arviz.loo` (``pointwise=True``, ``scale``...).
    """
    import arviz as az

    return az.loo(_ensure(fit), **kwargs)


def compare(fits: dict, **kwargs):
    """Rank models of the same data by expected log predictive density (brms ``loo_compare``).

    ``fits`` maps a label to an LMMFit (its PSIS-LOO is computed, the
    log-likelihood first if missing), an ``az.loo(..., pointwise=True)``
    result, or a :class:`~bayeslmm.posterior.kfold.KFold` from ``fit.kfold``.
    LOO entries go to ``az.compare`` (keyword arguments too) and give its
    table; KFold entries, which must then all be KFold, give
    :func:`~bayeslmm.posterior.kfold.compare_kfold`'s table (elpd_kfold,
    elpd_diff, dse). Mixing the two criteria is a ValueError, as in loo.

    Fits of different families compare only if their log-likelihoods are of
    the same y: a ``lognormal`` fit of ``rt`` and a ``gaussian`` fit of
    ``log(rt)`` are not comparable as they stand (their densities differ by
    the Jacobian).
    """
    import arviz as az

    from .kfold import KFold, compare_kfold

    if not isinstance(fits, dict) or len(fits) < 2:
        raise ValueError(f"compare needs a dict of at least two labelled models; got {fits!r}.")
    is_kfold = {k: isinstance(v, KFold) for k, v in fits.items()}
    if any(is_kfold.values()):
        if not all(is_kfold.values()):
            raise ValueError("compare cannot mix k-fold and LOO results; k-fold: "
                             f"{[k for k, v in is_kfold.items() if v]}, others: "
                             f"{[k for k, v in is_kfold.items() if not v]}.")
        if kwargs:
            raise TypeError(f"compare of k-fold results takes no options; got {sorted(kwargs)}.")
        return compare_kfold(fits)
    entries = {}
    for k, f in fits.items():
        if isinstance(f, az.ELPDData):
            entries[k] = f
        elif hasattr(f, "idata") and hasattr(f, "design"):
            entries[k] = _ensure(f)
        else:
            raise TypeError(f"compare: {k!r} is a {type(f).__name__}; expected an LMMFit, an az.loo result "
                            "or a KFold.")
    return az.compare(entries, **kwargs)
