"""Every family through the results layer: tables, predict kinds, pointwise loglik against scipy, loo, save/load."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayeslmm
from bayeslmm import BayesLMM
from bayeslmm.posterior.predict import linear_predictor, prediction_rows
from bayeslmm.posterior.recover import stack_draws

CASES = {
    "bernoulli": ("yb ~ x + (1 | g)", {}),
    "probit": ("yb ~ x + (1 | g)", {"family": "bernoulli", "link": "probit"}),
    "binomial": ("cbind(s, f) ~ x + (1 | g)", {}),
    "poisson": ("yc ~ x + offset(log(z)) + (1 | g)", {}),
    "negbinomial": ("yc | weights(w) ~ x + (1 | g)", {}),
    "student": ("yg ~ x + offset(z) + (1 | g)", {}),
    "gaussian": ("yg ~ x + (1 | g)", {"weights": "w"}),
}


def _data(seed=3, n=120):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), n // 8)
    x = rng.normal(size=n)
    eta = 0.2 + 0.7 * x + rng.normal(0, 0.5, 8)[g]
    p = 1 / (1 + np.exp(-eta))
    s = rng.binomial(6, p)
    z = rng.uniform(1, 2, n)
    w = rng.uniform(0.5, 1.5, n)
    w[[3, 50]] = 0.0  # zero-weight rows: left out of the likelihood, log-lik 0 (not -345 or NaN)
    return pd.DataFrame(dict(g=g, x=x, z=z, w=w, yb=rng.binomial(1, p), s=s, f=6 - s,
                             yc=rng.poisson(np.exp(eta) * z), yg=eta + z + 0.5 * rng.standard_t(5, n)))


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request):
    formula, kw = CASES[request.param]
    kw = dict(kw)
    kw.setdefault("family", request.param)
    df = _data()
    m = BayesLMM(formula, df, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of a 100-draw fit are not what is tested
        fit = m.fit(chains=2, draws=100, tune=150, random_seed=4, progressbar=False)
    return request.param, df, fit


def _reference_logpdf(name, fit, df, eta):
    post = fit.posterior
    aux = {a: stack_draws(post[a])[:, None] for a in fit.design.family.aux}
    if name == "bernoulli":
        return stats.bernoulli.logpmf(df.yb, 1 / (1 + np.exp(-eta)))
    if name == "probit":
        return stats.bernoulli.logpmf(df.yb, stats.norm.cdf(eta))
    if name == "binomial":
        return stats.binom.logpmf(df.s, df.s + df.f, 1 / (1 + np.exp(-eta)))
    if name == "poisson":
        return stats.poisson.logpmf(df.yc, np.exp(eta))
    if name == "negbinomial":
        mu, k = np.exp(eta), aux["shape"]
        return df.w.to_numpy() * stats.nbinom.logpmf(df.yc, k, k / (k + mu))
    if name == "student":
        return stats.t.logpdf(df.yg, aux["nu"], eta, aux["sigma"])
    w = df.w.to_numpy()
    with np.errstate(divide="ignore"):
        return np.where(w > 0, stats.norm.logpdf(df.yg, eta, aux["sigma"] / np.sqrt(w)), 0.0)


def test_tables(fitted):
    name, df, fit = fitted
    text = str(fit.summary())
    assert "Regression Coefficients" in text and "Multilevel Hyperparameters" in text
    assert set(fit.fixef().index) == {"Intercept", "x"}
    assert fit.ranef()  # one table per factor
    assert len(fit.coef()) == 1
    vc = fit.varcorr(layout="long")
    assert (("Residual", "sigma") in vc.index) == (name in ("student", "gaussian"))
    if name in ("negbinomial", "student"):
        assert ("shape" if name == "negbinomial" else "nu") in text


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_pointwise_loglik_matches_scipy(fitted):
    name, df, fit = fitted
    ll = bayeslmm.posterior.loglik.log_likelihood(fit).values.reshape(-1, len(df))
    eta = linear_predictor(fit.posterior, prediction_rows(fit.design, None, None, False))
    eta = eta + np.asarray(fit.design.offset)
    np.testing.assert_allclose(ll, _reference_logpdf(name, fit, df, eta), rtol=1e-9, atol=1e-9)
    if name in ("negbinomial", "gaussian"):  # the weighted cases: a zero-weight row contributes exactly 0
        assert np.all(ll[:, df.w.to_numpy() == 0] == 0.0) and np.all(ll[:, df.w.to_numpy() > 0] != 0.0)
    assert np.isfinite(fit.loo().elpd_loo)


def test_predict_kinds_and_newdata_offsets(fitted):
    name, df, fit = fitted
    link = fit.predict(summary=False, kind="link")
    mean = fit.predict(summary=False, kind="mean")
    resp = fit.predict(summary=False, kind="response", random_seed=1)
    assert link.shape == mean.shape == resp.shape == (200, len(df))
    if name in ("bernoulli", "probit"):
        assert np.all((mean > 0) & (mean < 1)) and set(np.unique(resp)) <= {0.0, 1.0}
    if name == "binomial":
        assert np.all(resp <= (df.s + df.f).to_numpy()) and np.all(mean < 6)
    if name in ("poisson", "negbinomial"):
        np.testing.assert_allclose(mean, np.exp(link))
    # predictions on newdata equal those on the training rows, offsets re-evaluated
    np.testing.assert_allclose(fit.predict(df, summary=False, kind="mean"), mean)
    if name in ("poisson", "student"):
        with pytest.raises(ValueError, match="offset"):
            fit.predict(df.drop(columns="z"), summary=False, kind="mean")


def test_posterior_predictive_and_round_trip(fitted, tmp_path):
    name, df, fit = fitted
    idata = fit.posterior_predictive(random_seed=0)
    assert idata.posterior_predictive["y"].shape == (2, 100, len(df))
    path = tmp_path / "fit.nc"
    fit.save(path)
    back = bayeslmm.load(path)
    assert back.design.family == fit.design.family
    np.testing.assert_allclose(back.predict(df, summary=False, kind="mean"),
                               fit.predict(df, summary=False, kind="mean"))
    np.testing.assert_allclose(bayeslmm.posterior.loglik.log_likelihood(back).values,
                               bayeslmm.posterior.loglik.log_likelihood(fit).values)


def test_bayes_R2_every_family(fitted):
    name, df, fit = fitted
    mu = fit.predict(summary=False, kind="mean")
    y = np.asarray(fit.design.y_original, dtype=float)
    vm, ve = mu.var(axis=1, ddof=1), (y - mu).var(axis=1, ddof=1)
    r2 = fit.bayes_R2(summary=False)
    np.testing.assert_allclose(r2, vm / (vm + ve))
    assert np.all((r2 > 0) & (r2 < 1))
