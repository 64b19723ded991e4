"""bayeslmm.sampling.driver: every sampler the package names fits its models, quietly."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from bayeslmm import BayesLMM
from bayeslmm.simulate import simulate_crossed


@pytest.fixture(scope="module")
def crossed():
    return simulate_crossed(n_subj=12, n_item=10, seed=0)[0]


@pytest.mark.parametrize("sampler", ["numpyro", "pymc", "blackjax", "nutpie"])
@pytest.mark.parametrize("marginalize", ["none", "all"])
def test_every_sampler_fits(crossed, sampler, marginalize):
    """Each sampler draws from the same posterior (means of the fixed effects and sigma agree)."""
    m = BayesLMM("y ~ cond + (1 | subj) + (1 | item)", crossed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a correct fit warns of nothing
        warnings.filterwarnings("ignore", "Parts of the model have not converged")
        fit = m.fit(draws=150, tune=150, chains=2, sampler=sampler, marginalize=marginalize, random_seed=2,
                    target_accept=0.95, progressbar=False)  # 0.8 left one divergence with PyMC's NUTS
    post = fit.posterior
    assert post["fixef"].shape == (2, 150, 2) and post["r_subj"].shape == (2, 150, 12, 1)
    assert not any(v.endswith(("__raw", "_log__")) or v.startswith("L_") for v in post.data_vars)
    assert {"diverging", "n_steps"} <= set(fit.idata.sample_stats.data_vars)
    # Least squares of the simulated data: intercept about 6, cond about 0.1, sigma about 0.5.
    assert abs(float(post["fixef"].sel(fixef_term="Intercept").mean()) - 6.0) < 0.3
    assert abs(float(post["sigma"].mean()) - 0.5) < 0.1
    assert fit.sampler == sampler


def test_missing_optional_sampler_is_a_clear_error(monkeypatch):
    import importlib.util

    from bayeslmm.sampling import driver

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "nutpie" else real(name))
    with pytest.raises(ValueError, match=r"pip install 'bayeslmm\[nutpie\]'"):
        driver.check_available("nutpie")


def test_import_changes_nothing_in_the_process():
    """No environment variable, JAX setting or log handler beyond a NullHandler comes from importing bayeslmm."""
    code = textwrap.dedent("""
        import logging, os, sys
        import jax, numpyro, pymc, pytensor, formulae, arviz  # their own import-time settings
        env = dict(os.environ)
        x64 = jax.config.jax_enable_x64
        root = list(logging.getLogger().handlers)
        import bayeslmm
        changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
        handlers = [type(h).__name__ for h in logging.getLogger("bayeslmm").handlers]
        print(changed, jax.config.jax_enable_x64 == x64, handlers, logging.getLogger().handlers == root,
              logging.getLogger("bayeslmm").level)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True ['NullHandler'] True 0", out.stdout


@pytest.mark.filterwarnings("ignore:Parts of the model have not converged")  # 300 draws; compared within their MCSE
def test_nutpie_fits_a_correlated_block():
    """nutpie on an LKJ correlation: no parameter check without a JAX translation, the same posterior as numpyro."""
    import arviz as az
    import pandas as pd

    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=g.size)
    d = pd.DataFrame({"x": x, "g": g})
    d["y"] = 1 + x + rng.normal(size=12)[g] + 0.5 * rng.normal(size=12)[g] * x + rng.normal(size=g.size)
    m = BayesLMM("y ~ x + (x | g)", d)
    fits = {s: m.fit(draws=300, tune=300, chains=2, sampler=s, marginalize="none", random_seed=3, progressbar=False)
            for s in ("nutpie", "numpyro")}
    for name in ("sd_g", "cor_g"):
        a, b = (fits[s].posterior[name] for s in ("nutpie", "numpyro"))
        ma, mb = a.mean(("chain", "draw")), b.mean(("chain", "draw"))
        se = np.sqrt(a.std(("chain", "draw")) ** 2 / az.ess(a.to_dataset())[name]
                     + b.std(("chain", "draw")) ** 2 / az.ess(b.to_dataset())[name])
        off = np.abs(np.asarray(ma - mb)) > 5 * np.asarray(se) + 1e-9
        assert not off.any(), (name, np.asarray(ma), np.asarray(mb), np.asarray(se))
    assert fits["nutpie"].posterior["cor_g"].shape[-2:] == (2, 2)


