"""Fits shared by the effects, marginal-means and hypothesis tests: one gaussian, one bernoulli."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM, Prior


def _factorial(seed):
    """A 2 x 2 factorial (cond x g) with a numeric covariate x, 10 subjects, unbalanced cells."""
    rng = np.random.default_rng(seed)
    n = 160
    df = pd.DataFrame({"subj": np.tile([f"s{i}" for i in range(10)], n // 10),
                       "cond": rng.choice(["a", "b"], n, p=[0.6, 0.4]),
                       "g": np.repeat(["u", "v"], n // 2),
                       "x": rng.normal(1.0, 2.0, n)})
    u = rng.normal(0, 0.3, 10)[np.arange(n) % 10]
    df["eta"] = 0.2 + 0.3 * df.x + 0.5 * (df.cond == "b") - 0.4 * (df.g == "v") + 0.3 * (
        (df.cond == "b") & (df.g == "v")) + u
    return df, rng


@pytest.fixture(scope="session")
def gaussian_fit():
    """log(rt) ~ x + cond * g + (1 | subj), the subject effects marginalized, prior draws kept."""
    df, rng = _factorial(11)
    df["rt"] = np.exp(6 + 0.2 * df["eta"] + rng.normal(0, 0.2, len(df)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes at 200 draws are not under test here
        return BayesLMM("log(rt) ~ x + cond * g + (1 | subj)", df, priors=[Prior("normal(0, 1)", cls="b")]).fit(
            chains=2, draws=200, tune=200, random_seed=5, progressbar=False, sample_prior=True)


@pytest.fixture(scope="session")
def bernoulli_fit():
    """y ~ x + cond + (1 | subj), bernoulli, every effect sampled."""
    df, rng = _factorial(12)
    df["y"] = (rng.random(len(df)) < 1 / (1 + np.exp(-df["eta"]))).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM("y ~ x + cond + (1 | subj)", df, family="bernoulli").fit(
            chains=2, draws=200, tune=200, random_seed=6, progressbar=False)
