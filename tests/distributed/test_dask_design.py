"""Sufficient statistics from a Dask frame against the pandas design."""

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

from bayeslmm import BayesLMM  # noqa: E402
from bayeslmm.model import build_design, resolve_plan  # noqa: E402
from bayeslmm.distributed import check_dask_plan, dask_design, is_dask_frame  # noqa: E402
from bayeslmm.pymc_model import marginal_data  # noqa: E402


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, 17, n)
    item = rng.integers(0, 9, n)
    x = rng.normal(size=n)
    y = 5000 + 2 * x + rng.normal(size=17)[subj] + rng.normal(size=9)[item] + rng.normal(size=n)
    return pd.DataFrame({"y": np.exp(y / 1000), "x": x, "subj": [f"s{s}" for s in subj], "item": item,
                         "w": rng.normal(size=n)})


FIELDS = ["S1", "G22x", "XtX", "Xte", "Zte", "ZtX", "beta_hat", "diag_rows", "diag_cols"]


@pytest.mark.parametrize("formula,family", [
    ("y ~ x + w + (x | subj) + (1 | item)", "gaussian"),
    ("y ~ x + (1 | subj) + (1 | item) + (0 + w | subj:item)", "gaussian"),
    ("y ~ x + (x || subj)", "lognormal"),
    # Stateful transforms with the frame's global moments, as formulae's on the whole pandas frame.
    ("y ~ scale(x) + center(w) + (scale(x) | subj) + (1 | item)", "gaussian"),
    ("y ~ scale(x):center(w) + standardize(w) + (1 | subj)", "lognormal"),
])
def test_statistics_match_pandas(formula, family):
    df = _data()
    design = build_design(formula, df, family=family)
    md = marginal_data(design, resolve_plan(design, "all"))
    st = dask_design(formula, dd.from_pandas(df, npartitions=5), family=family)
    got = st.md
    assert got.names == md.names and got.order == md.order
    assert got.levels == md.levels and got.dims == md.dims and got.n_obs == md.n_obs
    assert [b.name for b in st.blocks] == [b.name for b in design.blocks]
    for b in design.blocks:
        assert st.block(b.name).levels == b.levels and st.block(b.name).terms == b.terms
    assert st.fixed_names == design.fixed_names
    for f in FIELDS:
        a, b = getattr(got, f), getattr(md, f)
        if b is None:
            assert a is None, f
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(b).max()), err_msg=f)
    np.testing.assert_allclose(got.ete, md.ete, rtol=1e-10)
    for a, b in zip(got.S2, md.S2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(got.G21, md.G21):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.log_jacobian, design.log_jacobian, rtol=1e-12)
    for b in design.blocks:
        assert st.block(b.name).corr_groups == b.corr_groups
    m, ref = st.moments(), design.moments()
    np.testing.assert_allclose([m.y_mean, m.y_sd], [ref.y_mean, ref.y_sd], rtol=1e-10)
    np.testing.assert_allclose(m.x_mean, ref.x_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.x_sd, ref.x_sd, rtol=1e-10, atol=1e-12)
    for b in design.blocks:
        np.testing.assert_allclose(m.z_sd[b.name], ref.z_sd[b.name], rtol=1e-10, atol=1e-12)


def test_is_dask_frame():
    df = _data(50)
    assert is_dask_frame(dd.from_pandas(df, npartitions=2))
    assert not is_dask_frame(df)


def test_wrong_plan_names_all():
    df = _data(200)
    design = build_design("y ~ x + (1 | subj) + (1 | item)", df)
    with pytest.raises(ValueError, match="marginalize='all'"):
        check_dask_plan(resolve_plan(design, "subj"))
    check_dask_plan(resolve_plan(design, "all"))
    model = BayesLMM("y ~ x + (1 | subj) + (1 | item)", dd.from_pandas(df, npartitions=2))
    for plan in ("none", "subj", ["item"]):
        with pytest.raises(ValueError, match="marginalize='all'"):
            model.fit(draws=10, tune=10, chains=1, marginalize=plan)
    assert model.plan().sufficient  # "auto" means "all" on a Dask frame


def test_priors_match_pandas():
    df = _data(300)
    f = "y ~ x + w + (x | subj) + (1 | item)"
    a = BayesLMM(f, df).get_priors()
    b = BayesLMM(f, dd.from_pandas(df, npartitions=3)).get_priors()
    assert a[["prior", "class", "coef", "group", "source"]].astype(str).equals(
        b[["prior", "class", "coef", "group", "source"]].astype(str))


