"""bayeslmm.sampling.nuts: NumPyro's NUTS, a chunk of iterations per XLA execution, chains in threads."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS

from bayeslmm.sampling import mass_matrix
from bayeslmm.sampling import nuts as chunked

Y = np.random.default_rng(1).normal(1.0, 2.0, size=20)


def _logp(z):
    """mu ~ N(0, 10), log sigma with sigma ~ HalfNormal(5) (Jacobian included), y ~ N(mu, sigma)."""
    mu, log_sigma = z
    sigma = jnp.exp(log_sigma)
    lp = -0.5 * (mu / 10.0) ** 2 - 0.5 * (sigma / 5.0) ** 2 + log_sigma
    return lp + jnp.sum(-jnp.log(sigma) - 0.5 * ((Y - mu) / sigma) ** 2)


def _starts(chains):
    return [np.linspace(0.0, 0.5, chains), np.linspace(0.1, 0.3, chains)]


def _numpyro(chains, imm, draws=20, tune=30, seed=5, dense_mass=False):
    """NumPyro's own MCMC on the same potential, keys and starts."""
    kernel = NUTS(potential_fn=lambda z: -_logp(z), inverse_mass_matrix=imm, dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=tune, num_samples=draws, num_chains=chains, chain_method="vectorized",
                progress_bar=False)
    starts = _starts(chains)
    init = [jnp.asarray(s) if chains > 1 else jnp.asarray(s[0]) for s in starts]
    with jax.enable_x64(True):
        mcmc.run(jax.random.split(jax.random.PRNGKey(seed), chains) if chains > 1 else
                 jax.random.split(jax.random.PRNGKey(seed), 1)[0],
                 init_params=init, extra_fields=("num_steps", "energy", "accept_prob", "diverging"))
        z = [np.asarray(a) for a in mcmc.get_samples(group_by_chain=True)]
        extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return z, extra


@pytest.mark.parametrize("chains,chain_method", [(2, "parallel"), (2, "vectorized"), (1, "parallel")])
def test_chunked_nuts_follows_numpyros_own_mcmc(monkeypatch, chains, chain_method):
    """Same kernel, keys and adaptation: the same transitions as NumPyro's MCMC over NUTS(potential_fn).

    With 7 iterations a chunk, warm-up (30) and sampling (20) both end in a
    shorter chunk, and a chunk boundary falls on the end of warm-up. Both
    start from the same given inverse mass matrix, without Stan's checks.
    """
    monkeypatch.setattr(chunked, "CHUNK", 7)
    imm = np.array([0.5, 2.0])
    ref, extra = _numpyro(chains, imm)
    ours, stats = chunked.sample_nuts(_logp, _starts(chains), draws=20, tune=30, chains=chains, random_seed=5,
                                      chain_method=chain_method, stan_uturn=False, inverse_mass_matrix=imm)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape == (chains, 20)
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(stats["n_steps"], extra["num_steps"])
    np.testing.assert_allclose(stats["energy"], extra["energy"], rtol=1e-6)
    np.testing.assert_allclose(stats["acceptance_rate"], extra["accept_prob"], rtol=1e-6)
    assert set(stats) == set(chunked.STATS) | {"tree_depth"}


def test_starts_are_checked():
    from types import SimpleNamespace

    ok = SimpleNamespace(potential_energy=np.array([1.0, 2.0]), z_grad=[np.ones((2, 3)), np.ones(2)])
    chunked._check_starts(ok, 2)
    bad = SimpleNamespace(potential_energy=np.array([1.0, np.inf]), z_grad=[np.ones((2, 3)), np.ones(2)])
    with pytest.raises(ValueError, match=r"not finite at the jittered initial point of chain\(s\) \[1\]"):
        chunked._check_starts(bad, 2)
    nan_grad = SimpleNamespace(potential_energy=np.array(1.0), z_grad=[np.array([0.0, np.nan])])
    with pytest.raises(ValueError, match=r"chain\(s\) \[0\]"):
        chunked._check_starts(nan_grad, 1)
    with pytest.raises(ValueError, match="not finite"):
        chunked.sample_nuts(lambda z: -jnp.sum(z[0] ** 2) / 0.0 * 0.0, [np.zeros((2, 2))], draws=2, tune=2,
                            chains=2)


