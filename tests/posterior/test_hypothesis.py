"""hypothesis() against hand computations on the same posterior and prior draws; prior draws kept and saved."""

import warnings

import numpy as np
import pytest
import scipy.stats as st

import bayeslmm
from bayeslmm import BayesLMM
from bayeslmm.posterior.hypothesis import bw_nrd0, density_at
from bayeslmm.posterior.prior import prior_draws

COLUMNS = ["Hypothesis", "Estimate", "Est.Error", "CI.Lower", "CI.Upper", "Evid.Ratio", "Post.Prob", "Star"]


def _b(ds, term):
    return np.asarray(ds["fixef"].sel(fixef_term=term)).reshape(-1)


def _kde0(x):
    """Gaussian KDE at 0 written out: mean of N(0 | x_i, h) with R's bw.nrd0 bandwidth."""
    iqr = np.quantile(x, 0.75) - np.quantile(x, 0.25)
    h = 0.9 * min(np.std(x, ddof=1), iqr / 1.34) * len(x) ** -0.2
    return np.mean(st.norm.pdf(0, loc=x, scale=h))


def test_one_sided(gaussian_fit):
    x = _b(gaussian_fit.posterior, "x")
    h = gaussian_fit.hypothesis("x > 0.05")
    assert list(h.columns) == COLUMNS
    r = h.iloc[0]
    d = x - 0.05
    assert r["Hypothesis"] == "(x)-(0.05) > 0"
    assert np.isclose(r["Estimate"], d.mean()) and np.isclose(r["Est.Error"], d.std(ddof=1))
    assert np.isclose(r["CI.Lower"], np.quantile(d, 0.05)) and r["CI.Upper"] == np.inf
    n = np.sum(d > 0)
    assert np.isclose(r["Post.Prob"], n / d.size)
    if n < d.size:
        assert np.isclose(r["Evid.Ratio"], n / (d.size - n))
    assert r["Star"] == ("*" if np.quantile(d, 0.05) > 0 else "")
    less = gaussian_fit.hypothesis("x < 0.05", alpha=0.1).iloc[0]
    assert less["CI.Lower"] == -np.inf and np.isclose(less["CI.Upper"], np.quantile(d, 0.9))
    assert np.isclose(less["Post.Prob"], np.mean(d < 0))


def test_point_hypothesis_is_savage_dickey(gaussian_fit):
    fit = gaussian_fit
    assert "prior" in fit.idata.groups()
    post = _b(fit.posterior, "cond[b]") - _b(fit.posterior, "g[v]")
    prior = _b(fit.idata.prior, "cond[b]") - _b(fit.idata.prior, "g[v]")
    assert prior.size == fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    with pytest.warns(UserWarning, match="'cond\\[b\\] = g\\[v\\]' \\(0 outside the posterior draws\\)"):
        r = fit.hypothesis("cond[b] = g[v]").iloc[0]  # the two effects differ clearly: 0 is in no draw
    assert r["Hypothesis"] == "(cond[b])-(g[v]) = 0"
    ratio = _kde0(post) / _kde0(prior)
    assert np.isclose(r["Evid.Ratio"], ratio, rtol=1e-10)
    assert np.isclose(r["Post.Prob"], ratio / (1 + ratio))
    assert np.isclose(r["CI.Lower"], np.quantile(post, 0.025)) and np.isclose(r["CI.Upper"], np.quantile(post, 0.975))


def test_brms_spelling_and_several(gaussian_fit):
    with pytest.warns(UserWarning, match="extrapolates"):
        h = gaussian_fit.hypothesis(["condb > 0", "cond[b] > 0", "2 * x - exp(condb:gv) = 0"])
    assert len(h) == 3
    assert np.isclose(h["Estimate"][0], h["Estimate"][1])
    post = gaussian_fit.posterior
    d = 2 * _b(post, "x") - np.exp(_b(post, "cond[b]:g[v]"))
    assert np.isclose(h["Estimate"][2], d.mean())


def test_class_and_group(gaussian_fit):
    post = gaussian_fit.posterior
    sd = np.asarray(post["sd_subj"].sel(subj__effect="Intercept")).reshape(-1)
    sigma = np.asarray(post["sigma"]).reshape(-1)
    r = gaussian_fit.hypothesis("Intercept > 0.05", class_="sd", group="subj").iloc[0]
    assert np.isclose(r["Estimate"], (sd - 0.05).mean()) and np.isclose(r["Post.Prob"], np.mean(sd > 0.05))
    icc = gaussian_fit.hypothesis("sd_subj__Intercept^2 / (sd_subj__Intercept^2 + sigma^2) < 0.5",
                                  class_=None, robust=True).iloc[0]
    d = sd ** 2 / (sd ** 2 + sigma ** 2) - 0.5
    assert np.isclose(icc["Estimate"], np.median(d))
    assert np.isclose(icc["Est.Error"], 1.4826 * np.median(np.abs(d - np.median(d))))
    # an SD is positive: 0 is below every posterior and prior draw, where the KDE is only its tail
    with pytest.warns(UserWarning, match="0 outside the posterior and prior draws"):
        r2 = gaussian_fit.hypothesis("subj__Intercept = 0", class_="sd").iloc[0]
    prior_sd = np.asarray(gaussian_fit.idata.prior["sd_subj"].sel(subj__effect="Intercept")).reshape(-1)
    assert np.isclose(r2["Evid.Ratio"], _kde0(sd) / _kde0(prior_sd))


