"""U-turn checks between the halves of every NUTS subtree (bayeslmm.uturn)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS
from numpyro.infer import hmc_util

import bayeslmm.ops  # noqa: F401 - JAX in float64, as in every fit
from bayeslmm.uturn import extra_uturn_checks, supported


def _draws(potential, x0, step_size, checks, n=600, seed=1):
    with extra_uturn_checks(checks):
        kernel = NUTS(potential_fn=potential, step_size=step_size, adapt_step_size=False, adapt_mass_matrix=False)
        mcmc = MCMC(kernel, num_warmup=0, num_samples=n, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), init_params=x0, extra_fields=("num_steps",))
    return np.asarray(mcmc.get_samples()), np.asarray(mcmc.get_extra_fields()["num_steps"])


def test_installed_numpyro_is_the_one_the_checks_replace():
    # Otherwise fits silently run NumPyro's own checks (with a warning).
    assert supported()
    saved = hmc_util._iterative_build_subtree, hmc_util._combine_tree
    with extra_uturn_checks() as on:
        assert on and hmc_util._iterative_build_subtree is not saved[0]
    assert (hmc_util._iterative_build_subtree, hmc_util._combine_tree) == saved


def test_isotropic_gaussian_no_longer_runs_whole_periods():
    # Scales 0.9-1.1 and a step of 0.208: the period, 2 pi / 0.208 = 30
    # steps, is about a 31-step tree, the case NumPyro's checks miss.
    d = 300
    scales = jnp.asarray(np.random.default_rng(0).uniform(0.9, 1.1, d))

    def potential(x):
        return 0.5 * jnp.sum((x / scales) ** 2)

    x_off, steps_off = _draws(potential, jnp.zeros(d), 0.208, False)
    x_on, steps_on = _draws(potential, jnp.zeros(d), 0.208, True)
    assert steps_off.max() > 31 and (steps_off > 31).mean() > 0.05
    assert steps_on.max() <= 31
    assert steps_on.mean() < 0.85 * steps_off.mean()
    # Still draws from the target: mean 0, variance scales^2 (600 draws, 300 coordinates).
    z = x_on / np.asarray(scales)
    assert abs(z.mean()) < 0.02
    assert abs(z.var(axis=0).mean() - 1.0) < 0.05


def test_correlated_gaussian_moments_with_the_checks():
    # A target where the trajectories turn at different depths for different
    # directions; the draws must keep its mean and covariance.
    rng = np.random.default_rng(3)
    A = rng.normal(size=(6, 6))
    cov = A @ A.T / 6 + np.diag(np.linspace(0.05, 3.0, 6))
    prec = jnp.asarray(np.linalg.inv(cov))
    mu = rng.normal(size=6)

    def potential(x):
        r = x - mu
        return 0.5 * r @ prec @ r

    x, steps = _draws(potential, jnp.asarray(mu), 0.25, True, n=6000, seed=5)
    se = np.sqrt(np.diag(cov) / 6000) * 3  # draws are roughly independent here; 3x margin for autocorrelation
    np.testing.assert_array_less(np.abs(x.mean(0) - mu), 4 * se)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.12 * np.sqrt(np.outer(np.diag(cov), np.diag(cov))).max())
    assert steps.min() >= 1


@pytest.mark.parametrize("checks", [False, True])
def test_vectorized_chains_trace_with_and_without(checks):
    def potential(x):
        return 0.5 * jnp.sum(x**2)

    with extra_uturn_checks(checks):
        kernel = NUTS(potential_fn=potential)
        mcmc = MCMC(kernel, num_warmup=50, num_samples=50, num_chains=2, chain_method="vectorized",
                    progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), init_params=jnp.zeros((2, 3)))
    assert np.isfinite(np.asarray(mcmc.get_samples())).all()
