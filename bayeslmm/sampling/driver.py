"""Run a sampler on a bayeslmm ``pm.Model`` and return ArviZ InferenceData: the one place sampler options live.

The JAX samplers get the model's log-density by translating its PyTensor
graph with PyTensor's public ``jax_funcify`` (:func:`jax_model`):

- ``numpyro`` (default): NumPyro's NUTS in short XLA executions, chains in
  threads (:mod:`bayeslmm.sampling.nuts`); with ``low_memory=False``
  NumPyro's own ``MCMC.run``, one execution over all chains;
- ``blackjax``: blackjax's window adaptation and NUTS, chains batched;
- ``nutpie``: nutpie's sampler on the model's JAX translation;
- ``pymc``: PyMC's own NUTS on PyTensor's C backend (``pm.sample``), the
  chains one after another.

All sample in float64; the JAX ones inside ``jax.enable_x64(True)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["INNER_MODE", "SAMPLERS", "JaxModel", "drop_internal", "jax_model", "sample"]

SAMPLERS = ("numpyro", "pymc", "blackjax", "nutpie")

#: Posterior variable holding, per draw, the conditional mode that the log-density's one inner Newton
#: solve (a Laplace plan's) found there, where the sampler records it (bayeslmm's NUTS); the Laplace
#: recovery starts from it and removes it.
INNER_MODE = "inner_mode__"

_EXTRAS = {"blackjax": "blackjax", "nutpie": "nutpie"}


def check_available(sampler: str) -> None:
    """Raise ``ValueError`` if the optional package a sampler needs is not installed."""
    pkg = _EXTRAS.get(sampler)
    if pkg and importlib.util.find_spec(pkg) is None:
        raise ValueError(f"sampler={sampler!r} needs the optional {pkg} package: pip install 'bayeslmm[{pkg}]'.")


@dataclass(frozen=True)
class JaxModel:
    """A PyMC model's log-density and posterior variables as JAX functions of its unconstrained values.

    ``logp(values)`` is the log-density (Jacobians included) of the list
    ``values`` (in the order of ``value_names``); ``outputs(values)`` the
    list of posterior variables named ``output_names`` (free variables on
    their own scale, and deterministics); ``dims`` and ``coords`` label them.
    ``inner_solves``: the lengths of the modes that ``logp``'s inner Newton
    solves record, in the order it evaluates them (:mod:`bayeslmm.ops.warm`;
    empty: none), or None where unknown.
    """

    value_names: tuple
    logp: object
    outputs: object
    output_names: tuple
    dims: dict
    coords: dict
    model: object
    inner_solves: tuple | None = None

    def initial_points(self, chains: int, seed) -> list:
        """Jittered starts (PyMC's: uniform(-1, 1) around each variable's initial value, unconstrained), stacked per chain.

        The values of ``pymc.initial_point.make_initial_point_fn`` with the
        same seeds. Its graph is compiled here with PyTensor's Python linker:
        the default virtual machine imports PyTensor's C backend (and with it
        setuptools) the first time in a process, for a handful of scalar ops.
        Cost: one graph evaluation per chain.
        """
        from pymc.initial_point import make_initial_point_expression
        from pymc.pytensorf import compile as compile_pymc
        from pymc.pytensorf import find_rng_nodes, replace_rng_nodes, reseed_rngs
        from pytensor.compile.mode import Mode

        m = self.model
        exprs = make_initial_point_expression(
            free_rvs=m.free_RVs, rvs_to_transforms=m.rvs_to_transforms, initval_strategies=dict(m.rvs_to_initial_values),
            jitter_rvs=set(m.free_RVs), default_strategy="support_point", return_transformed=True)
        fn = compile_pymc(inputs=[], outputs=replace_rng_nodes(exprs), mode=Mode(linker="py", optimizer="fast_compile"))
        rngs = find_rng_nodes(fn.maker.fgraph.outputs)
        names = [m.rvs_to_values[rv].name for rv in m.free_RVs]
        points = []
        for s in np.random.default_rng(seed).integers(2**30, size=chains):
            reseed_rngs(rngs, int(s))
            points.append(dict(zip(names, fn())))
        return [np.stack([np.asarray(p[n], dtype=np.float64) for p in points]) for n in self.value_names]


def _without_shared(outputs):
    """The graphs with every shared variable replaced by a constant of its value (JAX functions take no state)."""
    import pytensor.tensor as pt
    from pytensor.compile import SharedVariable
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs
    from pytensor.tensor.random.type import RandomType

    shared = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
    if any(isinstance(v.type, RandomType) for v in shared):
        raise ValueError("the log-density graph holds a random generator; it cannot be translated to JAX.")
    if not shared:
        return list(outputs)
    return clone_replace(outputs, {v: pt.constant(v.get_value(borrow=True), name=v.name) for v in shared})


def jax_function(inputs, outputs):
    """A JAX function of ``inputs`` returning the list of ``outputs`` (PyTensor graphs), through ``jax_funcify``.

    The graph is rewritten with PyTensor's JAX mode, plus PyMC's
    ``local_remove_check_parameter`` (the parameter checks of PyMC's
    densities: bayeslmm checks its parameters before it builds a model, and
    JAX cannot raise inside a compiled function), and without the sparse
    ``local_usmm`` rewrite, whose condition probes for a BLAS by compiling a
    C program (the first time in a process), for a rewrite to a C op that
    JAX cannot run anyway.
    """
    from pytensor.link.jax.dispatch import jax_funcify

    return jax_funcify(_rewritten(inputs, outputs))


def _rewritten(inputs, outputs):
    """The FunctionGraph of ``outputs`` that :func:`jax_function` translates, rewritten as it says."""
    from pytensor.compile.mode import get_mode
    from pytensor.graph.fg import FunctionGraph

    fgraph = FunctionGraph(inputs=inputs, outputs=_without_shared(outputs), clone=True)
    get_mode("JAX").including("local_remove_check_parameter").excluding("local_usmm").optimizer.rewrite(fgraph)
    return fgraph


def _inner_solves(fgraph) -> tuple:
    """The lengths of the modes recorded by ``fgraph``'s kernel Ops with inner solves, in evaluation order.

    ``jax_funcify`` evaluates a graph's nodes in ``fgraph.toposort()``
    order, so this is the order in which its JAX function meets the solves.
    """
    from bayeslmm.ops.kernel_op import KernelOp

    return tuple(n.op.inner_solve_size for n in fgraph.toposort()
                 if isinstance(n.op, KernelOp) and n.op.inner_solve_size is not None)


def jax_model(model) -> JaxModel:
    """Translate ``model`` (a ``pm.Model``) into a :class:`JaxModel`. Cost: one graph rewrite per function."""
    import pytensor
    from pytensor.link.jax.dispatch import jax_funcify

    values = list(model.value_vars)
    rvs = [v for v in list(model.free_RVs) + list(model.deterministics)]
    # PyTensor records a Python stack trace for every node it creates (for its
    # error messages); the graphs here are bayeslmm's own, and the traces cost
    # a noticeable part of the rewriting.
    with pytensor.config.change_flags(traceback__limit=0):
        logp_graph = _rewritten(values, [model.logp()])
        logp_fn = jax_funcify(logp_graph)
        out_fn = jax_function(values, model.replace_rvs_by_values(rvs))
    dims = {k: list(v) for k, v in model.named_vars_to_dims.items() if v}
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}

    def logp(xs):
        return logp_fn(*xs)[0]

    def outputs(xs):
        return out_fn(*xs)

    return JaxModel(tuple(v.name for v in values), logp, outputs, tuple(v.name for v in rvs), dims, coords, model,
                    _inner_solves(logp_graph))


def _posterior(jm: JaxModel, samples, chunk=500):
    """Posterior variables of every draw of the unconstrained ``samples`` (chains, draws, ...): name -> array."""
    import jax

    chains, draws = samples[0].shape[:2]
    flat = [s.reshape((chains * draws,) + s.shape[2:]) for s in samples]
    fn = jax.jit(jax.vmap(jm.outputs))
    parts = [fn([f[i:i + chunk] for f in flat]) for i in range(0, chains * draws, chunk)]
    out = {}
    for k, name in enumerate(jm.output_names):
        if name.endswith("__raw"):  # the builder's internal coordinates: sd_<g>, cor_<g> carry them by name
            continue
        a = np.concatenate([np.asarray(p[k]) for p in parts])
        out[name] = a.reshape((chains, draws) + a.shape[1:])
    return out


def _inference_data(jm: JaxModel, posterior: dict, stats: dict):
    import arviz as az

    dims = {k: v for k, v in jm.dims.items() if k in posterior}
    return az.from_dict(posterior=posterior, sample_stats=stats, coords=jm.coords, dims=dims)


def sample(model, *, sampler="numpyro", draws=1000, tune=1000, chains=4, target_accept=0.8, random_seed=None,
           progressbar=True, low_memory=True, compiler_options=None, dense_mass=False):
    """NUTS on ``model``; returns ``(InferenceData, seconds spent sampling, compilation included)``.

    The posterior holds the free variables on their own scale and the
    deterministics, without the builder's ``*__raw`` coordinates; the
    sample stats ``lp``, ``energy``, ``step_size``, ``acceptance_rate``,
    ``diverging``, ``n_steps``, ``tree_depth``. ``dense_mass`` (the chunked
    numpyro sampler only) adapts a dense inverse mass matrix
    (:func:`bayeslmm.sampling.nuts.sample_nuts`). Cost: the sampler's
    leapfrog steps plus one translation and compilation of the log-density.
    """
    check_available(sampler)
    if dense_mass and not (sampler == "numpyro" and low_memory):
        raise ValueError(f"dense_mass=True needs sampler='numpyro' with low_memory=True, got sampler={sampler!r}, "
                         f"low_memory={low_memory!r}.")
    seeds = np.random.default_rng(random_seed).integers(2**30, size=2)
    t0 = time.perf_counter()
    # jaxlib's CPU Cholesky and triangular solves call scipy's OpenBLAS, whose
    # threads fight the parallel chains for the cores: the chains are the parallelism.
    with threadpool_limits(1, "blas"):
        idata = _sample(model, sampler, draws, tune, chains, target_accept, seeds, progressbar, low_memory,
                        compiler_options, dense_mass)
    return idata, time.perf_counter() - t0


def _sample(model, sampler, draws, tune, chains, target_accept, seeds, progressbar, low_memory, compiler_options,
            dense_mass):
    import jax

    if sampler == "pymc":
        return _sample_pymc(model, draws, tune, chains, target_accept, int(seeds[0]), progressbar)
    with jax.enable_x64(True):
        if sampler == "nutpie":
            return _sample_nutpie(model, draws, tune, chains, target_accept, int(seeds[0]), progressbar)
        jm = jax_model(model)
        starts = jm.initial_points(chains, int(seeds[0]))
        if sampler == "blackjax":
            samples, stats = _sample_blackjax(jm, starts, draws, tune, chains, target_accept, int(seeds[1]))
        elif low_memory:
            from .nuts import sample_nuts

            # One GPU runs the chains best as one batched program; CPU chains in threads.
            method = "parallel" if jax.default_backend() == "cpu" else "vectorized"
            samples, stats = sample_nuts(jm.logp, starts, draws=draws, tune=tune, chains=chains,
                                         target_accept=target_accept, random_seed=int(seeds[1]),
                                         chain_method=method, progressbar=progressbar,
                                         compiler_options=compiler_options, dense_mass=dense_mass,
                                         inner_solves=jm.inner_solves)
        else:
            samples, stats = _sample_numpyro_mcmc(jm, starts, draws, tune, chains, target_accept, int(seeds[1]),
                                                  progressbar)
        modes = stats.pop("inner_modes", ())
        posterior = _posterior(jm, samples)
        if len(modes) == 1:
            posterior[INNER_MODE] = modes[0]
        return _inference_data(jm, posterior, stats)


def _sample_numpyro_mcmc(jm, starts, draws, tune, chains, target_accept, seed, progressbar):
    """NumPyro's own ``MCMC.run``: one XLA execution for warm-up and sampling of all chains."""
    import jax
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(potential_fn=lambda z: -jm.logp(z), target_accept_prob=target_accept)
    method = "parallel" if jax.local_device_count() >= chains else "vectorized"
    mcmc = MCMC(kernel, num_warmup=tune, num_samples=draws, num_chains=chains, chain_method=method,
                progress_bar=progressbar)
    fields = ("num_steps", "potential_energy", "energy", "adapt_state.step_size", "accept_prob", "diverging")
    init = [a if chains > 1 else a[0] for a in starts]
    mcmc.run(jax.random.PRNGKey(seed), init_params=init, extra_fields=fields)
    z = mcmc.get_samples(group_by_chain=True)
    ex = mcmc.get_extra_fields(group_by_chain=True)
    stats = {"n_steps": ex["num_steps"], "lp": -ex["potential_energy"], "energy": ex["energy"],
             "step_size": ex["adapt_state.step_size"], "acceptance_rate": ex["accept_prob"],
             "diverging": ex["diverging"]}
    stats = {k: np.asarray(v) for k, v in stats.items()}
    stats["tree_depth"] = np.log2(np.maximum(stats["n_steps"], 1)).astype(int) + 1
    return [np.asarray(a) for a in z], stats


