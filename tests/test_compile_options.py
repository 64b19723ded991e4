"""XLA compiler options set around a fit: which models get them, and that the hook reaches XLA."""

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import compiler

from bayeslmm.compile_options import FAST_COMPILE, ROW_LIMIT, options_for, xla_compile_options


def test_options_only_for_models_that_read_few_rows():
    assert options_for(0) == FAST_COMPILE            # sufficient statistics only
    assert options_for(ROW_LIMIT - 1) == FAST_COMPILE
    assert options_for(ROW_LIMIT) == {}              # large N: XLA's defaults run faster


def test_options_reach_the_compiler_and_are_removed_afterwards():
    orig = compiler.get_compile_options
    with xla_compile_options(FAST_COMPILE):
        inside = dict(compiler.get_compile_options(1, 1).env_option_overrides)
        # a caller's own option wins over the block's
        mine = dict(compiler.get_compile_options(
            1, 1, env_options_overrides={"xla_cpu_use_fusion_emitters": True}).env_option_overrides)
        y = jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.arange(3.0))
    assert inside == FAST_COMPILE
    assert mine == {"xla_cpu_use_fusion_emitters": True}
    assert compiler.get_compile_options is orig
    assert dict(compiler.get_compile_options(1, 1).env_option_overrides) == {}
    np.testing.assert_allclose(np.asarray(y), 2.0 * np.sin(np.arange(3.0)))


def test_empty_options_leave_jax_alone():
    orig = compiler.get_compile_options
    with xla_compile_options({}):
        assert compiler.get_compile_options is orig


def test_options_are_dropped_when_xla_does_not_know_them(monkeypatch):
    import bayeslmm.compile_options as co

    monkeypatch.setattr(co, "FAST_COMPILE", {"xla_no_such_option_anywhere": True})
    co._supported.cache_clear()
    try:
        assert co.options_for(0) == {}
    finally:
        co._supported.cache_clear()
