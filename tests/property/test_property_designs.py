"""Property-based checks: random valid designs against a dense reference; random bad inputs fail cleanly.

Designs are drawn as data frames (factors, levels, nesting, ``||``, up to
three effects per factor, numeric and categorical predictors), turned into a
design by :func:`bayeslmm.build_design`, and the marginal log-density of
:mod:`bayeslmm.ops.marginal` is compared with SciPy's dense multivariate
normal density of y ~ N(X beta, sigma^2 I + Z Lambda Lambda^T Z^T), Z built
densely from the data frame itself rather than from the design's blocks.
Derandomized so that the examples are the same on every run.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from bayeslmm import BayesLMM, build_design
from bayeslmm.model.formula import parse_formula
from bayeslmm.ops import MarginalData, marginal_logp

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@hs.composite
def designs(draw):
    seed = draw(hs.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_g = draw(hs.integers(2, 5))
    per = draw(hs.integers(2, 4))
    n = n_g * per * 2
    g = np.repeat(np.arange(n_g), n // n_g)
    data = pd.DataFrame({
        "x": rng.normal(size=n), "z": rng.normal(size=n),
        "c": rng.choice(["a", "b", "c"], size=n),
        "g": [f"g{i}" for i in g],
        "s": [f"s{i}" for i in rng.integers(0, draw(hs.integers(2, 4)), size=n)],
        "w": [f"w{i}" for i in np.arange(n) % 2],  # nested in g: g/w has 2 * n_g levels < n
    })
    data["c"] = np.tile(["a", "b", "c"], n // 3 + 1)[:n]
    slopes = draw(hs.sampled_from(["1", "x", "x + z"]))
    bar = draw(hs.sampled_from(["|", "||"]))
    second = draw(hs.sampled_from(["", " + (1 | s)", " + (1 | g:w)"]))
    fixed = draw(hs.sampled_from(["x", "x + c", "x * z", "c"]))
    formula = f"y ~ {fixed} + ({slopes} {bar} g){second}"
    data["y"] = rng.normal(size=n)
    return formula, data, seed


@SETTINGS
@given(designs(), hs.integers(0, 1000))
def test_marginal_logp_matches_dense(case, pseed):
    formula, data, _ = case
    design = build_design(formula, data)
    rng = np.random.default_rng(pseed)
    Ls = []
    for b in design.blocks:
        L = np.zeros((b.dim, b.dim))
        for grp in b.corr_groups:
            k = len(grp)
            A = np.tril(rng.normal(size=(k, k)) * 0.5)
            A[np.diag_indices(k)] = rng.uniform(0.2, 1.5, size=k)
            L[np.ix_(grp, grp)] = A
        Ls.append(L)
    beta = rng.normal(size=design.X.shape[1])
    sigma = float(rng.uniform(0.3, 2.0))
    # Dense reference: Z from the raw frame's columns, not the design's blocks.
    n = design.n
    Zs, lams = [], []
    for b, L in zip(design.blocks, Ls):
        Zk = np.zeros((n, b.n_levels * b.dim))
        for a in range(b.dim):
            Zk[np.arange(n), b.group_index * b.dim + a] = b.values[:, a]
        Zs.append(Zk)
        lams.append(np.kron(np.eye(b.n_levels), L))
    Z = np.hstack(Zs)
    from scipy.linalg import block_diag
    ZL = Z @ block_diag(*lams)
    cov = sigma**2 * np.eye(n) + ZL @ ZL.T
    ref = st.multivariate_normal.logpdf(design.y, design.X @ beta, cov)
    for sufficient in (False, True):
        md = MarginalData.build(design.y, design.X, list(design.blocks), sufficient)
        with jax.enable_x64(True):
            got = float(marginal_logp(md, beta, sigma, Ls))
        assert abs(got - ref) <= 1e-8 * max(1.0, abs(ref)), (formula, sufficient, got, ref)


@SETTINGS
@given(designs())
def test_design_rows_and_levels_match_data(case):
    """The blocks encode the data frame: one row per observation, levels of g as in the data."""
    formula, data, _ = case
    design = build_design(formula, data)
    g = next(b for b in design.blocks if b.name == "g")
    assert g.n_levels == data["g"].nunique()
    codes = pd.factorize(data["g"])[0]
    # Same partition of rows (level order may differ): codes map one-to-one.
    pairs = set(zip(codes, g.group_index))
    assert len(pairs) == g.n_levels


junk = hs.one_of(hs.none(), hs.booleans(), hs.integers(-10**6, 10**6), hs.floats(allow_nan=True),
                 hs.text(max_size=8), hs.lists(hs.integers(), max_size=3))


@SETTINGS
@given(junk, junk, junk)
def test_random_bad_fit_arguments_raise_value_or_type_error(draws, chains, target_accept):
    data = pd.DataFrame({"y": np.arange(12.0) % 5, "x": np.arange(12.0), "g": np.repeat(list("abcd"), 3)})
    m = BayesLMM("y ~ x + (1|g)", data)
    valid_int = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1  # noqa: E731
    valid_p = isinstance(target_accept, float) and 0 < target_accept < 1
    if valid_int(draws) and valid_int(chains) and valid_p:
        return  # a valid call would sample; only invalid ones are under test
    with pytest.raises((ValueError, TypeError)):
        m.fit(draws=draws, chains=chains, target_accept=target_accept, tune=0)


@SETTINGS
@given(hs.text(max_size=30))
def test_random_formula_text_raises_value_or_type_error(text):
    data = pd.DataFrame({"y": np.arange(12.0) % 5, "x": np.arange(12.0), "g": np.repeat(list("abcd"), 3)})
    try:
        BayesLMM(text, data)
    except (ValueError, TypeError):
        pass


@SETTINGS
@given(hs.text(max_size=20), hs.sampled_from(["b", "sd", "sigma", "Intercept", "cor"]))
def test_random_prior_text_raises_value_error(text, cls):
    from bayeslmm import Prior
    try:
        Prior(text, cls=cls)
    except ValueError:
        pass


def test_parse_formula_is_total_on_simple_inputs():
    assert parse_formula("y ~ x + (1 | g)").response == "y"