def _sample_blackjax(jm, starts, draws, tune, chains, target_accept, seed):
    """blackjax's window adaptation and NUTS through its public API, the chains batched with ``jax.vmap``."""
    import blackjax
    import jax

    def one_chain(key, position):
        key_warm, key_run = jax.random.split(key)
        warmup = blackjax.window_adaptation(blackjax.nuts, jm.logp, target_acceptance_rate=target_accept)
        (state, params), _ = warmup.run(key_warm, position, num_steps=tune)
        kernel = blackjax.nuts(jm.logp, **params).step

        def body(state, key):
            state, info = kernel(key, state)
            return state, (state.position, info.num_integration_steps, info.acceptance_rate,
                           info.is_divergent, info.energy, state.logdensity)

        _, (pos, n_steps, acc, div, energy, lp) = jax.lax.scan(body, state, jax.random.split(key_run, draws))
        return pos, n_steps, acc, div, energy, lp, params["step_size"]

    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    out = jax.jit(jax.vmap(one_chain))(keys, [jax.numpy.asarray(s) for s in starts])
    pos, n_steps, acc, div, energy, lp, step = jax.device_get(out)
    stats = {"n_steps": np.asarray(n_steps), "lp": np.asarray(lp), "energy": np.asarray(energy),
             "step_size": np.broadcast_to(np.asarray(step)[:, None], np.shape(lp)).copy(),
             "acceptance_rate": np.asarray(acc), "diverging": np.asarray(div)}
    stats["tree_depth"] = np.log2(np.maximum(stats["n_steps"], 1)).astype(int) + 1
    return [np.asarray(p) for p in pos], stats


