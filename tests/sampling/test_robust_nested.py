"""Regression: every-effect-sampled fits of a textbook nested design do not get stuck."""

import warnings

import pytest

from bayeslmm import BayesLMM
from bayeslmm.datasets import load_dataset

import arviz as az
import numpy as np


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4])
def test_pastes_none_mixes(seed):
    """Pastes, ``strength ~ 1 + (1 | batch/cask)``, marginalize="none": with the casks centred on their batch
    and the batches on the intercept, 2 chains x 300 draws mix (the non-centred casks gave Rhat 1.07 and a
    min bulk ESS of 26 in 1000 draws at seed 1). Over seeds 1-16 the mixing fits gave a min bulk ESS of
    96-258 and a max Rhat of 1.011-1.043: the bounds sit between those and the stuck fit's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesLMM("strength ~ 1 + (1 | batch/cask)", load_dataset("Pastes")).fit(
            draws=300, tune=300, chains=2, random_seed=seed, marginalize="none", progressbar=False)
    post = fit.posterior[["fixef", "sigma", "sd_batch", "sd_batch:cask", "r_batch", "r_batch:cask"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        max_rhat = max(float(np.max(v)) for v in az.rhat(post).data_vars.values())
        min_ess = min(float(np.min(v)) for v in az.ess(post, method="bulk").data_vars.values())
    assert max_rhat < 1.05 and min_ess > 60, (max_rhat, min_ess)
