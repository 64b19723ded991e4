"""Posterior fits on the real data sets shipped in :mod:`bayeslmm.datasets`.

Checks against two independent references: lme4's REML estimates
(:func:`bayeslmm.datasets.lme4_reference`), and the unmarginalized fit of the
same model and priors, which marginalized fits must agree with to within
Monte Carlo error.
"""

import warnings

import arviz as az
import numpy as np
import pytest

from bayeslmm import BayesLMM
from bayeslmm.datasets import dataset_info, lme4_reference, load_dataset

pytestmark = pytest.mark.slow

_FITS = {}


def fit_of(name, marginalize, draws=1000, chains=2, seed=11):
    key = (name, marginalize, draws)
    if key not in _FITS:
        data, formula = load_dataset(name), dataset_info(name).formula
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = BayesLMM(formula, data).fit(draws=draws, tune=draws, chains=chains, random_seed=seed,
                                                     marginalize=marginalize, progressbar=False)
    return _FITS[key]


def _lme4_sd(ref, group, term):
    return next(v["sdcor"] for v in ref["varcorr"] if v["grp"] == group and v.get("var1") == term
                and "var2" not in v)


@pytest.mark.parametrize("name, marginalize", [("dillonE1", "none"), ("dillonE1", "all"), ("stroop", "none"),
                                                ("stroop", "subj")])
def test_matches_lme4(name, marginalize):
    fit = fit_of(name, marginalize)
    ref = lme4_reference(name)
    fe = fit.fixef()
    for term, est in ref["fixef"].items():
        term = "Intercept" if term == "(Intercept)" else term
        assert abs(fe.loc[term, "Estimate"] - est) < 2 * ref["fixef_se"][f"({term})" if term == "Intercept"
                                                                         else term], term
    vc = fit.varcorr(layout="long")
    for blk in fit.design.blocks:
        for term in blk.terms:
            lme4 = _lme4_sd(ref, blk.name, "(Intercept)" if term == "Intercept" else term)
            post = vc.loc[(blk.name, f"sd({term})"), "Estimate"]
            assert 0.6 * lme4 < post < 1.6 * lme4, (blk.name, term, post, lme4)
    assert vc.loc[("Residual", "sigma"), "Estimate"] == pytest.approx(ref["sigma"], rel=0.05)


def _scalar_draws(fit, n_effects=6):
    """Every fixed effect, SD, correlation, sigma and a sample of group-level effects, as (chain, draw)."""
    out = {f"{g}/{p}": v for (g, p), v in fit.varcorr(summary=False, layout="long").items()}
    for t in fit.design.fixed_names:
        out[f"fixef/{t}"] = np.asarray(fit.posterior["fixef"].sel(fixef_term=t))
    for blk in fit.design.blocks:
        r = np.asarray(fit.posterior[f"r_{blk.name}"])
        idx = np.random.default_rng(0).choice(blk.n_levels, size=min(n_effects, blk.n_levels), replace=False)
        for j in idx:
            for k, t in enumerate(blk.terms):
                out[f"r_{blk.name}[{blk.levels[j]},{t}]"] = r[:, :, j, k]
    return out


@pytest.mark.parametrize("name, plan", [("dillonE1", "all"), ("dillonE1", "subj"), ("grouseticks", "all")])
def test_marginalized_agrees_with_unmarginalized(name, plan):
    a, b = _scalar_draws(fit_of(name, plan)), _scalar_draws(fit_of(name, "none"))
    assert a.keys() == b.keys()
    bad = []
    for k in a:
        se = np.hypot(np.ravel(az.mcse(a[k]))[0], np.ravel(az.mcse(b[k]))[0])
        if abs(a[k].mean() - b[k].mean()) > 4 * se:
            bad.append((k, a[k].mean(), b[k].mean(), se))
    assert not bad, bad


@pytest.mark.parametrize("name", ["english", "dutch"])
def test_singular_fits_sample(name):
    """lme4 puts these on the boundary (an SD at 0, a correlation at +-1); the sampler must keep working."""
    fit = fit_of(name, "all", draws=1000)
    post = fit.posterior
    for v in ["fixef", "sigma"] + [f"sd_{b.name}" for b in fit.design.blocks] + \
             [f"r_{b.name}" for b in fit.design.blocks]:
        assert np.isfinite(np.asarray(post[v])).all(), v
    assert fit.n_divergences < 0.05 * post.sizes["chain"] * post.sizes["draw"]
    assert fit.max_rhat() < 1.05
