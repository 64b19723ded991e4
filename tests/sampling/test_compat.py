"""Stan's U-turn checks between the halves of every NUTS subtree (bayeslmm.sampling.compat)."""

from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayeslmm.sampling import compat
from bayeslmm.sampling.nuts import nuts_kernel


def _draws(potential, x0, step_size, checks, n=600, seed=1, chains=None):
    """``n`` NUTS transitions at a fixed step size and identity mass matrix (no warm-up)."""
    init, step = nuts_kernel(potential, 0, stan_uturn=checks)

    def run(key, x):
        def body(state, _):
            state = step(state)
            return state, (state.z, state.num_steps)

        return jax.lax.scan(body, init(key, x, step_size=step_size), None, length=n)[1]

    with jax.enable_x64(True):
        if chains is None:
            z, steps = jax.jit(run)(jax.random.PRNGKey(seed), x0)
        else:
            z, steps = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(seed), chains), x0)
    return np.asarray(z), np.asarray(steps)


def test_installed_numpyro_is_a_checked_version():
    # On another version the sampler silently runs NumPyro's own checks: renew
    # CHECKED_VERSIONS (and the pins in pyproject.toml) after checking this module against it.
    assert ".".join(version("numpyro").split(".")[:2]) in compat.CHECKED_VERSIONS
    assert compat.supported()


def test_unchecked_version_falls_back_to_numpyros_tree(monkeypatch):
    monkeypatch.setattr(compat, "CHECKED_VERSIONS", ("0.0",))
    assert not compat.supported()

    def potential(x):
        return 0.5 * jnp.sum(x**2)

    z_fallback, _ = _draws(potential, jnp.zeros(3), 0.5, True, n=20)
    z_plain, _ = _draws(potential, jnp.zeros(3), 0.5, False, n=20)
    np.testing.assert_array_equal(z_fallback, z_plain)


def test_isotropic_gaussian_no_longer_runs_whole_periods():
    # Scales 0.9-1.1 and a step of 0.208: the period, 2 pi / 0.208 = 30
    # steps, is about a 31-step tree, the case NumPyro's checks miss.
    d = 300
    scales = jnp.asarray(np.random.default_rng(0).uniform(0.9, 1.1, d))

    def potential(x):
        return 0.5 * jnp.sum((x / scales) ** 2)

    _, steps_off = _draws(potential, jnp.zeros(d), 0.208, False)
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

    z, _ = _draws(potential, jnp.zeros((2, 3)), 0.7, checks, n=50, chains=2)
    assert z.shape == (2, 50, 3) and np.isfinite(z).all() and not np.allclose(z[0], z[1])
