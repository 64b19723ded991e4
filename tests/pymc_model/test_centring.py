"""Partially non-centred sampled effects (bayeslmm.pymc_model.centring, builder) and the moment estimates they use."""

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM
from bayeslmm.pymc_model.builder import _centring, _intercept_centred, build_model
from bayeslmm.model.design import ReBlock
from bayeslmm.model.moments import MIN_LEVELS, moment_sds, variance_components
from bayeslmm.pymc_model.centring import centring_weights

blk = ReBlock.of


def _one_way(n_levels=300, per_level=20, tau=(0.5, 0.3), sigma=1.0, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_levels), per_level)
    x = rng.normal(size=g.size)
    V = np.column_stack([np.ones_like(x), x])
    u = rng.normal(size=(n_levels, 2)) * np.asarray(tau)
    y = 2.0 + 0.5 * x + (V * u[g]).sum(1) + rng.normal(0, sigma, g.size)
    return y, x, g, V


def test_moment_sds_recover_the_truth():
    y, x, g, V = _one_way()
    X = np.column_stack([np.ones_like(x), x])
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    s2, tau2 = moment_sds(resid, g, V, 300)
    assert s2 == pytest.approx(1.0, abs=0.05)
    # SE of each tau^2 about sqrt(2 / 300) (tau^2 + sigma^2 / 20): 0.02
    np.testing.assert_allclose(tau2, [0.25, 0.09], atol=0.07)


def test_weights_follow_the_data_per_level():
    # Levels of 2 to 60 rows: w = a t / (1 + a t) grows with the rows.
    rng = np.random.default_rng(1)
    sizes = rng.integers(2, 61, size=200)
    g = np.repeat(np.arange(200), sizes)
    u = rng.normal(0, 0.5, 200)
    y = 1.0 + u[g] + rng.normal(0, 1.0, g.size)
    w = centring_weights(y, np.ones((g.size, 1)), [blk(g, np.ones((g.size, 1)), 200)])[0]
    assert w.shape == (200, 1) and (w >= 0).all() and (w <= 1).all()
    order = np.argsort(sizes)
    assert np.all(np.diff(w[order, 0]) >= -1e-12)
    # with tau^2 = 0.25 and sigma^2 = 1: w about n / (n + 4)
    np.testing.assert_allclose(w[:, 0], sizes / (sizes + 4.0), atol=0.12)


def test_too_few_levels_or_no_spread():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(MIN_LEVELS - 1), 30)
    ones = np.ones((g.size, 1))
    s2, tau2 = moment_sds(rng.normal(size=g.size), g, ones, MIN_LEVELS - 1)
    assert s2 > 0 and not tau2.any()
    # Identical level means: no between-level spread, weights near 0 (non-centred).
    g = np.tile(np.arange(40), 10)
    y = np.tile(np.linspace(-1, 1, 10), (40, 1)).T.ravel()
    assert centring_weights(y, np.ones((g.size, 1)), [blk(g, np.ones((g.size, 1)), 40)])[0].max() < 0.05


def test_nested_factors_share_out_the_variance():
    # Broods within locations (as in grouseticks): one-way, the locations
    # take the broods' variance as their own; estimated together they do not.
    rng = np.random.default_rng(5)
    brood = np.repeat(np.arange(150), 4)
    loc = brood // 2
    y = rng.normal(0, 0.1, 75)[loc] + rng.normal(0, 1.0, 150)[brood] + rng.normal(0, 0.5, brood.size)
    ones = np.ones((y.size, 1))
    resid = y - y.mean()
    assert moment_sds(resid, loc, ones, 75)[1][0] > 0.3
    s2, (t_brood, t_loc) = variance_components(y, ones, [blk(brood, ones, 150), blk(loc, ones, 75)])
    assert s2 == pytest.approx(0.25, abs=0.06)
    assert t_brood[0] == pytest.approx(1.0, abs=0.3)
    assert t_loc[0] < 0.1


