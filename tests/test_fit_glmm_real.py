"""GLMM fits (marginalize="none", and the Laplace plan) against lme4's glmer estimates on the shipped data sets.

References: :func:`bayeslmm.datasets.lme4_reference` (glmer Laplace fits for
cbpp, grouseticks with the raw TICKS counts and the simulated crossed
bernoulli set; glmmTMB for the simulated Student-t set; the R script is
reference/lme4_reference.R). Fixed effects must lie within 2 glmer standard
errors of glmer's estimates. glmer reports no standard errors for SDs, so an
SD's posterior mean must lie within 2 posterior SDs of glmer's estimate.
"""

import warnings

import numpy as np
import pytest

from bayeslmm import BayesLMM
from bayeslmm.datasets import lme4_reference, load_dataset

pytestmark = pytest.mark.slow

# name -> (data set, formula, family, {our fixef name: lme4 name}, [(factor, lme4 group)])
CASES = {
    "cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
             {"Intercept": "(Intercept)", "period[2]": "period2", "period[3]": "period3", "period[4]": "period4"},
             [("herd", "herd")]),
    "grouseticks_poisson": ("grouseticks", "TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson",
                            {"Intercept": "(Intercept)", "C(YEAR)[96]": "YEAR96", "C(YEAR)[97]": "YEAR97",
                             "cHEIGHT": "cHEIGHT"},
                            [("BROOD", "BROOD"), ("LOCATION", "LOCATION")]),
    "sim_student": ("sim_student", "rt ~ 1 + cond + (1 | subj)", "student",
                    {"Intercept": "(Intercept)", "cond": "cond"}, [("subj", "subj")]),
    "sim_bernoulli": ("sim_bernoulli", "correct ~ 1 + cond + (1 + cond | subj) + (1 | item)", "bernoulli",
                      {"Intercept": "(Intercept)", "cond": "cond"}, [("subj", "subj"), ("item", "item")]),
}


def _fit(name, **kw):
    data_name, formula, family, _, _ = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM(formula, load_dataset(data_name), family=family).fit(
            draws=300, tune=400, chains=2, random_seed=5, progressbar=False, **kw)


@pytest.mark.parametrize("name", list(CASES))
def test_glmm_agrees_with_glmer(name):
    _check_against_glmer(name, _fit(name, marginalize="none"))


@pytest.mark.parametrize("name", ["cbpp", "grouseticks_poisson"])
def test_laplace_plan_agrees_with_glmer(name):
    """Every factor integrated out by the Laplace approximation, the effects recovered afterwards."""
    fit = _fit(name, marginalize="all", approximation="laplace")
    assert fit.plan.approximation == "laplace" and not fit.plan.sampled
    _check_against_glmer(name, fit)
    for factor, _ in CASES[name][4]:
        assert np.isfinite(fit.posterior[f"r_{factor}"].values).all()


def _check_against_glmer(name, fit):
    _, _, family, fixef_map, groups = CASES[name]
    ref = lme4_reference(name)
    fe = fit.fixef()
    for ours, theirs in fixef_map.items():
        err = abs(fe.loc[ours, "Estimate"] - ref["fixef"][theirs])
        assert err < 2 * ref["fixef_se"][theirs], (ours, fe.loc[ours, "Estimate"], ref["fixef"][theirs])
    post = fit.posterior
    for factor, grp in groups:
        sd = post[f"sd_{factor}"].sel({f"{factor}__effect": "Intercept"}).values.ravel()
        lme4_sd = next(v["sdcor"] for v in ref["varcorr"] if v["grp"] == grp and v.get("var1") == "(Intercept)"
                       and "var2" not in v)
        assert abs(sd.mean() - lme4_sd) < 2 * sd.std(), (factor, sd.mean(), sd.std(), lme4_sd)
    if family == "student":
        assert abs(post["sigma"].values.mean() - ref["sigma"]) < 2 * post["sigma"].values.std()
