"""Pointwise log-likelihood, PSIS-LOO and model comparison.

The log-likelihood of observation i in posterior draw s is conditional on
that draw's group-level effects:

    log p(y_i | beta_s, r_s, sigma_s) = log N(y_i | eta_si, sigma_s)

on the model scale, minus log(y_i) (the Jacobian) for ``lognormal`` so that
it is the density of the original y. For factors marginalized during
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

    Cost: O(S N (p + sum_g d_g)) time for S draws and N observations.
    """
    import xarray as xr

    design = fit.design
    post = fit.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    S, n = n_chain * n_draw, design.n
    rows = prediction_rows(design, None, None, False)
    sigma = stack_draws(post["sigma"])
    y = np.asarray(design.y, dtype=float)
    jac = -np.log(design.y_original) if design.family.log_scale else 0.0
    # About three S x N temporaries per chunk (eta, one gathered effect, the result).
    chunk = int(max(1, min(S, max_chunk_bytes // (3 * 8 * max(n, 1)))))
    out = np.empty((S, n))
    for start in range(0, S, chunk):
        sl = slice(start, min(S, start + chunk))
        eta = linear_predictor(post, rows, sl)
        s = sigma[sl, None]
        out[sl] = -0.5 * _LOG_2PI - np.log(s) - 0.5 * ((y - eta) / s) ** 2 + jac
    da = xr.DataArray(out.reshape(n_chain, n_draw, n), dims=("chain", "draw", "obs"),
                      coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": np.arange(n)},
                      name="y")
    if "log_likelihood" in fit.idata.groups():
        delattr(fit.idata, "log_likelihood")
    fit.idata.add_groups(log_likelihood=da.to_dataset())
    return da


def _ensure(fit):
    if "log_likelihood" not in fit.idata.groups() or "y" not in fit.idata.log_likelihood:
        log_likelihood(fit)
    return fit.idata


def loo(fit, **kwargs):
    """PSIS-LOO of ``fit`` (``az.loo``), computing the log-likelihood first if it is missing.

    Keyword arguments go to :func:`arviz.loo` (``pointwise=True``, ``scale``...).
    """
    import arviz as az

    return az.loo(_ensure(fit), **kwargs)


def compare(fits: dict, **kwargs):
    """``az.compare`` of several fits of the same data (dict label -> LMMFit).

    Fits of different families compare only if their log-likelihoods are of
    the same y: a ``lognormal`` fit of ``rt`` and a ``gaussian`` fit of
    ``log(rt)`` are not comparable as they stand (their densities differ by
    the Jacobian).
    """
    import arviz as az

    return az.compare({k: _ensure(f) for k, f in fits.items()}, **kwargs)
