"""XLA compiler options of a fit: which models get them, and that they reach XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayeslmm.sampling import xla
from bayeslmm.sampling.nuts import sample_nuts


def test_options_only_for_models_that_read_few_rows():
    assert xla.options_for(0) == xla.FAST_COMPILE            # sufficient statistics only
    assert xla.options_for(xla.ROW_LIMIT - 1) == xla.FAST_COMPILE
    assert xla.options_for(xla.ROW_LIMIT) == {}              # large N: XLA's defaults run faster


def test_options_reach_the_samplers_compilation():
    # An option XLA does not know makes the compilation fail: proof that it got there.
    def logp(z):
        return -0.5 * jnp.sum(z[0] ** 2)

    start = [np.zeros((1, 2))]
    with pytest.raises(Exception, match="xla_no_such_option_anywhere"):
        sample_nuts(logp, start, draws=2, tune=2, chains=1, compiler_options={"xla_no_such_option_anywhere": True})
    samples, _ = sample_nuts(logp, start, draws=5, tune=5, chains=1, compiler_options=xla.FAST_COMPILE)
    assert samples[0].shape == (1, 5, 2) and np.isfinite(samples[0]).all()


def test_options_are_dropped_when_xla_does_not_know_them(monkeypatch):
    monkeypatch.setattr(xla, "FAST_COMPILE", {"xla_no_such_option_anywhere": True})
    xla._supported.cache_clear()
    try:
        assert xla.options_for(0) == {}
    finally:
        xla._supported.cache_clear()
    assert jax.default_backend() == "cpu"


def test_llvm_optimization_is_dropped_only_for_short_runs():
    short, long = xla.SHORT_RUN_S / 2, xla.SHORT_RUN_S * 2
    assert xla.options_for(0, short) == {**xla.FAST_COMPILE, **xla.NO_LLVM_OPT}
    assert xla.options_for(xla.ROW_LIMIT - 1, short) == {**xla.FAST_COMPILE, **xla.NO_LLVM_OPT}
    assert xla.options_for(0, long) == xla.FAST_COMPILE
    assert xla.options_for(0, None) == xla.FAST_COMPILE
    assert xla.options_for(xla.ROW_LIMIT, short) == {}       # large N keeps XLA's defaults


def test_a_short_fit_compiles_its_sampler_with_the_short_run_options(monkeypatch):
    # An option XLA does not know in place of NO_LLVM_OPT makes the sampler's compilation fail: the fit passed it on.
    import pandas as pd

    from bayeslmm import BayesLMM

    assert xla._supported()  # cached with the real options before they are replaced
    monkeypatch.setattr(xla, "NO_LLVM_OPT", {"xla_no_such_option_anywhere": True})
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(np.arange(5), 4), "y": rng.normal(size=20)})
    m = BayesLMM("y ~ 1 + (1 | g)", df)
    with pytest.raises(Exception, match="xla_no_such_option_anywhere"):
        m.fit(draws=5, tune=200, chains=1, marginalize="all", progressbar=False, compile_cache=False)
    # A warm-up too short to predict, or a run predicted long: the option is not used.
    fit = m.fit(draws=5, tune=20, chains=1, marginalize="all", progressbar=False, compile_cache=False)
    assert fit.posterior["fixef"].shape[:2] == (1, 5)
    monkeypatch.setattr(xla, "SHORT_RUN_S", 0.0)
    fit = m.fit(draws=5, tune=200, chains=1, marginalize="all", progressbar=False, compile_cache=False)
    assert fit.posterior["fixef"].shape[:2] == (1, 5)
