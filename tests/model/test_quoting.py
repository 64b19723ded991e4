"""Backtick-quoted column names (formulae's quoting): design, grouping factors, prediction, and the refusals."""

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM
from bayeslmm.model.formula import parse_formula

RENAME = {"my y": "y", "my x": "x", "my g": "g", "größe": "f"}


def _data(n=48, seed=3):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(8)], n // 8)
    x = rng.normal(size=n)
    u = rng.normal(0, 0.7, 8)[np.arange(n) // (n // 8)]
    return pd.DataFrame({"my y": 1 + 0.5 * x + u + rng.normal(0, 0.3, n), "my x": x, "my g": g,
                         "größe": np.tile(["a", "b", "c"], n // 3)})


def test_quoted_grouping_factor_is_unquoted():
    spec = parse_formula("`my y` ~ `my x` + (`my x` | `my g`) + (1 | `my g`:h)")
    assert [t.factor for t in spec.random] == [("my g",), ("my g", "h")]


@pytest.mark.parametrize("quoted, plain", [
    ("`my y` ~ `my x` + größe + (`my x` | `my g`)", "y ~ x + f + (x | g)"),
    ("`my y` ~ scale(`my x`) + (1 | `my g`/größe)", "y ~ scale(x) + (1 | g/f)"),
])
def test_quoted_design_equals_the_renamed_one(quoted, plain):
    d = _data()
    a, b = BayesLMM(quoted, d).design, BayesLMM(plain, d.rename(columns=RENAME)).design
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert [n.replace("my ", "").replace("größe", "f") for n in a.fixed_names] == list(b.fixed_names)
    assert len(a.blocks) == len(b.blocks)
    for ba, bb in zip(a.blocks, b.blocks):
        assert ba.name.replace("my ", "").replace("größe", "f") == bb.name
        np.testing.assert_array_equal(ba.group_index, bb.group_index)
        assert ba.levels == bb.levels
        np.testing.assert_array_equal(ba.values, bb.values)


def test_quoted_names_fit_and_predict():
    d = _data()
    fit = BayesLMM("`my y` ~ `my x` + (1 | `my g`)", d).fit(draws=100, tune=100, chains=1, random_seed=2,
                                                           progressbar=False)
    assert "my x" in fit.fixef().index
    new = pd.DataFrame({"my x": [0.3, -1.0, 2.0], "my g": ["g1", "g5", "g1"]})
    eta = fit.predict(newdata=new, kind="link", summary=False)
    # The reference: the same draws combined by hand.
    b = np.asarray(fit.posterior["fixef"].stack(s=("chain", "draw")).transpose("s", "fixef_term")
                   .sel(fixef_term=["Intercept", "my x"]))
    r = fit.posterior["r_my g"].stack(s=("chain", "draw")).sel({"my g__effect": "Intercept"})
    r = np.stack([np.asarray(r.sel({"my g__level": lev})) for lev in new["my g"]], axis=1)
    np.testing.assert_allclose(eta, b[:, :1] + b[:, 1:] * new["my x"].to_numpy() + r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("formula, phrase", [
    ("`my y ~ `my x` + (1 | `my g`)", "unmatched backtick"),
    ("`my y` ~ `a+b` + (1 | `my g`)", "contains +"),
    ("`my y` ~ `` + (1 | `my g`)", "is empty"),
    ("`my y` ~ my x + (1 | `my g`)", "quoted with backticks"),
    ("`my y` ~ `my x` + (1 | my g)", "quoted as `my col`"),
])
def test_quoting_errors(formula, phrase):
    with pytest.raises(ValueError) as info:
        BayesLMM(formula, _data())
    assert phrase in str(info.value)