@pytest.mark.parametrize("family", ["gaussian", "bernoulli"])
def test_initial_points_are_pymcs(crossed, family):
    """The jittered starts equal ``pymc.initial_point.make_initial_point_fn``'s for the same seeds, every variable."""
    from pymc.initial_point import make_initial_point_fn

    from bayeslmm.pymc_model import build_model
    from bayeslmm.sampling.driver import jax_model

    data = crossed.assign(correct=(crossed["y"] > crossed["y"].median()).astype(int))
    m = BayesLMM(("correct" if family == "bernoulli" else "y") + " ~ cond + (1 + cond | subj) + (1 | item)", data,
                 family=family)
    model = build_model(m.design, m.priors, m.plan("none"))
    jm = jax_model(model)
    got = jm.initial_points(3, 7)
    fn = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs), return_transformed=True)
    seeds = np.random.default_rng(7).integers(2**30, size=3)
    want = [fn(int(s)) for s in seeds]
    assert len(got) == len(jm.value_names) >= 5
    for name, arr in zip(jm.value_names, got):
        assert arr.shape[0] == 3
        np.testing.assert_array_equal(arr, np.stack([np.asarray(p[name], dtype=np.float64) for p in want]))
    # Different chains start at different points.
    assert not np.array_equal(got[0][0], got[0][1])


@pytest.mark.parametrize("plan", ["none", "subj", "all"])
def test_the_translation_names_the_inner_solves_a_trace_finds(crossed, plan):
    """JaxModel.inner_solves, read off the rewritten graph, are the modes a shape-only trace of the potential records."""
    import jax
    import jax.numpy as jnp

    from bayeslmm.pymc_model import build_model
    from bayeslmm.sampling.driver import jax_model
    from bayeslmm.sampling.nuts import warm_potential

    data = crossed.assign(correct=(crossed["y"] > crossed["y"].median()).astype(int))
    m = BayesLMM("correct ~ cond + (1 + cond | subj) + (1 | item)", data, family="bernoulli")
    jm = jax_model(build_model(m.design, m.priors, m.plan(plan, None if plan == "none" else "laplace")))
    with jax.enable_x64(True):
        z = [jnp.asarray(p[0]) for p in jm.initial_points(1, 0)]
        traced = warm_potential(lambda x: -jm.logp(x), z)
        given = warm_potential(lambda x: -jm.logp(x), z, jm.inner_solves)
        if plan == "none":
            assert jm.inner_solves == () and traced is None and given is None
            return
        n_subj, n_item = crossed["subj"].nunique(), crossed["item"].nunique()
        assert jm.inner_solves == ((2 * n_subj,) if plan == "subj" else (2 * n_subj + n_item,))
        assert [c.shape for c in traced[1]] == [c.shape for c in given[1]] == [(n,) for n in jm.inner_solves]
        u, modes = given[0](z, given[1])
        assert abs(float(u + jm.logp(z))) < 1e-9 * abs(float(u)) and modes[0].shape == given[1][0].shape
        # Sizes that are not the potential's are an error, not a silently cold start.
        wrong = warm_potential(lambda x: -jm.logp(x), z, (jm.inner_solves[0] + 1,))
        with pytest.raises(ValueError, match="inner solves"):
            jax.eval_shape(wrong[0], z, tuple(jnp.zeros(s.shape) for s in given[1]))
    if plan == "all":
        # The sampler hands the modes at its draws on to the recovery, which consumes them.
        from bayeslmm.sampling.driver import INNER_MODE, sample

        idata, _ = sample(jm.model, draws=5, tune=5, chains=1, random_seed=0, progressbar=False)
        assert idata.posterior[INNER_MODE].shape == (1, 5, jm.inner_solves[0])


def test_a_fit_does_not_import_setuptools():
    """A fit in a fresh process never builds a PyTensor virtual machine, whose C module imports setuptools."""
    code = textwrap.dedent("""
        import sys
        from bayeslmm import BayesLMM
        from bayeslmm.simulate import simulate_crossed
        data = simulate_crossed(n_subj=8, n_item=6, seed=0)[0]
        BayesLMM("y ~ cond + (1 | subj)", data).fit(draws=20, tune=20, chains=1, progressbar=False,
                                                    marginalize="all", compile_cache=False)
        print(sorted(m for m in sys.modules if m.startswith(("pytensor.link.c.exceptions", "setuptools"))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
