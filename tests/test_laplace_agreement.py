"""(c) Posterior agreement of the Laplace plan with exact HMC ("none") where the approximation is good.

Simulated poisson data with many observations per level (20 levels x 50
rows): the Laplace error per level is O(1/n_j), so the posteriors must
agree. Reference: the same model fitted with every effect sampled. Fixed
effects and SDs: posterior means within 0.25 posterior SD (the Monte Carlo
error of the difference of two means with ~500 effective draws each is
about 0.06 posterior SD).
"""

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM

pytestmark = pytest.mark.slow


def _poisson(seed=11, n_levels=20, per=50):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_levels), per)
    x = rng.normal(size=g.size)
    u = rng.normal(0, 0.5, n_levels)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + u[g]))
    return pd.DataFrame(dict(g=g, x=x, y=y))


def test_laplace_agrees_with_exact_poisson_many_obs_per_level():
    m = BayesLMM("y ~ x + (1 | g)", _poisson(), family="poisson")
    kw = dict(chains=2, draws=600, tune=400, random_seed=2, progressbar=False)
    lap = m.fit(marginalize="all", approximation="laplace", **kw)
    exact = m.fit(marginalize="none", **kw)
    for name, sel in [("fixef", dict(fixef_term="Intercept")), ("fixef", dict(fixef_term="x")),
                      ("sd_g", dict(g__effect="Intercept"))]:
        a = lap.posterior[name].sel(**sel).values.ravel()
        b = exact.posterior[name].sel(**sel).values.ravel()
        assert abs(a.mean() - b.mean()) < 0.25 * b.std(), (name, sel, a.mean(), b.mean(), b.std())
        assert 0.8 < a.std() / b.std() < 1.25, (name, sel, a.std(), b.std())
    # The recovered effects' posterior means per level follow the sampled ones.
    ra = lap.posterior["r_g"].mean(("chain", "draw")).values.ravel()
    rb = exact.posterior["r_g"].mean(("chain", "draw")).values.ravel()
    sd = exact.posterior["r_g"].std(("chain", "draw")).values.ravel()
    assert np.max(np.abs(ra - rb) / sd) < 0.35