@pytest.fixture
def crossed_uncorrelated():
    rng = np.random.default_rng(4)
    s = np.repeat(np.arange(30), 12)
    it = np.tile(np.arange(12), 30)
    x = rng.choice([-0.5, 0.5], s.size)
    y = 1 + 0.3 * x + rng.normal(0, 0.6, 30)[s] + rng.normal(0, 0.4, 30)[s] * x + rng.normal(0, 0.3, 12)[it] \
        + rng.normal(0, 0.5, s.size)
    return pd.DataFrame({"y": y, "x": x, "s": s.astype(str), "i": it.astype(str)})


def test_same_model_as_non_centred(crossed_uncorrelated):
    """Same density of (parameters, effects): log p differs by the log-Jacobian of z -> r alone."""
    m = BayesLMM("y ~ x + (1 + x || s) + (1 | i)", crossed_uncorrelated)
    plan = m.plan("none")
    pnc = build_model(m.design, m.priors, plan, partial_centring=True)
    nc = build_model(m.design, m.priors, plan, partial_centring=False)
    blocks = m.design.blocks
    w = dict(zip([b.name for b in blocks], centring_weights(m.design.y, m.design.X, blocks)))
    assert all(0.2 < v.mean() < 1 for v in w.values())  # both factors partially centred
    # One crossed factor, the one with the most centred intercepts (s: SD 0.6 over 12 rows), is centred
    # on the model intercept.
    assert _intercept_centred(m.design, _centring(m.design, plan, True)) == "s"
    lp_pnc, lp_nc = pnc.compile_logp(), nc.compile_logp()
    names = [b.name for b in blocks]
    r_of = pnc.compile_fn(pnc.replace_rvs_by_values([pnc[f"r_{n}"] for n in names]), inputs=pnc.value_vars,
                          on_unused_input="ignore")
    rng = np.random.default_rng(0)
    for _ in range(3):
        pt = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pnc.initial_point().items()}
        q = dict(pt)
        jac = 0.0
        for b, r in zip(blocks, r_of(pt)):
            sd = np.exp(np.array([pt[f"sd_{b.name}__{t}_log__"] for t in b.terms]))
            # z -> r is z * sd^(1 - w) shifted by w * Intercept (s) or not (i): the same Jacobian.
            q[f"z_{b.name}"] = r / sd
            # log |dr/dz|: (1 - w) log sd for the partially centred, log sd for the non-centred
            jac += ((1 - w[b.name]) * np.log(sd)).sum() - (np.log(sd) * np.ones_like(r)).sum()
        assert lp_pnc(pt) - lp_nc(q) == pytest.approx(jac, rel=1e-9, abs=1e-8)


def test_correlated_factors_stay_non_centred(crossed_uncorrelated):
    m = BayesLMM("y ~ x + (1 + x | s) + (1 | i)", crossed_uncorrelated)
    model = build_model(m.design, m.priors, m.plan("none"))
    # correlated s: z ~ N(0, 1); uncorrelated i: z ~ N(0, sd^w)
    from pytensor.graph.traversal import ancestors

    scale_s, scale_i = model["z_s"].owner.inputs[-1], model["z_i"].owner.inputs[-1]
    assert np.all(scale_s.eval() == 1.0)
    assert model["sd_i__Intercept"] in set(ancestors([scale_i]))


def test_degenerate_responses_give_finite_weights():
    g = np.repeat(np.arange(20), 5)
    ones = np.ones((100, 1))
    with np.errstate(all="raise"):
        # Level means alone, no residual noise: fully centred.
        w = centring_weights(np.arange(20.0)[g], ones, [blk(g, ones, 20)])[0]
        assert np.all(np.isfinite(w)) and w.min() > 0.99
        # Nothing left after the fixed effects: non-centred.
        assert not centring_weights(np.ones(100), ones, [blk(g, ones, 20)])[0].any()