def test_progress_bar_and_bad_chain_method(capsys):
    samples, _ = chunked.sample_nuts(_logp, _starts(2), draws=10, tune=10, chains=2, random_seed=1,
                                     progressbar=True)
    assert samples[0].shape == (2, 10)
    assert "NUTS, 2 chains" in capsys.readouterr().err
    with pytest.raises(ValueError, match="chain_method"):
        chunked.sample_nuts(_logp, _starts(2), draws=5, tune=5, chains=2, chain_method="sequential")


def test_warm_up_starts_from_the_curvature_at_each_chains_start(monkeypatch):
    """Each chain's initial inverse mass matrix is curvature_inverse_mass at its own start."""
    seen = []
    orig = mass_matrix.curvature_inverse_mass

    def spy(potential, params):
        out = mass_matrix.curvature_and_gradient(potential, params)
        seen.append(1)
        return out

    monkeypatch.setattr(chunked, "curvature_and_gradient", spy)
    init, _ = chunked.nuts_kernel(lambda z: -_logp(z), 10)
    starts = _starts(2)
    with jax.enable_x64(True):
        for c in range(2):
            point = [jnp.asarray(s[c]) for s in starts]
            state = init(jax.random.PRNGKey(0), point, orig(lambda z: -_logp(z), point))
            imm = np.asarray(state.adapt_state.inverse_mass_matrix)
            assert not np.allclose(imm, 1.0)  # mu's scale (posterior SD about 0.45) is not 1
            np.testing.assert_allclose(imm, np.asarray(orig(lambda z: -_logp(z), point)), rtol=1e-12)
    # sample_nuts takes that start (traced once, for both chains) unless a matrix is given
    chunked.sample_nuts(_logp, starts, draws=5, tune=5, chains=2, random_seed=2)
    assert len(seen) == 1
    chunked.sample_nuts(_logp, starts, draws=5, tune=5, chains=2, random_seed=2, inverse_mass_matrix=np.ones(2))
    chunked.sample_nuts(_logp, starts, draws=5, tune=5, chains=2, random_seed=2, curvature_start=False)
    assert len(seen) == 1
    # batched chains (a GPU's path): the curvature is taken per chain under vmap
    s, _ = chunked.sample_nuts(_logp, starts, draws=20, tune=20, chains=2, random_seed=3,
                               chain_method="vectorized")
    assert np.isfinite(s[0]).all() and not np.allclose(s[0][0], s[0][1])


def test_more_chains_than_cores_each_its_own():
    chains = 3
    s, _ = chunked.sample_nuts(_logp, _starts(chains), draws=20, tune=20, chains=chains, random_seed=3)
    assert s[1].shape == (chains, 20) and np.isfinite(s[1]).all()
    assert len({tuple(np.round(d, 12)) for d in s[1]}) == chains


def test_error_in_one_chain_ends_the_fit_and_stop_ends_a_chain(monkeypatch):
    """A chain that fails ends the fit with its error; a set stop event ends a chain before its next chunk."""
    orig = chunked._drive

    def drive(state, run, *args):
        if threading.current_thread().name.endswith("-1"):
            raise RuntimeError("chain 1 broke")
        return orig(state, run, *args)

    monkeypatch.setattr(chunked, "_drive", drive)
    with pytest.raises(RuntimeError, match="chain 1 broke"):
        chunked.sample_nuts(_logp, _starts(2), draws=5, tune=5, chains=2, random_seed=1)
    ran = []
    stop = threading.Event()
    stop.set()
    assert orig("state", lambda *a: ran.append(a), 5, 5, None, 0, None, [], stop) is None
    assert ran == []


