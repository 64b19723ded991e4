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
