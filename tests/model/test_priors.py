import numpy as np
import pytest

from bayeslmm import BayesLMM, Prior
from bayeslmm.model.priors import parse_dist


def test_defaults_scaled_by_data(toy):
    m = BayesLMM("y ~ cond + x + (cond | subj)", toy)
    tab = m.get_priors().set_index(["class", "coef", "group"])
    s_y = np.std(m.design.y)
    assert tab.loc[("Intercept", "", ""), "prior"] == f"student_t(3, {np.mean(m.design.y):.4g}, {2.5 * s_y:.4g})"
    assert tab.loc[("b", "x", ""), "prior"] == f"normal(0, {2.5 * s_y / np.std(toy.x):.4g})"
    assert tab.loc[("sd", "Intercept", "subj"), "prior"] == f"half_student_t(3, {s_y:.4g})"
    assert tab.loc[("cor", "", "subj"), "prior"] == "lkj(2)"
    assert set(tab["source"]) == {"default"}


def test_overrides_most_specific_wins(toy):
    m = BayesLMM("y ~ cond + x + (cond | subj) + (1 | item)", toy, priors=[
        Prior("normal(0, 5)", "b"), Prior("normal(0, 1)", "b", coef="x"),
        Prior("exponential(1)", "sd"), Prior("exponential(3)", "sd", group="item"),
        Prior("lkj(4)", "cor"), Prior("normal(0, 2)", "sigma"), Prior("normal(6, 1)", "Intercept"),
    ])
    tab = m.get_priors().set_index(["class", "coef", "group"])["prior"]
    assert tab[("b", "cond", "")] == "normal(0, 5)" and tab[("b", "x", "")] == "normal(0, 1)"
    assert tab[("sd", "Intercept", "item")] == "exponential(3)" and tab[("sd", "cond", "subj")] == "exponential(1)"
    assert tab[("cor", "", "subj")] == "lkj(4)"
    assert tab[("sigma", "", "")] == "half_normal(2)"   # normal(0, s) on an SD is its half version, as in brms
    assert tab[("Intercept", "", "")] == "normal(6, 1)"


@pytest.mark.parametrize("prior, msg", [
    (Prior("normal(0, 1)", "b", coef="nope"), "matches no parameter .* Valid targets: class='b', coef='cond'"),
    (Prior("normal(0, 1)", "sd", group="nope"), "matches no parameter"),
    (Prior("lkj(2)", "cor", group="item"), "matches no parameter"),   # (1 | item) has no correlation
    (Prior("normal(1, 1)", "sd"), "must have location 0"),
    (Prior("normal(0, 1)", "cor"), "takes an lkj"),
    (Prior("exponential(1)", "b"), "positive parameters"),
    (Prior("lkj(2)", "sigma"), "lkj\\(\\) is a prior for class 'cor'"),
    (Prior("flat()", "sd"), "not a proper prior"),
])
def test_priors_the_model_cannot_honour(toy, prior, msg):
    with pytest.raises(ValueError, match=msg):
        BayesLMM("y ~ cond + (cond | subj) + (1 | item)", toy, priors=[prior])


def test_mixed_families_in_correlated_block(toy):
    with pytest.raises(ValueError, match="must share a family"):
        BayesLMM("y ~ cond + (cond | subj)", toy, priors=[Prior("exponential(2)", "sd", coef="cond")])
    # uncorrelated: fine
    BayesLMM("y ~ cond + (cond || subj)", toy, priors=[Prior("exponential(2)", "sd", coef="cond")])


@pytest.mark.parametrize("text, err", [("normal(0)", "takes 2"), ("wibble(1)", "Unknown prior"),
                                       ("normal 0 1", "Cannot parse"), ("normal(a, 1)", "numeric")])
def test_parse_errors(text, err):
    with pytest.raises(ValueError, match=err):
        parse_dist(text)


def test_unknown_class():
    with pytest.raises(ValueError, match="Unknown prior class"):
        Prior("normal(0, 1)", "beta")


@pytest.mark.parametrize("text, whole", [("student_t(3, 0, 2.5)", ("student_t", (3.0, 0.0, 2.5))),
                                         ("normal(0, 2)", ("normal", (0.0, 2.0))),
                                         ("cauchy(0, 1.5)", ("cauchy", (0.0, 1.5)))])
def test_whole_of_inverts_the_half_prior_of_an_sd(text, whole):
    from bayeslmm.model.priors import _honour, whole_of

    half = _honour(Prior(text, "sd"))
    assert half[0].startswith("half_")
    assert whole_of(*half) == whole
    assert whole_of("exponential", (1.0,)) is None and whole_of("gamma", (2.0, 1.0)) is None