def test_prior_density_matches_the_analytic_prior(gaussian_fit):
    """normal(0, 1) prior on b: the KDE at 0 is the density of N(0, 1 + h^2) up to its sampling error."""
    ds = prior_draws(gaussian_fit.design, gaussian_fit.priors, 4000, random_seed=3)
    x = _b(ds, "x")
    h = bw_nrd0(x)
    expected = st.norm.pdf(0, scale=np.sqrt(1 + h ** 2))  # E[KDE(0)] under the true N(0, 1)
    se = np.sqrt(expected / (2 * np.sqrt(np.pi)) / (x.size * h))  # f(0) R(K) / (n h)
    assert abs(density_at(x) - expected) < 4 * se
    # against the exact prior density: the kernel's smoothing bias plus the same noise
    assert abs(density_at(x) - st.norm.pdf(0)) < 4 * se + (st.norm.pdf(0) - expected)


def test_saved_fit_keeps_prior_draws(gaussian_fit, tmp_path):
    path = gaussian_fit.save(tmp_path / "fit.nc")
    loaded = bayeslmm.load(path)
    with pytest.warns(UserWarning, match="extrapolates"):
        a = gaussian_fit.hypothesis("x = 0")
    with pytest.warns(UserWarning, match="extrapolates"):
        b = loaded.hypothesis("x = 0")
    assert np.isclose(a["Evid.Ratio"][0], b["Evid.Ratio"][0]) and np.isfinite(a["Evid.Ratio"][0])


def test_point_hypothesis_without_prior_draws_warns(bernoulli_fit):
    with pytest.warns(UserWarning, match="sample_prior=True"):
        r = bernoulli_fit.hypothesis(["x = 0", "x > 0"])
    assert np.isnan(r["Evid.Ratio"][0]) and np.isnan(r["Post.Prob"][0])
    assert np.isclose(r["Post.Prob"][1], np.mean(_b(bernoulli_fit.posterior, "x") > 0))


def test_extrapolated_point_density_warns_once_at_the_call_site(gaussian_fit):
    from bayeslmm.posterior.hypothesis import hypothesis

    x = _b(gaussian_fit.posterior, "x")
    far = float(x.max() + 10 * x.std())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a point inside both ranges: no warning
        inside = gaussian_fit.hypothesis(f"x = {float(np.median(x))}")
    assert np.isfinite(inside["Evid.Ratio"][0])
    for call in (lambda h: gaussian_fit.hypothesis(h), lambda h: hypothesis(gaussian_fit, h)):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            r = call([f"x = {far}", f"x = {float(np.median(x))}", f"x > {far}"])
        assert len(rec) == 1, [str(w.message) for w in rec]
        msg = str(rec[0].message)
        assert f"'x = {far}' (0 outside the posterior draws)" in msg and "extrapolates" in msg
        assert str(np.median(x)) not in msg
        assert rec[0].filename == __file__
    # the value is still the ratio of the two kernel densities at 0
    prior = _b(gaussian_fit.idata.prior, "x")
    assert np.isclose(r["Evid.Ratio"][0], _kde0(x - far) / _kde0(prior - far))


@pytest.mark.parametrize("kwargs, err, text", [
    ({"hypothesis": "x >< 0"}, ValueError, "one sign"),
    ({"hypothesis": "x = "}, ValueError, "empty side"),
    ({"hypothesis": "z > 0"}, ValueError, "'z' is not a parameter"),
    ({"hypothesis": "x > 0", "class_": "sd", "group": "item"}, ValueError, "'item'"),
    ({"hypothesis": "open(x) > 0"}, ValueError, "functions"),
    ({"hypothesis": "x.real > 0"}, ValueError, "'x.real' is not a parameter|Attribute"),
    ({"hypothesis": 3}, TypeError, "hypothesis"),
    ({"hypothesis": "x > 0", "alpha": 2}, ValueError, "alpha"),
])
def test_bad_hypotheses(gaussian_fit, kwargs, err, text):
    with pytest.raises(err, match=text):
        gaussian_fit.hypothesis(**kwargs)


def test_sample_prior_checked_before_compiling(toy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="'only'"):
            BayesLMM("y ~ cond + (1 | subj)", toy).fit(sample_prior="only")
