"""Sampling time without JAX compilation, for NumPyro runs inside ``pm.sample``.

Imported by both fit runners (bayeslmm's and Bambi's, which run in different
virtual environments); it needs only jax and pymc, which both have.
"""

import time


def instrument_numpyro():
    """Time the NumPyro run inside ``pm.sample`` and the JAX compilation that happens inside it.

    PyMC's own ``sampling_time`` covers the NumPyro run including XLA
    compilation of the sampler; Stan's elapsed times exclude its C++
    compilation. To report comparable sampling times this wraps PyMC's
    ``_sample_numpyro_nuts`` (start/end of the run, results blocked on) or,
    where bayeslmm is installed, bayeslmm's chunked driver instead, and
    listens to JAX's compile events; the sampling time is the run minus the
    union of the compile intervals inside it.
    """
    import jax

    rec = {"events": [], "windows": []}

    def listener(name, dur, **kwargs):
        if name.startswith("/jax/core/compile/"):
            t = time.perf_counter()
            rec["events"].append((t - dur, t))

    jax.monitoring.register_event_duration_secs_listener(listener)

    def timed(orig):
        def wrapped(*args, **kwargs):
            t0 = time.perf_counter()
            out = orig(*args, **kwargs)
            jax.block_until_ready(out[0])
            rec["windows"].append((t0, time.perf_counter()))
            return out

        return wrapped

    try:  # bayeslmm samples through its own chunked driver, looked up when a fit starts
        import bayeslmm.sampling.nuts as chunked
    except ImportError:  # Bambi's environment: pm.sample(nuts_sampler="numpyro") imports pymc.sampling.jax anyway
        import pymc.sampling.jax as pmjax

        pmjax._sample_numpyro_nuts = timed(pmjax._sample_numpyro_nuts)
    else:
        # Not pymc.sampling.jax: its import sets XLA_FLAGS to 100 host devices, which slows the fit
        # that follows (docs/benchmarks.md).
        chunked.sample_nuts = timed(chunked.sample_nuts)
    return rec


def sampling_times(rec):
    """(seconds of NumPyro runs, seconds of JAX compilation inside them)."""
    run = sum(b - a for a, b in rec["windows"])
    spans = sorted((max(a, w0), min(b, w1)) for a, b in rec["events"] for w0, w1 in rec["windows"]
                   if min(b, w1) > max(a, w0))
    comp, end = 0.0, float("-inf")
    for a, b in spans:  # union of possibly nested intervals
        if b > end:
            comp += b - max(a, end)
            end = b
    return run, comp
