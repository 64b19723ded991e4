"""The one place where sampler options live.

``numpyro`` (default) and ``blackjax`` run the model's JAX translation;
``pymc`` is PyMC's own NUTS on the PyTensor C/Python backend; ``nutpie``
needs the optional nutpie package. All sample in float64.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from functools import cache, partial
from types import SimpleNamespace

import pymc as pm
import pytensor
from threadpoolctl import threadpool_limits

from .chunked_nuts import numpyro_chunked
from .uturn import extra_uturn_checks

__all__ = ["SAMPLERS", "drop_internal", "run_sampler"]

SAMPLERS = ("numpyro", "pymc", "blackjax", "nutpie")


def _check_available(sampler: str) -> None:
    if sampler in ("blackjax", "nutpie") and importlib.util.find_spec(sampler) is None:
        raise ValueError(f"sampler={sampler!r} needs the {sampler} package: pip install {sampler}.")


def run_sampler(model, *, sampler, draws, tune, chains, target_accept, random_seed, progressbar,
                low_memory=False):
    """Run NUTS on ``model``; return (InferenceData, seconds spent sampling, compilation included).

    The JAX samplers go straight to ``pymc.sampling.jax.sample_jax_nuts``,
    which is what ``pm.sample(nuts_sampler=...)`` calls after
    ``assign_step_methods`` has checked that NUTS applies to every variable:
    a PyTensor gradient of the whole model that took 0.86 s of a 9 s fit
    (dutch). bayeslmm's models are continuous and differentiable by
    construction, so the check is skipped, with the same seed handling.

    ``low_memory=True`` (numpyro only) runs NUTS in chunks of short XLA
    executions (:mod:`bayeslmm.chunked_nuts`), CPU chains in threads.
    """
    _check_available(sampler)
    kwargs = dict(
        model=model, draws=draws, tune=tune, chains=chains, target_accept=target_accept,
        random_seed=random_seed, progressbar=progressbar, compute_convergence_checks=False,
        idata_kwargs={"log_likelihood": False},
    )
    if sampler == "pymc":
        kwargs["cores"] = min(chains, os.cpu_count() or 1)
        sample = pm.sample
    else:
        import pymc.sampling.jax as pmjax

        sample = partial(pmjax.sample_jax_nuts, nuts_sampler=sampler)
    if sampler == "numpyro":
        import jax

        # The chunked loop runs CPU chains in threads on one device; NumPyro's
        # own loop needs one XLA host device per chain (see bayeslmm/__init__.py).
        # One GPU runs the chains best as one batched program.
        on_cpu = jax.default_backend() == "cpu"
        parallel = (low_memory and on_cpu) or jax.local_device_count() >= chains
        kwargs["chain_method"] = "parallel" if parallel else "vectorized"
    t0 = time.perf_counter()
    # jaxlib's CPU Cholesky/triangular solves call scipy's OpenBLAS. Its threads
    # fight the parallel chains for the cores: on 2 cores one marginal
    # log-density + gradient went from 0.35 ms to 7-8 ms. Chains are the parallelism.
    # PyTensor records a Python stack trace for every node it creates (for its
    # error messages); the graphs here are built by bayeslmm, and the traces
    # cost 0.5 s of rewriting per fit.
    # The chunked loop checks the initial points itself, with the compiled NUTS initialisation.
    points = numpyro_chunked(sampler) if low_memory else _jitted_initial_point_check(sampler)
    with (points, _jax_rewrites_without_blas_probe(sampler), threadpool_limits(1, "blas"),
          extra_uturn_checks(sampler == "numpyro"),
          pytensor.config.change_flags(traceback__limit=0)):
        idata = sample(**kwargs)
    return drop_internal(idata), time.perf_counter() - t0


@cache
def _jax_mode_without_usmm():
    from pytensor.compile import mode

    return SimpleNamespace(JAX=mode.JAX.excluding("local_usmm"))


@contextlib.contextmanager
def _jax_rewrites_without_blas_probe(sampler):
    """Have PyMC translate graphs to JAX without PyTensor's ``local_usmm`` rewrite.

    PyMC's ``get_jaxified_graph`` rewrites the log-density in PyTensor's JAX
    mode, whose rewrites include the sparse ``local_usmm``. Its pattern
    matches the scalar-times-product nodes of bayeslmm's graphs, and its
    condition reads ``config.blas__ldflags``, which, the first time in a
    process, compiles a C test program to look for a BLAS: 0.3 s of a 9 s
    dillonE1 fit, for a rewrite to a C op that JAX has no translation for.
    PyMC private API (``pymc.sampling.jax.mode``): if it moves, PyMC's own
    path runs unchanged.
    """
    import pymc.sampling.jax as pmjax
    from pytensor.compile import mode

    if sampler not in ("numpyro", "blackjax") or getattr(pmjax, "mode", None) is not mode:
        yield
        return
    pmjax.mode = _jax_mode_without_usmm()
    try:
        yield
    finally:
        pmjax.mode = mode


@contextlib.contextmanager
def _jitted_initial_point_check(sampler):
    """Have PyMC check the jittered initial points with a jitted log-density.

    For the JAX samplers PyMC evaluates the log-density at each chain's
    jittered start op by op, which compiles every primitive on its own: 2-4 s
    of a 6-12 s small fit on the benchmark CPU (149 XLA compilations). One
    jitted function does the same check after one compilation. PyMC private
    API: if it moves, PyMC's own path is used unchanged.
    """
    import pymc.sampling.jax as pmjax

    orig = getattr(pmjax, "_get_batched_jittered_initial_points", None)
    if sampler not in ("numpyro", "blackjax") or orig is None:
        yield
        return

    def jitted(*args, logp_fn=None, **kw):
        import jax

        return orig(*args, logp_fn=None if logp_fn is None else jax.jit(logp_fn), **kw)

    pmjax._get_batched_jittered_initial_points = jitted
    try:
        yield
    finally:
        pmjax._get_batched_jittered_initial_points = orig


def drop_internal(idata):
    """Remove the builder's internal coordinates (``*__raw``): ``sd_<g>`` and ``cor_<g>`` carry them by name."""
    for group in ("posterior", "prior"):
        if group in idata.groups():
            ds = idata[group]
            raw = [v for v in ds.data_vars if v.endswith("__raw")]
            if raw:
                idata[group] = ds.drop_vars(raw)
    return idata
