"""Pointwise log-likelihood against scipy, chunking, LOO and compare on unmarginalized and marginalized fits."""

import warnings

import arviz as az
import numpy as np
import pytest
import scipy.stats as st
import xarray as xr

from bayeslmm import BayesLMM
from bayeslmm.posterior.loglik import compare, log_likelihood
from bayeslmm.simulate import simulate_crossed

# Tiny fits with a conditional log-likelihood: high Pareto k is expected and not under test.
pytestmark = pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")


@pytest.fixture(scope="module")
def data():
    df = simulate_crossed(n_subj=8, n_item=6)[0]
    df["rt"] = np.exp(df["y"])
    return df


def _fit(formula, df, family, marginalize):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM(formula, df, family=family).fit(draws=100, tune=100, chains=2, marginalize=marginalize,
                                                        random_seed=2, progressbar=False)


@pytest.fixture(scope="module")
def fit_none(data):
    return _fit("y ~ cond + (cond | subj) + (1 | item)", data, "gaussian", "none")


@pytest.fixture(scope="module")
def fit_all(data):
    return _fit("rt ~ cond + (cond | subj) + (1 | item)", data, "lognormal", "all")


def _eta(fit, df, chain, draw):
    p = fit.posterior.isel(chain=chain, draw=draw)
    cond = df["cond"].to_numpy()
    eta = p["fixef"].values[0] + p["fixef"].values[1] * cond
    rs = p["r_subj"].sel(subj__level=xr.DataArray(df["subj"].to_numpy(), dims="obs"))
    ri = p["r_item"].sel(item__level=xr.DataArray(df["item"].to_numpy(), dims="obs"))
    return (eta + rs.sel(subj__effect="Intercept").values + rs.sel(subj__effect="cond").values * cond
            + ri.sel(item__effect="Intercept").values), float(p["sigma"])


@pytest.mark.parametrize("chain, draw", [(0, 0), (0, 57), (1, 99)])
def test_gaussian_matches_scipy(fit_none, data, chain, draw):
    ll = fit_none.log_likelihood()
    assert ll.dims == ("chain", "draw", "obs") and ll.shape == (2, 100, len(data))
    eta, sigma = _eta(fit_none, data, chain, draw)
    np.testing.assert_allclose(ll.values[chain, draw], st.norm.logpdf(data["y"], eta, sigma), rtol=1e-10)


@pytest.mark.parametrize("chain, draw", [(0, 3), (1, 42)])
def test_lognormal_matches_scipy_on_original_scale(fit_all, data, chain, draw):
    ll = fit_all.log_likelihood()
    eta, sigma = _eta(fit_all, data, chain, draw)   # r_<g> here are the recovered effects
    np.testing.assert_allclose(ll.values[chain, draw], st.lognorm.logpdf(data["rt"], s=sigma, scale=np.exp(eta)),
                               rtol=1e-10)
    link = fit_all.predict(summary=False, kind="link")
    sig = fit_all.posterior["sigma"].values.reshape(-1, 1)
    np.testing.assert_allclose(fit_all.predict(summary=False, kind="mean"), np.exp(link + sig ** 2 / 2))


def test_chunks_do_not_change_values(fit_none):
    whole = fit_none.log_likelihood().values
    np.testing.assert_array_equal(log_likelihood(fit_none, max_chunk_bytes=1).values, whole)
    np.testing.assert_array_equal(fit_none.idata.log_likelihood["y"].values, whole)


@pytest.mark.parametrize("which", ["fit_none", "fit_all"])
def test_loo(which, request):
    fit = request.getfixturevalue(which)
    res = fit.loo()
    assert np.isfinite(res["elpd_loo"]) and res["n_data_points"] == fit.design.n
    assert az.loo(fit.idata)["elpd_loo"] == pytest.approx(res["elpd_loo"])


def test_compare(fit_none):
    tab = compare({"a": fit_none, "b": fit_none})
    assert set(tab.index) == {"a", "b"}
    assert np.allclose(tab["elpd_loo"], tab["elpd_loo"].iloc[0])
