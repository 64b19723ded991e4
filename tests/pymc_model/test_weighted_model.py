"""Precision weights under marginalized plans: the model's likelihood term and a fit against "none".

The likelihood term of a marginalized model is checked at random points
against the dense density of the original response (lognormal: the
multivariate normal density of log y minus sum log y over the rows that enter
the likelihood), including rows of weight 0 and a plan with a sampled factor
(rows mode with an offset).
"""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from scipy.linalg import block_diag

from bayeslmm import BayesLMM
from bayeslmm.pymc_model.builder import build_model

FORMULA = "rt ~ cond + (cond | subj) + (1 | item)"


def _data(seed=0, n_subj=8, n_item=6):
    rng = np.random.default_rng(seed)
    rows = [(s, i, c) for s in range(n_subj) for i in range(n_item) for c in (-0.5, 0.5)]
    df = pd.DataFrame(rows, columns=["subj", "item", "cond"])
    n = len(df)
    df["w"] = rng.choice([0.25, 1.0, 4.0], n)
    u = rng.normal(0, [0.3, 0.1], (n_subj, 2))
    v = rng.normal(0, 0.2, n_item)
    eta = 6 + 0.1 * df.cond + u[df.subj, 0] + u[df.subj, 1] * df.cond + v[df.item]
    df["rt"] = np.exp(eta + rng.normal(0, 0.3 / np.sqrt(df.w)))
    df["subj"] = "s" + df.subj.astype(str)
    df["item"] = "i" + df.item.astype(str)
    return df


def _likelihood_and_point(model, point):
    """The model's likelihood term and the deterministics the dense reference needs, at ``point``."""
    names = ["fixef", "sigma", "sd_subj", "cor_subj", "sd_item"] + [n for n in ("r_item",) if n in model.named_vars]
    outs = model.replace_rvs_by_values(list(model.potentials) + [model[n] for n in names])
    vals = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)
    return vals[0], dict(zip(names, vals[1:]))


def _dense(design, df, v, marginalized):
    """log p(rt) with the marginalized factors integrated out, densely, over rows with w > 0."""
    keep = df.w.to_numpy() > 0
    Zs, covs = [], []
    for b in design.blocks:
        if b.name not in marginalized:
            continue
        Z = np.zeros((design.n, b.n_levels * b.dim))
        for a in range(b.dim):
            Z[np.arange(design.n), b.group_index * b.dim + a] = b.values[:, a]
        sd = np.atleast_1d(v[f"sd_{b.name}"])
        cor = v[f"cor_{b.name}"] if b.dim > 1 else np.eye(1)
        Zs.append(Z)
        covs.append(np.kron(np.eye(b.n_levels), np.outer(sd, sd) * cor))
    Z = np.hstack(Zs)
    mean = design.X @ v["fixef"]
    if "r_item" in v and "item" not in marginalized:
        mean = mean + v["r_item"][design.block("item").group_index, 0]
    cov = Z @ block_diag(*covs) @ Z.T + v["sigma"] ** 2 * np.diag(1 / np.where(keep, df.w, 1.0))
    y = np.log(df.rt.to_numpy())
    return st.multivariate_normal.logpdf(y[keep], mean[keep], cov[np.ix_(keep, keep)]) - np.log(df.rt[keep]).sum()


@pytest.mark.parametrize("plan", ["all", "subj"])
def test_weighted_lognormal_marginal_term_is_the_dense_density(plan):
    df = _data()
    df.loc[[3, 17, 40], "w"] = 0.0  # rows that leave the likelihood
    m = BayesLMM(FORMULA, df, family="lognormal", weights="w")
    p = m.plan(plan)
    assert p.marginalized == (("subj", "item") if plan == "all" else ("subj",))
    model = build_model(m.design, m.priors, p)
    rng = np.random.default_rng(1 if plan == "all" else 2)
    for _ in range(3):
        point = {k: rng.normal(0, 0.3, np.shape(x)) for k, x in model.initial_point().items()}
        point["Intercept_centered"] = 6.0 + 0.1 * rng.normal()
        term, vals = _likelihood_and_point(model, point)
        np.testing.assert_allclose(term, _dense(m.design, df, vals, p.marginalized), rtol=1e-10)


def test_weighted_lognormal_term_at_zero_sds_is_a_sum_of_scipy_lognormals():
    """With every SD 0 the marginal is the product of the rows' own lognormal densities (SD sigma / sqrt(w))."""
    df = _data(seed=3)
    df.loc[[0, 5], "w"] = 0.0
    m = BayesLMM(FORMULA, df, family="lognormal", weights="w")
    model = build_model(m.design, m.priors, m.plan("all"))
    point = {k: np.zeros(np.shape(x)) for k, x in model.initial_point().items()}
    point.update(Intercept_centered=6.05, b=np.array([0.12]), sigma_log__=np.log(0.35))
    term, vals = _likelihood_and_point(model, point)
    assert np.all(vals["sd_subj"] == 0) and vals["sd_item"] == 0
    keep = df.w > 0
    mu = m.design.X @ vals["fixef"]
    ref = st.lognorm.logpdf(df.rt[keep], s=0.35 / np.sqrt(df.w[keep]), scale=np.exp(mu[keep])).sum()
    np.testing.assert_allclose(term, ref, rtol=1e-10)


def test_auto_may_marginalize_with_weights():
    df = _data()
    m = BayesLMM(FORMULA, df, family="lognormal", weights="w")
    assert m.plan("auto").marginalized  # this small, well-informed design: every factor
    for plan in ("all", "subj", ["subj", "item"]):
        assert m.plan(plan).marginalized


def test_weighted_gaussian_fit_all_agrees_with_none():
    """A weighted gaussian fit with every factor integrated out agrees with sampling every effect.

    The data have residual SD 0.3 / sqrt(w) with w in {0.25, 1, 4}: a fit that ignored the
    weights would put sigma near 0.40. 2 x 2000 draws: with 2 x 1000 the "none" fit's largest Rhat
    over seeds 8-15 was 1.002-1.012 after 500 warm-up iterations and 1.005-1.016 after 1000 (over
    1.01, and so a warning, for 2 and 1 of the 8), with 2 x 2000 after 1000 it was 1.001-1.005.
    """
    df = _data(seed=5, n_subj=10, n_item=8)
    df["y"] = np.log(df.rt)
    m = BayesLMM("y ~ cond + (cond | subj) + (1 | item)", df, weights="w")
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a correct fit warns about nothing
        for plan in ("all", "none"):
            fits[plan] = m.fit(chains=2, draws=2000, tune=1000, marginalize=plan, random_seed=11, progressbar=False)
    assert fits["all"].plan.sufficient and not fits["none"].plan.marginalized
    names = ["fixef", "sigma", "sd_subj", "sd_item", "r_subj", "r_item"]
    a, b = (az.summary(fits[k].idata, var_names=names) for k in ("all", "none"))
    se = np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    diff = (a["mean"] - b["mean"]).abs()
    sd = np.maximum(a["sd"], b["sd"])
    bad = diff[(diff > 0.25 * sd) & (diff > 4 * se)]
    assert bad.empty, f"posterior means differ: {bad.to_dict()}"
    sigma = float(a.loc["sigma", "mean"])
    assert abs(sigma - 0.3) < 0.05
    # Ignoring the weights, the residual SD would be 0.3 sqrt(mean(1 / w)), about 0.40.
    assert 0.3 * np.sqrt(np.mean(1 / df.w)) > sigma + 0.08
