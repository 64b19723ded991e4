"""Formula semantics (lme4/brms) checked against the expected design."""

import numpy as np
import pytest

from bayeslmm.model.design import build_design
from bayeslmm.model.formula import RandomTerm, parse_formula


@pytest.mark.parametrize(
    "formula, fixed, random",
    [
        ("y ~ x + (x | g)", "x", [("x", ("g",), True)]),
        ("y ~ x + (x || g)", "x", [("1", ("g",), False), ("0 + x", ("g",), False)]),
        ("y ~ (0 + x | g)", "1", [("0 + x", ("g",), True)]),
        ("y ~ (x - 1 | g)", "1", [("x - 1", ("g",), True)]),
        ("y ~ 1 + (1 | a/b)", "1", [("1", ("a",), True), ("1", ("a", "b"), True)]),
        ("y ~ (1 | a:b)", "1", [("1", ("a", "b"), True)]),
        ("y ~ x + (1 | s) + (1 | i)", "x", [("1", ("s",), True), ("1", ("i",), True)]),
        ("log(rt) ~ a*b + (1|g)", "a*b", [("1", ("g",), True)]),
        ("y ~ 0 + x + (1|g)", "0 + x", [("1", ("g",), True)]),
        ("y ~ C(f, contr.sum) + (1|g)", "C(f, Sum)", [("1", ("g",), True)]),
    ],
)
def test_parse(formula, fixed, random):
    spec = parse_formula(formula)
    assert spec.fixed == fixed
    assert list(spec.random) == [RandomTerm(e, f, c) for e, f, c in random]


@pytest.mark.parametrize("bad", ["y x", "y ~", "~ x", "y ~ x + (1 | g", "y ~ x + 1 | g", "y ~ (1 | )", "y ~ ( | g)",
                                 "y ~ x ~ z", "y ~ x + + z"])
def test_malformed(bad):
    with pytest.raises(ValueError, match="Malformed formula"):
        parse_formula(bad)


def test_correlated_slope(toy):
    d = build_design("y ~ cond + (cond | subj)", toy)
    (blk,) = d.blocks
    assert d.fixed_names == ("Intercept", "cond")
    assert blk.terms == ("Intercept", "cond") and blk.corr_groups == ((0, 1),)
    assert blk.levels == tuple(f"s{i}" for i in range(6))
    np.testing.assert_array_equal(blk.group_index, toy["subj"].str[1:].astype(int))
    np.testing.assert_array_equal(blk.values, np.column_stack([np.ones(len(toy)), toy["cond"]]))


def test_uncorrelated_and_no_intercept(toy):
    d = build_design("y ~ cond + (cond || subj) + (0 + x | item)", toy)
    subj, item = d.block("subj"), d.block("item")
    assert subj.terms == ("Intercept", "cond") and subj.corr_groups == ((0,), (1,)) and not subj.correlated
    assert item.terms == ("x",) and item.corr_groups == ((0,),)
    np.testing.assert_array_equal(item.values[:, 0], toy["x"])
    assert build_design("y ~ (x - 1 | item)", toy).block("item").terms == ("x",)


def test_nested_and_interaction(toy):
    d = build_design("y ~ (1 | subj/item)", toy)
    assert {b.name for b in d.blocks} == {"subj", "subj:item"}
    inter = d.block("subj:item")
    assert inter.n_levels == 24 and inter.levels[0] == "s0:i0"
    labels = np.array(inter.levels)[inter.group_index]
    np.testing.assert_array_equal(labels, (toy["subj"] + ":" + toy["item"]).to_numpy())
    # the largest block comes first: it is the block-diagonal part of the marginal precision
    assert d.blocks[0].name == "subj:item"
    assert build_design("y ~ (1 | subj:item)", toy).blocks[0].n_levels == 24


def test_several_terms_same_factor(toy):
    d = build_design("y ~ (1 + cond | subj) + (0 + x | subj)", toy)
    (blk,) = d.blocks
    assert blk.terms == ("Intercept", "cond", "x") and blk.corr_groups == ((0, 1), (2,))
    with pytest.raises(ValueError, match="more than one random term"):
        build_design("y ~ (1 | subj) + (1 + cond | subj)", toy)


def test_fixed_effects_terms(toy):
    d = build_design("y ~ cond * f", toy)
    assert d.fixed_names == ("Intercept", "cond", "f[b]", "f[c]", "cond:f[b]", "cond:f[c]")
    d = build_design("y ~ 0 + f", toy)
    assert d.fixed_names == ("f[a]", "f[b]", "f[c]") and not d.has_intercept
    d = build_design("y ~ C(f, Sum)", toy)
    np.testing.assert_array_equal(np.unique(d.X[:, 1]), [-1, 0, 1])
    d = build_design("y ~ scale(x) + center(cond) + np.exp(x) + sqrt(rt)", toy)
    np.testing.assert_allclose(d.X[:, 1], (toy.x - toy.x.mean()) / toy.x.std(ddof=0), rtol=1e-6)  # formulae: population SD
    np.testing.assert_allclose(d.X[:, 2], toy.cond - toy.cond.mean())
    np.testing.assert_allclose(d.X[:, 4], np.sqrt(toy.rt))


def test_log_response_and_lognormal(toy):
    d = build_design("log(rt) ~ cond + (1 | subj)", toy)
    np.testing.assert_allclose(d.y, np.log(toy["rt"]))
    d = build_design("rt ~ cond + (1 | subj)", toy, family="lognormal")
    np.testing.assert_allclose(d.y, np.log(toy["rt"]))
    np.testing.assert_allclose(d.y_original, toy["rt"])
    assert d.family.log_jacobian(d.y_original) == pytest.approx(-np.log(toy["rt"]).sum())


def test_numeric_grouping_factor_is_categorical(toy):
    df = toy.assign(num=(toy.index % 3).astype(float) + 1.0)
    blk = build_design("y ~ (1 | num)", df).blocks[0]
    assert blk.levels == ("1", "2", "3")
    np.testing.assert_array_equal(blk.group_index, df["num"].astype(int) - 1)


def test_categorical_random_slope(toy):
    blk = build_design("y ~ (f | subj)", toy).blocks[0]
    assert blk.terms == ("Intercept", "f[b]", "f[c]") and blk.dim == 3


def test_data_not_mutated(toy):
    before = toy.copy()
    build_design("log(rt) ~ scale(x) + (cond | subj)", toy)
    assert toy.equals(before)
