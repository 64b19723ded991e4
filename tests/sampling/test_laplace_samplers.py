"""Every sampler runs the Laplace-marginal log-density (the PyTensor Op on the C backend for "pymc", its
JAX kernel for the others). Reference: NumPyro's posterior of the same tiny model, compared loosely
(100 draws per chain: Monte Carlo error of a mean about 0.1 posterior SD)."""


import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM

KW = dict(chains=2, draws=100, tune=100, random_seed=1, progressbar=False, marginalize="all",
          approximation="laplace")


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 8)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.5, 6)[g]))
    return BayesLMM("y ~ x + (1 | g)", pd.DataFrame(dict(g=g, x=x, y=y)), family="poisson")


@pytest.fixture(scope="module")
def reference(model):
    return model.fit(sampler="numpyro", **KW)


@pytest.mark.filterwarnings("ignore:Parts of the model have not converged")
@pytest.mark.filterwarnings("ignore:approximation='laplace' integrates out")
@pytest.mark.parametrize("sampler", ["blackjax", "nutpie", "pymc"])
def test_sampler_runs_the_laplace_plan(model, reference, sampler):
    fit = model.fit(sampler=sampler, **KW)
    assert fit.plan.approximation == "laplace" and fit.plan.marginalized == ("g",)
    # The effects were integrated out and drawn afterwards, not sampled.
    assert "r_g" in fit.posterior and "L_g" not in fit.posterior
    for name in ("fixef", "sd_g", "r_g"):
        a, b = fit.posterior[name].values, reference.posterior[name].values
        assert a.shape == b.shape and np.all(np.isfinite(a))
        a, b = a.reshape(-1, *a.shape[2:]), b.reshape(-1, *b.shape[2:])
        if name == "sd_g":
            a, b = np.abs(a), np.abs(b)
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 0.6 * b.std(0)), (name, a.mean(0), b.mean(0), b.std(0))
