"""Families, response-side syntax, offsets and weights: parsing, checks and plan rules (no sampling)."""

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM
from bayeslmm.model.design import build_design
from bayeslmm.model.formula import parse_formula


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(6), n // 6)
    x = rng.normal(size=n)
    s = rng.binomial(4, 0.4, n)
    return pd.DataFrame(dict(g=g, x=x, yb=rng.binomial(1, 0.5, n), s=s, f=4 - s, n=4,
                             yc=rng.poisson(2.0, n), yg=rng.normal(size=n), z=rng.uniform(1, 2, n)))


def test_cbind_and_trials_give_the_same_design():
    df = _data()
    a = build_design("cbind(s, f) ~ x + (1 | g)", df, family="binomial")
    b = build_design("s | trials(n) ~ x + (1 | g)", df, family="binomial")
    np.testing.assert_array_equal(a.trials, b.trials)
    np.testing.assert_array_equal(a.y_original, df.s.to_numpy())


def test_offset_is_not_a_coefficient_and_is_subtracted_for_gaussian():
    df = _data()
    d = build_design("yg ~ x + offset(log(z)) + (1 | g)", df)
    assert d.fixed_names == ("Intercept", "x")
    np.testing.assert_allclose(d.y, df.yg - np.log(df.z))
    d = build_design("yc ~ x + offset(log(z)) + (1 | g)", df, family="poisson")
    np.testing.assert_allclose(d.offset, np.log(df.z))
    np.testing.assert_array_equal(d.y_original, df.yc)
    d = build_design("yg ~ x + offset(z) + offset(x) + (1 | g)", df)
    np.testing.assert_allclose(d.offset, df.z + df.x)


def test_lognormal_offset_on_the_log_scale():
    df = _data().assign(pos=lambda d: np.exp(d.yg))
    d = build_design("pos ~ x + offset(z) + (1 | g)", df, family="lognormal")
    np.testing.assert_allclose(d.y, df.yg - df.z)


def test_weights_from_formula_or_argument():
    df = _data()
    a = build_design("yg | weights(z) ~ x + (1 | g)", df)
    b = build_design("yg ~ x + (1 | g)", df, weights="z")
    c = build_design("yg ~ x + (1 | g)", df, weights=df.z.to_numpy())
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.weights, c.weights)
    assert "__weights__" not in df.columns


@pytest.mark.parametrize("family, formula, column, value, phrase", [
    ("bernoulli", "yb ~ x + (1 | g)", "yb", 2, "0s and 1s"),
    ("poisson", "yc ~ x + (1 | g)", "yc", 1.5, "integer counts"),
    ("poisson", "yc ~ x + (1 | g)", "yc", -1, "non-negative counts"),
    ("negbinomial", "yc ~ x + (1 | g)", "yc", 0.25, "integer counts"),
    ("binomial", "s | trials(n) ~ x + (1 | g)", "s", 5, "successes exceed trials"),
    ("binomial", "cbind(s, f) ~ x + (1 | g)", "f", -1, "negative number of failures"),
    ("binomial", "s | trials(n) ~ x + (1 | g)", "n", 4.5, "integer trials"),
])
def test_bad_response_values_are_clear_errors(family, formula, column, value, phrase):
    df = _data()
    df[column] = df[column].astype(float)
    df.loc[3, column] = value
    with pytest.raises(ValueError, match=phrase):
        BayesLMM(formula, df, family=family)


@pytest.mark.parametrize("formula, family, phrase", [
    ("s ~ x + (1 | g)", "binomial", "number of trials"),
    ("s | trials(n) ~ x + (1 | g)", "poisson", "only family='binomial'"),
    ("yb ~ x + (1 | g)", "bernoulli_x", "Unknown family"),
    ("s | foo(n) ~ x + (1 | g)", "binomial", "trials\\(n\\) and/or"),
    ("cbind(s) ~ x + (1 | g)", "binomial", "two arguments"),
])
def test_bad_syntax_is_a_clear_error(formula, family, phrase):
    with pytest.raises(ValueError, match=phrase):
        BayesLMM(formula, _data(), family=family)


def test_links():
    df = _data()
    assert BayesLMM("yb ~ x + (1 | g)", df, family="bernoulli", link="probit").design.family.link == "probit"
    with pytest.raises(ValueError, match="links are: log"):
        BayesLMM("yc ~ x + (1 | g)", df, family="poisson", link="identity")


def test_non_gaussian_families_refuse_marginalization_and_auto_means_none():
    m = BayesLMM("yc ~ x + (1 | g)", _data(), family="poisson")
    assert m.plan("auto").marginalized == ()
    for plan in ("all", "g", ["g"]):
        with pytest.raises(ValueError, match="Gaussian in them.*marginalize='none'.*approximation='laplace'"):
            m.plan(plan)
    # Nothing marginalized: nothing approximated.
    assert m.plan("none", approximation="laplace").approximation is None


def test_default_priors_per_family():
    df = _data()
    t = BayesLMM("yc ~ x + (1 | g)", df, family="negbinomial").get_priors()
    assert set(t["class"]) == {"Intercept", "b", "sd", "shape"}
    assert t.loc[t["class"] == "shape", "prior"].iloc[0] == "gamma(0.01, 0.01)"
    t = BayesLMM("yg ~ x + (1 | g)", df, family="student").get_priors()
    assert t.loc[t["class"] == "nu", "prior"].iloc[0] == "gamma(2, 0.1)"
    assert "sigma" in set(t["class"])
    t = BayesLMM("yb ~ x + (1 | g)", df, family="bernoulli").get_priors()
    assert "sigma" not in set(t["class"])


def test_parse_offsets_and_aterms():
    s = parse_formula("y | weights(w) + trials(n) ~ x + offset(log(t)) + (1 | g)")
    assert (s.response, s.trials, s.weights, s.offsets, s.fixed) == ("y", "n", "w", ("log(t)",), "x")
