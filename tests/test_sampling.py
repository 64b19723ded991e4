"""The sampler wrapper's hook on PyMC's initial-point check."""

import pymc.sampling.jax as pmjax

from bayeslmm.sampling import _jitted_initial_point_check


def test_initial_point_check_is_jitted_and_restored(monkeypatch):
    seen = {}

    def fake(*args, logp_fn=None, **kw):
        seen["logp_fn"] = logp_fn
        return "points"

    monkeypatch.setattr(pmjax, "_get_batched_jittered_initial_points", fake)
    with _jitted_initial_point_check("numpyro"):
        assert pmjax._get_batched_jittered_initial_points(logp_fn=lambda xs: xs[0] * 2.0) == "points"
        assert float(seen["logp_fn"]([3.0])) == 6.0
        assert hasattr(seen["logp_fn"], "lower")  # a jax.jit-wrapped function
    assert pmjax._get_batched_jittered_initial_points is fake
    with _jitted_initial_point_check("pymc"):
        assert pmjax._get_batched_jittered_initial_points is fake


def test_jax_translation_skips_the_blas_probing_rewrite_and_restores_pymc():
    from pytensor.compile import mode

    from bayeslmm.sampling import _jax_rewrites_without_blas_probe

    assert pmjax.mode is mode
    with _jax_rewrites_without_blas_probe("numpyro"):
        assert pmjax.mode is not mode
        assert "local_usmm" in pmjax.mode.JAX._optimizer.exclude
        assert "local_usmm" not in mode.JAX._optimizer.exclude
    assert pmjax.mode is mode
    with _jax_rewrites_without_blas_probe("pymc"):
        assert pmjax.mode is mode


# --- bayeslmm.chunked_nuts: NumPyro's NUTS run a chunk of iterations per XLA execution

import contextlib  # noqa: E402

import numpy as np  # noqa: E402
import pymc as pm  # noqa: E402
import pytest  # noqa: E402

import bayeslmm.chunked_nuts as chunked  # noqa: E402


def _tiny_model():
    rng = np.random.default_rng(1)
    y = rng.normal(1.0, 2.0, size=20)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 10)
        sigma = pm.HalfNormal("sigma", 5)
        pm.Normal("y", mu, sigma, observed=y)
    return m


def _sample(model, chains, chain_method, patched, **kw):
    ctx = chunked.numpyro_chunked("numpyro") if patched else contextlib.nullcontext()
    with ctx:
        return pmjax.sample_jax_nuts(model=model, draws=20, tune=30, chains=chains, random_seed=5,
                                     chain_method=chain_method, progressbar=False, nuts_sampler="numpyro",
                                     compute_convergence_checks=False, **kw)


@pytest.mark.parametrize("chains,chain_method", [(2, "parallel"), (2, "vectorized"), (1, "parallel")])
def test_chunked_nuts_follows_numpyros_own_run(monkeypatch, chains, chain_method):
    """Same kernel, keys and adaptation: the same transitions as NumPyro's single-execution MCMC.

    With 7 iterations a chunk, warm-up (30) and sampling (20) both end in a
    shorter chunk, and a chunk boundary falls on the end of warm-up. Both
    start from the same given inverse mass matrix, which also turns off the
    chunked loop's curvature start (tested below).
    """
    monkeypatch.setattr(chunked, "CHUNK", 7)
    model = _tiny_model()
    kw = {"nuts_kwargs": {"inverse_mass_matrix": np.array([0.5, 2.0])}}
    ours = _sample(model, chains, chain_method, patched=True, **kw)
    ref = _sample(model, chains, chain_method, patched=False, **kw)
    for v in ("mu", "sigma"):
        assert ours.posterior[v].shape == ref.posterior[v].shape == (chains, 20)
        np.testing.assert_allclose(ours.posterior[v].values, ref.posterior[v].values, rtol=1e-6)
    assert set(ours.sample_stats.data_vars) == set(ref.sample_stats.data_vars)
    for s in ref.sample_stats.data_vars:
        assert ours.sample_stats[s].dtype == ref.sample_stats[s].dtype, s
        np.testing.assert_allclose(ours.sample_stats[s].values.astype(float),
                                   ref.sample_stats[s].values.astype(float), rtol=1e-6, err_msg=s)
    assert pmjax._sample_numpyro_nuts is not chunked.sample_numpyro_chunked  # restored