def test_chunks_that_ran_long_are_followed_by_a_heap_trim(monkeypatch):
    """_drive hands freed memory back after chunks of at least TRIM_SECONDS, not after short ones."""
    import time

    def run(state, n):
        time.sleep(0.02)
        stats = {k: np.zeros(chunked.CHUNK) for k in chunked.STATS}
        return state + n, ([np.zeros((chunked.CHUNK, 1))], stats)

    for limit, want in ((0.0, True), (1e9, False)):
        trims = []
        monkeypatch.setattr(chunked, "release_freed_memory", lambda: trims.append(1) or True)
        monkeypatch.setattr(chunked, "TRIM_SECONDS", limit)
        z = [np.empty((4, 1))]
        stats = chunked._drive(np.array(0), run, 3, 4, lambda a, n: np.asarray(a[:n]), 0, None, z)
        assert stats["n_steps"].shape == (4,)
        assert bool(trims) is want
        if want:
            assert len(trims) >= 2  # one per chunk: warm-up and draws never share a chunk


def test_restart_schedule():
    assert chunked.restart_iterations(1000) == chunked.RESTART_AT == (10, 25)
    assert chunked.restart_iterations(199) == ()  # short warm-ups: NumPyro's schedule untouched
    assert chunked.restart_iterations(1000, curvature_start=False) == ()


def test_drive_restarts_at_chunk_boundaries_and_keeps_the_clock():
    """Chunks end exactly at the restart iterations; the restarted state keeps the iteration count."""
    from typing import NamedTuple

    class S(NamedTuple):
        i: int
        fresh: bool
        rng_key: int = 0
        z: tuple = ()

    calls, seen = [], []

    def run(state, n):
        seen.append((state.i, n, state.fresh))
        z = [np.zeros((chunked.CHUNK, 1))]
        st = {k: np.zeros(chunked.CHUNK) for k in chunked.STATS}
        return S(state.i + n, False), (z, st)

    def init(key, z):
        return S(0, True, key, z)

    fresh_start = chunked._restart_with(init)

    def restart(state):
        calls.append(state.i)
        return fresh_start(state)

    chunked._drive(S(0, False), run, 300, 5, chunked._take_rows, 0, None, [np.zeros((5, 1))],
                   restart=((10, 25), restart))
    assert calls == [10, 25]
    starts = [i for i, _, _ in seen]
    assert 10 in starts and 25 in starts
    assert all(fresh == (i in (10, 25)) for i, _, fresh in seen)
    assert sum(n for _, n, _ in seen) == 305


@pytest.mark.parametrize("chain_method", ["parallel", "vectorized"])
def test_restarted_warmup_samples_the_target(chain_method):
    """A 2-d target whose curvature at the far start is 1e4 times off: draws after a restarted warm-up
    have the target's moments (x0 ~ N(0, 0.1^2); x1 has a pseudo-Huber density of scale 1)."""
    def logp(z):
        x0, x1 = z
        return -0.5 * (x0 / 0.1) ** 2 - (jnp.sqrt(1.0 + x1 ** 2) - 1.0)

    starts = [np.array([0.05, -0.05]), np.array([80.0, -80.0])]
    s, stats = chunked.sample_nuts(logp, starts, draws=400, tune=300, chains=2, random_seed=4,
                                   chain_method=chain_method)
    x0, x1 = s[0].ravel(), s[1].ravel()
    assert abs(x0.std() - 0.1) < 0.015 and abs(x0.mean()) < 0.02
    from scipy.integrate import quad

    dens = lambda x: np.exp(-np.sqrt(1.0 + x * x))  # noqa: E731
    m2 = quad(lambda x: x * x * dens(x), -np.inf, np.inf)[0] / quad(dens, -np.inf, np.inf)[0]
    assert abs(x1.mean()) < 0.5 and abs(np.mean(x1 ** 2) - m2) < 0.25 * m2, (x1.mean(), np.mean(x1 ** 2), m2)


