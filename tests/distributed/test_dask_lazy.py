"""Predictions and log-likelihood of a Dask-fitted model: lazy Dask arrays, checked against a hand computation."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

dd = pytest.importorskip("dask.dataframe")
import dask  # noqa: E402
import dask.array as da  # noqa: E402

from bayeslmm import BayesLMM  # noqa: E402
from bayeslmm.model import build_design  # noqa: E402

FORMULA = "y ~ scale(x) + (x | subj) + (1 | item)"


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(4)
    n = 2000
    subj, item = rng.integers(0, 20, n), rng.integers(0, 8, n)
    x = rng.normal(3, 2, n)
    y = 1 + 0.5 * x + rng.normal(size=20)[subj] + 0.3 * rng.normal(size=20)[subj] * x + rng.normal(size=8)[item]
    df = pd.DataFrame({"y": y + rng.normal(size=n), "x": x, "subj": [f"s{s:02d}" for s in subj], "item": item})
    # 60 draws of one chain: enough to compare lazy and eager results draw by draw, short enough to diverge once.
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "There were .* divergent transitions", UserWarning)
        fit = BayesLMM(FORMULA, dd.from_pandas(df, npartitions=3)).fit(draws=60, tune=100, chains=1, random_seed=1,
                                                                       progressbar=False)
    return fit, df


def _hand_eta(fit, df, rows=slice(None)):
    """eta = X beta + Z r from the draws for ``df``'s ``rows``, with the pandas design's X (scale() over all of df)."""
    design = build_design(FORMULA, df)
    post = fit.posterior.stack(s=("chain", "draw"))
    beta = np.asarray(post["fixef"].transpose("s", "fixef_term").sel(fixef_term=list(design.fixed_names)))
    eta = beta @ design.X[rows].T
    for blk in design.blocks:
        r = np.asarray(post[f"r_{blk.name}"].transpose("s", f"{blk.name}__level", f"{blk.name}__effect")
                       .sel({f"{blk.name}__level": list(blk.levels), f"{blk.name}__effect": list(blk.terms)}))
        eta += np.einsum("snd,nd->sn", r[:, blk.group_index[rows], :], blk.values[rows])
    return eta


def test_lazy_predictions_match_pandas(fitted):
    fit, df = fitted
    newdata = df.iloc[::7].reset_index(drop=True)
    lazy = fit.predict(newdata=dd.from_pandas(newdata, npartitions=2), kind="link", summary=False)
    assert isinstance(lazy, da.Array) and lazy.numblocks == (1, 2)
    with dask.config.set(scheduler="threads"):
        got = lazy.compute()
        train = fit.predict(kind="link", summary=False).compute()
    np.testing.assert_allclose(got, _hand_eta(fit, df, slice(None, None, 7)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(train, _hand_eta(fit, df), rtol=1e-9, atol=1e-9)


def test_lazy_log_likelihood_matches_pandas(fitted):
    fit, df = fitted
    lazy = fit.log_likelihood()
    assert isinstance(lazy, da.Array) and lazy.shape == (60, len(df)) and lazy.numblocks == (1, 3)
    with dask.config.set(scheduler="threads"):
        got = lazy.compute()
    sigma = np.asarray(fit.posterior["sigma"].stack(s=("chain", "draw")))[:, None]
    ref = stats.norm.logpdf(df["y"].to_numpy(), _hand_eta(fit, df), sigma)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_lazy_prediction_refusals(fitted):
    fit, df = fitted
    with pytest.raises(ValueError, match="allow_new_levels"):
        fit.predict(newdata=dd.from_pandas(df, npartitions=2), allow_new_levels=True, summary=False)
    with pytest.raises(ValueError, match="kind='response'"):
        fit.predict(kind="response", summary=False)
    with pytest.raises(ValueError, match="summary=False"):
        fit.predict(kind="mean")
    with pytest.raises(ValueError, match="not seen in training"):
        fit.predict(newdata=dd.from_pandas(df.assign(subj="new"), npartitions=2), kind="mean",
                    summary=False).compute(scheduler="threads")


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto distribution")  # 60 draws, both sides
def test_loo_of_a_dask_fit(fitted):
    import arviz as az
    import xarray as xr

    fit, df = fitted
    with dask.config.set(scheduler="threads"):
        got = fit.loo()
    sigma = np.asarray(fit.posterior["sigma"].stack(s=("chain", "draw")))[:, None]
    ref = stats.norm.logpdf(df["y"].to_numpy(), _hand_eta(fit, df), sigma)
    ll = xr.DataArray(ref.reshape(1, 60, -1), dims=("chain", "draw", "obs"), name="y").to_dataset()
    expect = az.loo(az.InferenceData(posterior=fit.posterior, log_likelihood=ll))
    np.testing.assert_allclose(got.elpd_loo, expect.elpd_loo, rtol=1e-9)


def test_lazy_log_likelihood_with_precision_weights(fitted):
    _, df = fitted
    df = df.assign(pw=np.random.default_rng(5).uniform(0.5, 2.0, len(df)))
    with dask.config.set(scheduler="threads"):
        fit = BayesLMM("y | weights(pw) ~ scale(x) + (x | subj) + (1 | item)", dd.from_pandas(df, npartitions=2)).fit(
            draws=30, tune=60, chains=1, random_seed=2, progressbar=False)
        got = fit.log_likelihood().compute()
    sigma = np.asarray(fit.posterior["sigma"].stack(s=("chain", "draw")))[:, None]
    ref = stats.norm.logpdf(df["y"].to_numpy(), _hand_eta(fit, df), sigma / np.sqrt(df["pw"].to_numpy()))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