def test_chunked_nuts_checks_the_starts_itself(monkeypatch):
    """PyMC's separate log-density check of the jittered starts is skipped; a non-finite start still stops the fit."""
    from types import SimpleNamespace

    seen = {}

    def points(*args, logp_fn=None, **kw):
        seen["logp"] = logp_fn({"x": np.array(1e308)})
        return "points"

    monkeypatch.setattr(pmjax, "_get_batched_jittered_initial_points", points)
    with chunked.numpyro_chunked("numpyro"):
        assert pmjax._get_batched_jittered_initial_points(chains=2) == "points"
    assert seen["logp"] == 0.0 and pmjax._get_batched_jittered_initial_points is points

    ok = SimpleNamespace(potential_energy=np.array([1.0, 2.0]), z_grad=[np.ones((2, 3)), np.ones(2)])
    chunked._check_starts(ok, 2)
    bad = SimpleNamespace(potential_energy=np.array([1.0, np.inf]), z_grad=[np.ones((2, 3)), np.ones(2)])
    with pytest.raises(ValueError, match=r"not finite at the jittered initial point of chain\(s\) \[1\]"):
        chunked._check_starts(bad, 2)
    nan_grad = SimpleNamespace(potential_energy=np.array(1.0), z_grad=[np.array([0.0, np.nan])])
    with pytest.raises(ValueError, match=r"chain\(s\) \[0\]"):
        chunked._check_starts(nan_grad, 1)


def test_chunked_nuts_progress_bar_and_bad_chain_method(capsys):
    model = _tiny_model()
    with chunked.numpyro_chunked("numpyro"):
        idata = pmjax.sample_jax_nuts(model=model, draws=10, tune=10, chains=2, random_seed=1,
                                      progressbar=True, nuts_sampler="numpyro", compute_convergence_checks=False)
    assert idata.posterior["mu"].shape == (2, 10)
    assert "NUTS, 2 chains" in capsys.readouterr().err
    with pytest.raises(ValueError, match="chain_method"):
        chunked.sample_numpyro_chunked(model, 0.8, 5, 5, 2, "sequential", False, 1,
                                       [np.zeros(2), np.ones(2)], {})
    with chunked.numpyro_chunked("blackjax"):
        assert pmjax._sample_numpyro_nuts is not chunked.sample_numpyro_chunked


def test_chunked_nuts_starts_warm_up_from_the_curvature(monkeypatch):
    """Each chain's initial inverse mass matrix is curvature_inverse_mass at its own start."""
    import jax.numpy as jnp

    import bayeslmm.mass_matrix as mm

    seen = []
    orig = mm.curvature_inverse_mass

    def spy(potential, params):
        out = orig(potential, params)
        seen.append((params, out))
        return out

    monkeypatch.setattr(mm, "curvature_inverse_mass", spy)
    starts = {}
    orig_init = chunked._compile_both

    def compile_both(init, run, init_args):
        init_c, run_c = orig_init(init, run, init_args)

        def init_spy(key, point):
            state = init_c(key, point)
            starts[float(point[0])] = (point, np.asarray(state.adapt_state.inverse_mass_matrix))
            return state
        return init_spy, run_c

    monkeypatch.setattr(chunked, "_compile_both", compile_both)
    model = _tiny_model()
    logp = pmjax.get_jaxified_logp(model, negative_logp=False)
    _sample(model, 2, "parallel", patched=True)
    assert len(seen) == 1  # traced once, run per chain
    assert len(starts) == 2
    for point, imm in starts.values():
        expect = np.asarray(orig(logp, [jnp.asarray(p) for p in point]))
        np.testing.assert_allclose(imm, expect, rtol=1e-12)
        assert not np.allclose(imm, 1.0)  # mu's scale (posterior SD about 0.45) is not 1
    # batched chains (a GPU's path): the curvature is taken per chain under vmap
    monkeypatch.undo()
    idata = _sample(model, 2, "vectorized", patched=True)
    draws = idata.posterior["mu"].values
    assert draws.shape == (2, 20) and np.isfinite(draws).all() and not np.allclose(draws[0], draws[1])


def test_fit_low_memory_gives_the_same_draws(toy, monkeypatch):
    """The chunked loop is NumPyro's own run once both start from the identity mass matrix."""
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    import bayeslmm.mass_matrix as mm
    from bayeslmm import BayesLMM

    monkeypatch.setattr(mm, "curvature_inverse_mass", lambda potential, params: jnp.ones_like(ravel_pytree(params)[0]))
    m = BayesLMM("y ~ cond + (1 | subj) + (1 | item)", toy)
    kw = dict(draws=15, tune=25, chains=2, random_seed=4, marginalize="all", progressbar=False)
    a = m.fit(**kw)
    b = m.fit(low_memory=True, **kw)
    for v in ("fixef", "sigma", "sd_subj", "r_item"):
        np.testing.assert_allclose(b.posterior[v].values, a.posterior[v].values, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="low_memory=True needs sampler='numpyro'"):
        m.fit(low_memory=True, sampler="pymc", **kw)
    with pytest.raises(TypeError, match="low_memory"):
        m.fit(low_memory="yes", **kw)