def test_nested_factor_centred_on_its_parent_same_model():
    """Pastes-shaped nesting: the inner factor is centred on its parent's location, the outer on the intercept;
    the density of (parameters, effects) is the non-centred one's up to the log-Jacobian of z -> r."""
    from bayeslmm.pymc_model.builder import _centring
    from bayeslmm.simulate import simulate_nested

    df, _ = simulate_nested(seed=1)
    m = BayesLMM("y ~ 1 + (1 | outer/inner)", df)
    plan = m.plan("none")
    pnc = build_model(m.design, m.priors, plan)
    nc = build_model(m.design, m.priors, plan, partial_centring=False)
    cen = _centring(m.design, plan, True)
    w = {name: v[0] for name, v in cen.items()}
    assert cen["outer:inner"][1][0] == "outer" and cen["outer"][1] is None
    assert w["outer:inner"].min() > 0.9  # casks: much data per level relative to their variance
    assert w["outer"].max() < 0.7  # batches: their data reach them only through the casks
    r_of = pnc.compile_fn(pnc.replace_rvs_by_values([pnc["r_outer"], pnc["r_outer:inner"]]), inputs=pnc.value_vars,
                          on_unused_input="ignore")
    lp_pnc, lp_nc = pnc.compile_logp(), nc.compile_logp()
    rng = np.random.default_rng(0)
    for _ in range(3):
        pt = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pnc.initial_point().items()}
        rs = dict(zip(["outer", "outer:inner"], r_of(pt)))
        q, jac = dict(pt), 0.0
        for name, r in rs.items():
            sd = np.exp(pt[f"sd_{name}__Intercept_log__"])
            q[f"z_{name}"] = r / sd
            jac += ((1 - w[name]) * np.log(sd) * np.ones_like(r)).sum() - np.log(sd) * r.size
        assert lp_pnc(pt) - lp_nc(q) == pytest.approx(jac, rel=1e-9, abs=1e-8)


def test_crossed_bernoulli_centred_on_intercept_same_model():
    """sim_bernoulli, correlated subjects (non-centred) crossed with items (mostly centred, on the intercept):
    the log-density of (parameters, effects) is the non-centred one's up to the log-Jacobian of z -> r."""
    from bayeslmm.datasets import load_dataset

    d = load_dataset("sim_bernoulli")
    d = d[d["subj"].isin(sorted(d["subj"].unique())[:60])]
    m = BayesLMM("correct ~ 1 + cond + (1 + cond | subj) + (1 | item)", d, family="bernoulli")
    plan = m.plan("none")
    cen = _centring(m.design, plan, True)
    assert set(cen) == {"item"} and cen["item"][0].mean() > 0.5
    assert _intercept_centred(m.design, cen) == "item"
    pnc = build_model(m.design, m.priors, plan)
    nc = build_model(m.design, m.priors, plan, partial_centring=False)
    # The intercept enters the centred item effects' prior mean: the model is not the non-centred one's graph.
    from pytensor.graph.traversal import ancestors

    assert pnc["Intercept_centered"] in set(ancestors([pnc["z_item"].owner.inputs[-2]]))
    w = cen["item"][0]
    r_of = pnc.compile_fn(pnc.replace_rvs_by_values([pnc["r_item"]]), inputs=pnc.value_vars,
                          on_unused_input="ignore")
    r_nc_of = nc.compile_fn(nc.replace_rvs_by_values([nc["r_item"]]), inputs=nc.value_vars, on_unused_input="ignore")
    lp_pnc, lp_nc = pnc.compile_logp(), nc.compile_logp()
    rng = np.random.default_rng(0)
    for _ in range(3):
        pt = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in pnc.initial_point().items()}
        r = r_of(pt)[0]
        sd = np.exp(pt["sd_item__Intercept_log__"])
        q = dict(pt, z_item=r / sd)
        jac = ((1 - w) * np.log(sd)).sum() - np.log(sd) * r.size
        assert lp_pnc(pt) - lp_nc(q) == pytest.approx(jac, rel=1e-9, abs=1e-8)
        # and the effects the data see are the ones the non-centred model gives from q
        np.testing.assert_allclose(r_nc_of(q)[0], r, rtol=1e-12, atol=1e-12)
