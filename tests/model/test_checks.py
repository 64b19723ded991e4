"""Every bad input gets a clear error naming the problem, before any compilation."""

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM


def test_missing_column(toy):
    with pytest.raises(ValueError, match=r"Column\(s\) 'zz' used in formula .* not found in data"):
        BayesLMM("y ~ zz + (1 | subj)", toy)
    with pytest.raises(ValueError, match="'grp2'"):
        BayesLMM("y ~ cond + (1 | grp2)", toy)


@pytest.mark.parametrize("col", ["y", "cond", "subj"])
def test_nan_rows(toy, col):
    df = toy.copy()
    df[col] = df[col].astype(object) if col == "subj" else df[col]
    df.loc[[1, 5, 7], col] = np.nan if col != "cond" else np.inf
    with pytest.raises(ValueError, match=rf"3 of 48 rows have NaN or infinite values .*'{col}': 3"):
        BayesLMM("y ~ cond + (1 | subj)", df)
    with pytest.warns(UserWarning, match="Dropped 3 rows"):
        m = BayesLMM("y ~ cond + (1 | subj)", df, na_action="drop")
    assert m.design.n == 45 and m.design.n_dropped == 3


def test_non_numeric_response(toy):
    with pytest.raises(TypeError, match="response 'f' must be numeric"):
        BayesLMM("f ~ cond + (1 | subj)", toy)


def test_transformed_response_not_finite(toy):
    df = toy.assign(neg=toy["cond"])
    with pytest.raises(ValueError, match="non-finite values after transformation"):
        BayesLMM("log(neg) ~ 1 + (1 | subj)", df)
    with pytest.raises(ValueError, match="strictly positive"):
        BayesLMM("neg ~ 1 + (1 | subj)", df, family="lognormal")


def test_single_level_factor(toy):
    with pytest.raises(ValueError, match="Grouping factor 'one' has 1 level"):
        BayesLMM("y ~ cond + (1 | one)", toy.assign(one="a"))


def test_empty_data(toy):
    with pytest.raises(ValueError, match="data is empty"):
        BayesLMM("y ~ cond + (1 | subj)", toy.iloc[:0])
    with pytest.raises(TypeError, match="pandas DataFrame"):
        BayesLMM("y ~ cond", {"y": [1.0]})


def test_malformed_formula(toy):
    with pytest.raises(ValueError, match="Malformed formula"):
        BayesLMM("y ~ cond + (1 | subj", toy)


def test_unknown_family(toy):
    with pytest.raises(ValueError, match="Unknown family 'weibull'; supported families are: gaussian, lognormal"):
        BayesLMM("y ~ cond + (1 | subj)", toy, family="weibull")


def test_rank_deficient(toy):
    df = toy.assign(cond2=2 * toy["cond"])
    with pytest.raises(ValueError, match="rank deficient .* 'cond2'"):
        BayesLMM("y ~ cond + cond2 + (1 | subj)", df)
    with pytest.raises(ValueError, match=r"2 of 5 columns aliased.*'C\(f, Sum\)\[a\]', 'C\(f, Sum\)\[b\]'"):
        BayesLMM("y ~ f + C(f, Sum) + (1 | subj)", toy)


@pytest.mark.parametrize("kw, err, msg", [
    (dict(draws=0), ValueError, "draws must be a positive integer"),
    (dict(draws=10.5), TypeError, "draws must be a positive integer"),
    (dict(chains=-1), ValueError, "chains must be a positive integer"),
    (dict(chains="2"), TypeError, "chains must be a positive integer"),
    (dict(tune=-5), ValueError, "tune must be a positive integer"),
    (dict(sampler="stan"), ValueError, "Unknown sampler 'stan'; choose one of: 'numpyro', 'pymc'"),
    (dict(target_accept=1.5), ValueError, "target_accept must lie in"),
    (dict(marginalize="subject"), ValueError, r"Unknown marginalize target\(s\) \['subject'\]; valid choices"),
    (dict(marginalize=["subj", "itm"]), ValueError, "'none', 'all', 'auto', 'subj', 'item'"),
    (dict(marginalize=3), TypeError, "marginalize must be a string or a list"),
])
def test_fit_arguments(toy, kw, err, msg, monkeypatch):
    import bayeslmm.sampling

    def boom(*a, **k):  # the checks must fire before anything is built or sampled
        raise AssertionError("sampler reached")

    monkeypatch.setattr(bayeslmm.api, "sample", boom)
    m = BayesLMM("y ~ cond + (1 | subj) + (1 | item)", toy)
    with pytest.raises(err, match=msg):
        m.fit(**kw)


def test_numeric_grouping_labels(toy):
    df = toy.assign(code=np.repeat([10, 20, 30, 40], 12))
    blk = BayesLMM("y ~ (1 | code)", df).design.blocks[0]
    assert blk.levels == ("10", "20", "30", "40")


def test_caller_frame_untouched(toy):
    df = toy.copy()
    df.loc[3, "y"] = np.nan
    snapshot = df.copy()
    with pytest.warns(UserWarning):
        BayesLMM("y ~ cond + (1 | subj)", df, na_action="drop")
    pd.testing.assert_frame_equal(df, snapshot)