def test_dense_mass_follows_numpyros_own_mcmc(monkeypatch):
    """dense_mass=True is NumPyro's NUTS(dense_mass=True): the same transitions from the same diagonal start."""
    monkeypatch.setattr(chunked, "CHUNK", 7)
    imm = np.array([0.5, 2.0])
    ref, extra = _numpyro(2, imm, dense_mass=True)
    ours, stats = chunked.sample_nuts(_logp, _starts(2), draws=20, tune=30, chains=2, random_seed=5,
                                      stan_uturn=False, inverse_mass_matrix=imm, dense_mass=True)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(stats["n_steps"], extra["num_steps"])


def test_dense_mass_samples_a_correlated_target_in_fewer_steps():
    """N(0, C) with correlation 0.99: both metrics give its moments; the dense one in fewer leapfrog steps."""
    C = np.array([[1.0, 0.99], [0.99, 1.0]])
    P = jnp.asarray(np.linalg.inv(C))

    def logp(z):
        x = jnp.stack([z[0], z[1]])
        return -0.5 * x @ P @ x

    starts = [np.array([0.3, -0.2]), np.array([0.1, 0.4])]
    steps = {}
    for dense in (False, True):
        s, stats = chunked.sample_nuts(logp, starts, draws=1000, tune=500, chains=2, random_seed=3,
                                       dense_mass=dense)
        x = np.stack([a.ravel() for a in s])
        # 2,000 draws, ESS a few hundred or more: the moments to within about 4 Monte Carlo SEs.
        assert np.all(np.abs(x.mean(axis=1)) < 0.2), (dense, x.mean(axis=1))
        np.testing.assert_allclose(np.cov(x), C, atol=0.2)
        steps[dense] = stats["n_steps"].mean()
    assert steps[True] < 0.5 * steps[False], steps


def test_dense_mass_is_for_the_chunked_numpyro_sampler_only():
    import pymc as pm

    from bayeslmm.sampling.driver import sample

    with pm.Model() as model:
        pm.Normal("x")
    with pytest.raises(ValueError, match=r"dense_mass=True needs sampler='numpyro' with low_memory=True, got "
                                         r"sampler='blackjax'"):
        sample(model, sampler="blackjax", dense_mass=True)


def test_warm_verlet_is_numpyros_integrator_with_the_modes_carried():
    """The integrator of Laplace potentials: NumPyro's velocity Verlet step for step, modes beside the gradient."""
    from numpyro.infer.hmc_util import IntegratorState, euclidean_kinetic_energy, velocity_verlet

    def potential(z):
        return -_logp(z)

    def potential_and_modes(z, modes):
        return potential(z), (modes[0] + 1.0,)  # a stand-in for a solve's mode, to follow it through the steps

    cold = (jnp.zeros(3),)
    with jax.enable_x64(True):
        z0 = [jnp.asarray(0.3), jnp.asarray(0.2)]
        r0 = [jnp.asarray(0.7), jnp.asarray(-0.4)]
        imm = jnp.asarray([0.5, 2.0])
        ref_init, ref_step = velocity_verlet(potential, euclidean_kinetic_energy)
        init, step = chunked._warm_verlet(potential, potential_and_modes, cold, euclidean_kinetic_energy)
        ref, ours = ref_init(z0, r0), init(z0, r0)
        assert ours.z_grad[1] is cold
        for k in range(5):
            ref, ours = ref_step(0.1, imm, ref), step(0.1, imm, ours)
            for a, b in zip(jax.tree.leaves((ref.z, ref.r, ref.potential_energy, ref.z_grad)),
                            jax.tree.leaves((ours.z, ours.r, ours.potential_energy, ours.z_grad[0]))):
                np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-14, atol=1e-15)
            np.testing.assert_array_equal(np.asarray(ours.z_grad[1][0]), np.full(3, k + 1.0))
    assert isinstance(ours, IntegratorState)
    # A potential without inner solves keeps NumPyro's own integrator.
    assert chunked.warm_potential(potential, z0) is None
