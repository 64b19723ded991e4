"""Laplace-marginalized fits through the results layer, one tiny fit per family.

References: scipy's densities on the same draws (pointwise log-likelihood),
an independent per-level Newton solve in NumPy (the recovered effects are
draws from N(mode, 1/H)), and the exact marginal model (gaussian: the
Laplace log-density of the whole PyMC model equals the exact one).
"""

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytest
from scipy import stats

import bayeslmm
from bayeslmm import BayesLMM
from bayeslmm.model.plan import resolve_plan
from bayeslmm.posterior.predict import linear_predictor, prediction_rows
from bayeslmm.posterior.recover import stack_draws
from bayeslmm.pymc_model import build_model

# name -> formula, BayesLMM keywords, marginalize
CASES = {
    "poisson": ("yc ~ x + offset(log(z)) + (1 | g) + (1 | h)", {"family": "poisson"}, "g"),
    "bernoulli": ("yb ~ x + (1 | g)", {"family": "bernoulli"}, "all"),
    "binomial": ("cbind(s, f) ~ x + (1 | g)", {"family": "binomial", "link": "probit"}, "all"),
    "negbinomial": ("yc ~ x + (x | g)", {"family": "negbinomial"}, "all"),
}
N_LEVELS, PER = 12, 10


def _data(seed=3):
    rng = np.random.default_rng(seed)
    n = N_LEVELS * PER
    g = np.repeat(np.arange(N_LEVELS), PER)
    h = np.tile(np.arange(5), n // 5)
    x = rng.normal(size=n)
    eta = 0.2 + 0.5 * x + rng.normal(0, 0.6, N_LEVELS)[g] + rng.normal(0, 0.3, 5)[h]
    p = 1 / (1 + np.exp(-eta))
    s = rng.binomial(6, p)
    z = rng.uniform(1, 2, n)
    return pd.DataFrame(dict(g=g, h=h, x=x, z=z, yb=rng.binomial(1, p), s=s, f=6 - s, yc=rng.poisson(np.exp(eta) * z)))


def _bernoulli_few(seed=5):
    """30 levels of 4 rows: few trials per level, where the Laplace plan must warn."""
    df = _data(seed)
    rng = np.random.default_rng(seed)
    df = pd.concat([df] * 1, ignore_index=True)
    df["g"] = np.repeat(np.arange(30), 4)[:len(df)]
    df["yb"] = rng.binomial(1, 1 / (1 + np.exp(-(0.2 + 0.5 * df.x + rng.normal(0, 0.8, 30)[df.g]))))
    return df


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request):
    formula, kw, marg = CASES[request.param]
    df = _bernoulli_few() if request.param == "bernoulli" else _data()
    m = BayesLMM(formula, df, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = m.fit(chains=2, draws=150, tune=200, random_seed=4, progressbar=False, marginalize=marg,
                    approximation="laplace")
    # Convergence warnings of a 150-draw fit are not what is tested; the Laplace warning is.
    laplace = [w for w in caught if "approximation='laplace'" in str(w.message)]
    return request.param, df, fit, laplace


def _reference_logpdf(name, fit, df, eta):
    post = fit.posterior
    if name == "bernoulli":
        return stats.bernoulli.logpmf(df.yb, 1 / (1 + np.exp(-eta)))
    if name == "binomial":
        return stats.binom.logpmf(df.s, df.s + df.f, stats.norm.cdf(eta))
    if name == "poisson":
        return stats.poisson.logpmf(df.yc, np.exp(eta))
    k = stack_draws(post["shape"])[:, None]
    return stats.nbinom.logpmf(df.yc, k, k / (k + np.exp(eta)))


def test_plan_tables_and_warning(fitted):
    name, df, fit, laplace = fitted
    assert fit.plan.approximation == "laplace"
    assert (len(laplace) == 1) == (name == "bernoulli")
    if name == "bernoulli":
        assert "'g' (median 4 trials per level)" in str(laplace[0].message)
        assert "marginalize='none'" in str(laplace[0].message)
        assert laplace[0].filename == __file__  # at the user's call site
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = str(fit.summary())
        fit.summary()
    again = [w for w in caught if "approximation='laplace'" in str(w.message)]
    assert len(again) == (name == "bernoulli") and all(w.filename == __file__ for w in again)
    assert "Laplace approximation" in text and "Multilevel Hyperparameters" in text
    assert set(fit.fixef().index) == {"Intercept", "x"}
    for g in fit.plan.marginalized:
        assert f"r_{g}" in fit.posterior and f"L_{g}" not in fit.posterior
        assert fit.posterior[f"r_{g}"].shape[:2] == (2, 150)
    assert set(fit.ranef()) == {b.name for b in fit.design.blocks}
    coef = fit.coef()["g"]
    # coef = fixef + ranef per level, draw by draw: the means add.
    np.testing.assert_allclose(coef[("Intercept", "Estimate")].to_numpy(),
                               fit.fixef().loc["Intercept", "Estimate"]
                               + fit.ranef()["g"][("Intercept", "Estimate")].to_numpy(), atol=1e-8)
    vc = fit.varcorr(layout="long")
    assert ("g", "sd(Intercept)") in vc.index and not any(g == "Residual" for g, _ in vc.index)


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_pointwise_loglik_uses_recovered_effects(fitted):
    name, df, fit, _ = fitted
    ll = bayeslmm.posterior.loglik.log_likelihood(fit).values.reshape(-1, len(df))
    post = fit.posterior
    # eta by hand from the draws: fixef, the recovered and the sampled effects, the offset.
    X = np.column_stack([np.ones(len(df)), df.x])
    eta = stack_draws(post["fixef"]) @ X.T + np.asarray(fit.design.offset)
    for b in fit.design.blocks:
        r = stack_draws(post[f"r_{b.name}"])
        eta = eta + np.einsum("snd,nd->sn", r[:, b.group_index, :], b.values)
    np.testing.assert_allclose(ll, _reference_logpdf(name, fit, df, eta), rtol=1e-9, atol=1e-9)
    assert np.isfinite(fit.loo().elpd_loo)


def test_predict_posterior_predictive_and_round_trip(fitted, tmp_path):
    name, df, fit, _ = fitted
    link, mean = fit.predict(kind="link", summary=False), fit.predict(kind="mean", summary=False)
    resp = fit.predict(kind="response", random_seed=1, summary=False)
    assert link.shape == mean.shape == resp.shape == (300, len(df))
    eta = linear_predictor(fit.posterior, prediction_rows(fit.design, None, None, False))
    np.testing.assert_allclose(link, eta + np.asarray(fit.design.offset))
    if name == "binomial":
        np.testing.assert_allclose(mean, 6 * stats.norm.cdf(link))
    if name in ("poisson", "negbinomial"):
        np.testing.assert_allclose(mean, np.exp(link))
    idata = fit.posterior_predictive(random_seed=0)
    assert idata.posterior_predictive["y"].shape == (2, 150, len(df))
    path = tmp_path / "fit.nc"
    fit.save(path)
    back = bayeslmm.load(path)
    assert back.plan == fit.plan and "Laplace approximation" in back.plan.describe()
    np.testing.assert_allclose(back.predict(df, kind="mean", summary=False), mean)


def test_the_recovery_consumes_the_samplers_modes(fitted):
    """bayeslmm's NUTS hands the Laplace recovery its mode at each draw; the fit keeps nothing internal."""
    from bayeslmm.sampling.driver import INNER_MODE

    _, _, fit, _ = fitted
    assert INNER_MODE not in fit.posterior and not [v for v in fit.posterior.data_vars if v.startswith("L_")]


# The scalar per-level reference needs intercept-only effects; negbinomial's are correlated (x | g).
@pytest.mark.parametrize("fitted", [c for c in CASES if c != "negbinomial"], indirect=True)
def test_recovered_effects_are_draws_from_the_laplace_gaussian(fitted):
    """Intercept-only marginalized factor: per draw and level, (v - v_hat) sqrt(H) ~ N(0, 1), with the
    mode and curvature found here by a scalar Newton solve per level in NumPy (poisson: the sampled
    factor's effects and the offset enter the linear predictor)."""
    name, df, fit, _ = fitted
    post = fit.posterior
    beta = stack_draws(post["fixef"])
    sd = np.abs(stack_draws(post["sd_g"])[:, 0])
    r = stack_draws(post["r_g"])[:, :, 0]
    X = np.column_stack([np.ones(len(df)), df.x])
    g = df.g.to_numpy()
    M = g.max() + 1
    y = {"bernoulli": df.yb, "binomial": df.s, "poisson": df.yc}[name].to_numpy()
    n = (df.s + df.f).to_numpy() if name == "binomial" else np.ones(len(df))
    fixed = beta @ X.T + np.asarray(fit.design.offset)
    if name == "poisson":
        h = fit.design.block("h")
        fixed = fixed + stack_draws(post["r_h"])[:, h.group_index, 0]

    def derivs(e):
        if name == "poisson":
            return y - np.exp(e), np.exp(e)
        if name == "bernoulli":
            p = 1 / (1 + np.exp(-e))
            return y - n * p, n * p * (1 - p)
        # probit: l = y log Phi(e) + (n - y) log Phi(-e); derivatives by central differences of the analytic g
        def grad(e):
            return y * np.exp(stats.norm.logpdf(e) - stats.norm.logcdf(e)) \
                - (n - y) * np.exp(stats.norm.logpdf(e) - stats.norm.logcdf(-e))
        h = 1e-5
        return grad(e), -(grad(e + h) - grad(e - h)) / (2 * h)

    zs = []
    for s in range(0, beta.shape[0], 3):
        base = fixed[s]
        v = np.zeros(M)
        for _ in range(50):
            gr, w = derivs(base + sd[s] * v[g])
            grad_v = sd[s] * np.bincount(g, gr, M) - v
            H = 1 + sd[s] ** 2 * np.bincount(g, w, M)
            v = v + grad_v / H
            if np.max(np.abs(grad_v / H)) < 1e-10:
                break
        _, w = derivs(base + sd[s] * v[g])
        H = 1 + sd[s] ** 2 * np.bincount(g, w, M)
        zs.append((r[s] / sd[s] - v) * np.sqrt(H))
    z = np.concatenate(zs)
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 0.15


def test_gaussian_laplace_model_equals_the_exact_marginal_model():
    """(a) Through the whole PyMC model: gaussian with the Laplace plan has the exact plan's log-density
    and gradient at the same point (crossed, one factor partial)."""
    df = _data()
    df["yg"] = 0.5 * df.x + np.random.default_rng(0).normal(size=len(df)) + df.g * 0.1
    m = BayesLMM("yg ~ x + (x | g) + (1 | h)", df)
    for marg in ("g",):
        exact = build_model(m.design, m.priors, resolve_plan(m.design, marg))
        lap = build_model(m.design, m.priors, resolve_plan(m.design, marg, "laplace"))
        point = exact.initial_point()
        rng = np.random.default_rng(1)
        point = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in point.items()}
        vals = []
        for model in (exact, lap):
            f = pytensor.function(model.value_vars, [model.logp(), model.dlogp()], mode="FAST_RUN")
            vals.append(f(*[point[v.name] for v in model.value_vars]))
        assert abs(vals[0][0] - vals[1][0]) < 1e-10 * abs(vals[0][0])
        np.testing.assert_allclose(vals[1][1], vals[0][1], rtol=1e-8, atol=1e-8)