def _sample_nutpie(model, draws, tune, chains, target_accept, seed, progressbar):
    """nutpie's sampler on the model's JAX translation (nutpie's public ``compile_pymc_model``).

    The JAX backend, not numba: the marginal likelihood is a JAX function,
    which numba could run only in object mode.
    """
    import nutpie
    import pytensor

    # freeze_model=False: nutpie's freezing rebuilds the model as a new pm.Model, which
    # drops check_bounds=False, so PyMC's parameter checks come back, among them LKJCorr's
    # MatrixIsPositiveDefinite, which has no JAX translation.
    with pytensor.config.change_flags(traceback__limit=0):
        compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax", freeze_model=False)
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept,
                          progress_bar=progressbar, save_warmup=False)
    # nutpie keeps each transformed variable's unconstrained value too (sigma_log__), as PyMC's samplers do not.
    values = [v.name for v in model.value_vars if v.name not in model.named_vars]
    idata.posterior = idata.posterior.drop_vars([n for n in values if n in idata.posterior])
    return drop_internal(idata)


def _sample_pymc(model, draws, tune, chains, target_accept, seed, progressbar):
    """PyMC's NUTS (``pm.sample``) on PyTensor's C backend, the chains one after another in this process.

    PyMC's parallel chains run in worker processes: forked, they inherit the
    JAX runtime (which the marginal Op's ``perform`` starts) without its
    threads and deadlock; spawned, each re-imports PyMC and JAX and needs the
    user's script to guard its top level with ``if __name__ == "__main__":``.
    """
    import pymc as pm

    with _without_blas_notes():
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=1, target_accept=target_accept,
                          random_seed=seed, progressbar=progressbar, model=model, compute_convergence_checks=False,
                          idata_kwargs={"log_likelihood": False})
    return drop_internal(idata)


@contextlib.contextmanager
def _without_blas_notes():
    """Silence PyTensor's two notes about a missing BLAS while PyMC compiles the model's C functions.

    The first read of ``config.blas__ldflags`` in a process probes for a BLAS
    and, with a pip-installed PyTensor, warns that none was found; the small
    dense products of correlated blocks then log "Using NumPy C-API based
    implementation for BLAS functions". Both concern products of at most
    levels x d by d x d here (the marginal likelihood runs in JAX). The
    filters are removed after the block.
    """
    def keep(record):
        return not record.getMessage().startswith("Using NumPy C-API based implementation for BLAS")

    logger = logging.getLogger("pytensor.tensor.blas")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS", UserWarning)
        logger.addFilter(keep)
        try:
            yield
        finally:
            logger.removeFilter(keep)


def drop_internal(idata):
    """Remove the builder's internal coordinates (``*__raw``): ``sd_<g>`` and ``cor_<g>`` carry them by name."""
    for group in ("posterior", "prior"):
        if group in idata.groups():
            ds = idata[group]
            raw = [v for v in ds.data_vars if v.endswith("__raw")]
            if raw:
                setattr(idata, group, ds.drop_vars(raw))  # idata[group] = ... lists the group twice (ArviZ 0.23)
    return idata