def test_single_level_factor_is_an_error():
    df = _data(100).assign(g="a")
    with pytest.raises(ValueError, match="'g' has 1 level"):
        dask_design("y ~ x + (1 | g)", dd.from_pandas(df, npartitions=3))


def test_stateful_transform_of_an_expression_is_an_error():
    ddf = dd.from_pandas(_data(100), npartitions=2)
    with pytest.raises(ValueError, match=r"scale\(\)"):
        dask_design("y ~ scale(x ** 2) + (1 | subj)", ddf)
    with pytest.raises(ValueError, match="constant"):
        dask_design("y ~ scale(k) + (1 | subj)", dd.from_pandas(_data(100).assign(k=1.0), npartitions=2))


@pytest.mark.parametrize("formula,family,column", [
    ("y | weights(pw) ~ x + w + (x | subj) + (1 | item)", "gaussian", None),
    ("y ~ x + (x || subj) + (1 | item)", "lognormal", "pw"),
])
def test_weighted_statistics_match_pandas(formula, family, column):
    """Precision weights (some 0, one partition with only zeros): the Dask statistics are the pandas ones."""
    import jax

    from bayeslmm.ops import marginal_logp

    df = _data()
    rng = np.random.default_rng(4)
    df["pw"] = rng.uniform(0.2, 3.0, len(df))
    df.loc[rng.choice(len(df), 30, replace=False), "pw"] = 0.0
    df.loc[:119, "pw"] = 0.0  # the whole first partition
    design = build_design(formula, df, family=family, weights=column)
    md = marginal_data(design, resolve_plan(design, "all"))
    st = dask_design(formula, dd.from_pandas(df, npartitions=5), family=family, weights=column)
    got = st.md
    assert md.n_positive == got.n_positive == int((df.pw > 0).sum())
    np.testing.assert_allclose(got.sum_log_w, md.sum_log_w, rtol=1e-12)
    np.testing.assert_allclose(st.log_jacobian, design.log_jacobian, rtol=1e-12)
    for f in FIELDS:
        a, b = getattr(got, f), getattr(md, f)
        if b is None:
            assert a is None, f
        else:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(b).max()), err_msg=f)
    for a, b in zip(got.S2 + got.G21, md.S2 + md.G21):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    Ls = [0.3 * np.eye(d) for d in (md.dims[md.order.index(k)] for k in range(md.n_factors))]
    beta = np.asarray(md.beta_hat) + 0.01
    with jax.enable_x64(True):
        a, b = (float(marginal_logp(m, beta, 0.8, Ls)) for m in (got, md))
    np.testing.assert_allclose(a, b, rtol=1e-10)
    assert st.weights_source == (column or "pw")
    m, ref = st.moments(), design.moments()  # unweighted, as for a pandas frame
    np.testing.assert_allclose([m.y_mean, m.y_sd], [ref.y_mean, ref.y_sd], rtol=1e-10)
    np.testing.assert_allclose(m.x_sd, ref.x_sd, rtol=1e-10, atol=1e-12)
    for b in design.blocks:
        np.testing.assert_allclose(m.z_sd[b.name], ref.z_sd[b.name], rtol=1e-10, atol=1e-12)


def test_weights_on_a_dask_frame_are_checked():
    df = _data(100).assign(pw=1.0)
    ddf = dd.from_pandas(df, npartitions=2)
    with pytest.raises(ValueError, match="given twice"):
        dask_design("y | weights(pw) ~ x + (1 | subj)", ddf, weights="pw")
    with pytest.raises(TypeError, match="must be a column name"):
        BayesLMM("y ~ x + (1 | subj)", ddf, weights=np.ones(100))
    with pytest.raises(ValueError, match="not a column"):
        dask_design("y ~ x + (1 | subj)", ddf, weights="nope")
    with pytest.raises(ValueError, match="non-negative"):
        dask_design("y ~ x + (1 | subj)", dd.from_pandas(df.assign(pw=-1.0), npartitions=2), weights="pw")
    with pytest.raises(ValueError, match="all zero"):
        dask_design("y ~ x + (1 | subj)", dd.from_pandas(df.assign(pw=0.0), npartitions=2), weights="pw")