def test_low_memory_default_is_chunked_for_numpyro(toy, monkeypatch):
    """None: the chunked loop for NumPyro, whatever the size; other samplers never."""
    import bayeslmm.sampling as sampling
    from bayeslmm import BayesLMM

    seen = []

    class Stop(Exception):
        pass

    def fake(model, **kw):
        seen.append((kw["sampler"], kw["low_memory"]))
        raise Stop

    monkeypatch.setattr(sampling, "run_sampler", fake)
    m = BayesLMM("y ~ cond + (1 | subj) + (1 | item)", toy)
    for sampler, low_memory in [("numpyro", None), ("numpyro", False), ("pymc", None), ("blackjax", None)]:
        with pytest.raises(Stop):
            m.fit(draws=5, tune=5, chains=2, sampler=sampler, progressbar=False, low_memory=low_memory)
    assert seen == [("numpyro", True), ("numpyro", False), ("pymc", False), ("blackjax", False)]


def test_chunked_cpu_chains_run_in_parallel_beyond_the_device_count(toy, monkeypatch):
    """More chains than XLA host devices: threads on one device for the chunked loop, vmap for NumPyro's."""
    import jax
    import pymc.sampling.jax as pmjax

    import bayeslmm.sampling as sampling
    from bayeslmm import BayesLMM

    chains = jax.local_device_count() + 1
    seen = []

    class Stop(Exception):
        pass

    def fake(**kw):
        seen.append(kw["chain_method"])
        raise Stop

    monkeypatch.setattr(pmjax, "sample_jax_nuts", fake)
    model = BayesLMM("y ~ cond + (1 | subj)", toy).build_model("none")
    for low_memory in (True, False):
        with pytest.raises(Stop):
            sampling.run_sampler(model, sampler="numpyro", draws=5, tune=5, chains=chains, target_accept=0.8,
                                 random_seed=1, progressbar=False, low_memory=low_memory)
    assert seen == ["parallel", "vectorized"]
    # and the threads on one device do sample: three chains, chunked
    monkeypatch.undo()
    fit = BayesLMM("y ~ cond + (1 | subj)", toy).fit(draws=20, tune=20, chains=chains, random_seed=3,
                                                     marginalize="none", progressbar=False)
    draws = fit.posterior["sigma"].values
    assert draws.shape == (chains, 20) and np.isfinite(draws).all()
    assert len({tuple(np.round(d, 12)) for d in draws}) == chains  # each chain its own


def test_chunked_nuts_error_in_one_chain_ends_the_fit_and_stop_ends_a_chain(monkeypatch):
    """A chain that fails ends the fit with its error; a set stop event ends a chain before its next chunk."""
    import threading

    orig = chunked._drive

    def drive(state, run, *args):
        if threading.current_thread().name.endswith("-1"):
            raise RuntimeError("chain 1 broke")
        return orig(state, run, *args)

    monkeypatch.setattr(chunked, "_drive", drive)
    with chunked.numpyro_chunked("numpyro"), pytest.raises(RuntimeError, match="chain 1 broke"):
        pmjax.sample_jax_nuts(model=_tiny_model(), draws=5, tune=5, chains=2, random_seed=1, progressbar=False,
                              nuts_sampler="numpyro", compute_convergence_checks=False)

    ran = []
    stop = threading.Event()
    stop.set()
    assert orig("state", lambda *a: ran.append(a), 5, 5, None, 0, None, [], stop) is None
    assert ran == []


def test_release_freed_memory_hands_back_a_threads_freed_heap():
    import os
    import sys
    import threading

    from bayeslmm.heap import release_freed_memory

    if not sys.platform.startswith("linux"):
        assert release_freed_memory() in (True, False)
        return

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def work():  # about 120 MB of malloc'd blocks in this thread's arena, then freed
        blocks = [bytes(2000) for _ in range(60_000)]
        del blocks

    t = threading.Thread(target=work)
    t.start()
    t.join()
    before = rss_mb()
    assert release_freed_memory()
    assert before - rss_mb() > 30


def test_chunks_that_ran_long_are_followed_by_a_heap_trim(monkeypatch):
    """_drive hands freed memory back after chunks of at least TRIM_SECONDS, not after short ones."""
    import time

    def run(state, n):
        time.sleep(0.02)
        stats = {k: np.zeros(chunked.CHUNK) for k in chunked._STATS}
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
