"""NumPyro's NUTS, run as a sequence of short XLA executions instead of one (``fit(low_memory=...)``).

NumPyro's ``MCMC`` runs warm-up and sampling of all chains as one compiled
program. On the CPU, with chains in parallel on several XLA host devices and
large data, the process grows for as long as that execution runs and is
given back only at its end: on the InstEval-shaped model (2,972 sampled
effects over 73,421 rows, 2 chains, 2 cores) by about 25 MB/s, to a 2.58 GB
peak for a 95 s run; one chain, or small data, stay flat, and glibc's
allocator settings (arena count, mmap and trim thresholds) change nothing.

Here the same kernel (``numpyro.infer.NUTS``: same adaptation schedule, same
random keys) is advanced a chunk of iterations per execution, each chunk
sized to last about :data:`CHUNK_SECONDS`, and the draws are copied to the
host between executions. Parallel chains each run in their own thread, all
on the one default XLA device: JAX releases the GIL while a program runs
and the CPU client runs executions from several threads at once, so one
compilation serves every chain. Measured on that model (2 chains,
1000 + 1000, 2 cores; seconds in the sampler, its compilation included):

- NumPyro's one execution: 95 s, peak 2.58 GB (seed 2);
- chunks, chains in threads, each on its own device (one compilation per
  device): 86 s, 1.72 GB (seed 2); 82 s, 1.59 GB (seed 1);
- chunks, chains in threads on one device (this loop): 79 s, 1.29 GB (seed 1);
- chunks, both chains in one ``pmap``: 128-148 s, 1.22-1.40 GB (seed 2),
  whether the chunks had a fixed number of iterations (a hundred
  executions or eleven) or a fixed number of leapfrog steps per chain. We
  have not found why.

On small models the chunked loop is also faster than NumPyro's: 0.5-2.4 s
less wall time for a 5-14 s fit (dillonE1, english, stroop; two seeds
each; its two programs are compiled side by side on two cores, and the
starting points are checked without a compilation of their own), so
``fit`` uses it for every NumPyro fit unless
``low_memory=False``. Each chain's warm-up starts from an inverse mass
matrix read off the curvature at its start (:mod:`bayeslmm.mass_matrix`;
NumPyro's own loop starts from the identity): on the InstEval-shaped
model 129,000 leapfrog steps instead of 271,000. Chunks round differently from NumPyro's one
program, so on a large model the chains part from NumPyro's after a while;
on small models the draws agree to 1e-6 (tested). The chunk loop also
gives the progress bar that NumPyro cannot show for parallel chains.

:func:`sample_numpyro_chunked` has the signature and the return value of
PyMC's ``pymc.sampling.jax._sample_numpyro_nuts``, which
:func:`numpyro_chunked` puts in its place while a fit samples, so PyMC's
initial points, post-processing and InferenceData stay as they are.
"""

from __future__ import annotations

import contextlib
import time
from functools import partial

import numpy as np

from .heap import release_freed_memory

__all__ = ["CHUNK", "CHUNK_SECONDS", "numpyro_chunked", "sample_numpyro_chunked"]

#: Seconds one XLA execution is aimed to last: the memory held during an
#: execution grows with its length; per-execution costs are a few ms.
CHUNK_SECONDS = 4.0
#: Most iterations per execution (the size of the draw buffer).
CHUNK = 250
#: Chunks that lasted this long are followed by a :func:`~bayeslmm.heap.release_freed_memory`.
TRIM_SECONDS = 1.0

# What PyMC's numpyro path records per draw, under the names it gives them
# (pymc.sampling.jax._numpyro_stats_to_dict).
_STATS = {
    "n_steps": lambda s: s.num_steps,
    "lp": lambda s: s.potential_energy,
    "energy": lambda s: s.energy,
    "step_size": lambda s: s.adapt_state.step_size,
    "acceptance_rate": lambda s: s.accept_prob,
    "diverging": lambda s: s.diverging,
}


def _collect(state):
    return list(state.z), {k: f(state) for k, f in _STATS.items()}


def _chunk_program(kernel, length):
    """``(state, n) -> (state, draws)``: ``n <= length`` NUTS transitions, collected in a buffer of ``length``.

    ``n`` is an argument, not a constant, so that one compiled program serves
    every chunk, including a last, shorter one.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    def run(state, n):
        buf = jax.tree.map(lambda x: jnp.zeros((length,) + jnp.shape(x), jnp.result_type(x)), _collect(state))

        def body(i, carry):
            st, bf = carry
            st = kernel.sample(st, (), {})
            bf = jax.tree.map(lambda b, v: lax.dynamic_update_index_in_dim(b, v, i, 0), bf, _collect(st))
            return st, bf

        return lax.fori_loop(0, n, body, (state, buf))

    return run


def sample_numpyro_chunked(
    model, target_accept, tune, draws, chains, chain_method, progressbar, random_seed,
    initial_points, nuts_kwargs, logp_fn=None,
):
    """Draw ``tune`` + ``draws`` NUTS iterations per chain, at most :data:`CHUNK` per XLA execution.

    Drop-in for ``pymc.sampling.jax._sample_numpyro_nuts`` (same arguments,
    same ``(raw_samples, sample_stats, numpyro)`` return). ``chain_method``
    "parallel" runs each chain in its own thread (all on the default XLA
    device), "vectorized" batches them in one program (``jax.vmap``), as
    NumPyro does.

    Cost: that of NumPyro's ``MCMC.run``, plus one compilation of the
    initialisation (one gradient, the step-size search and the curvature
    start of :mod:`bayeslmm.mass_matrix`), made beside the
    chunk program's (:func:`_compile_both`), and, per chunk, one dispatch
    and a copy of its draws to the host. PyMC's own check of the starting
    points (a separately compiled log-density) is replaced by a look at the
    initial state's energy and gradient (:func:`_check_starts`).
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import NUTS

    from pymc.sampling.jax import get_jaxified_logp

    from .mass_matrix import curvature_inverse_mass

    if logp_fn is None:
        logp_fn = get_jaxified_logp(model, negative_logp=False)
    nuts_kwargs = dict(nuts_kwargs)
    nuts_kwargs.setdefault("adapt_step_size", True)
    nuts_kwargs.setdefault("adapt_mass_matrix", True)
    nuts_kwargs.setdefault("dense_mass", False)
    kernel = NUTS(potential_fn=logp_fn, target_accept_prob=target_accept, **nuts_kwargs)
    # Start warm-up from the curvature at each chain's start (bayeslmm.mass_matrix)
    # unless the caller gave a mass matrix or asked for a dense one.
    curvature = (nuts_kwargs.get("inverse_mass_matrix") is None and nuts_kwargs["adapt_mass_matrix"]
                 and not nuts_kwargs["dense_mass"] and hasattr(kernel, "_inverse_mass_matrix"))

    keys = jax.random.PRNGKey(random_seed)
    if chains > 1:
        keys = jax.random.split(keys, chains)
        params = [jnp.asarray(p) for p in initial_points]
    else:  # PyMC passes one unbatched key and point for a single chain
        keys = keys[None]
        params = [jnp.asarray(p)[None] for p in initial_points]

    def init(key, point):
        if not curvature:
            return kernel.init(key, tune, point, model_args=(), model_kwargs={})
        # NumPyro's NUTS reads its starting inverse mass matrix from this
        # attribute (the constructor's argument) in init only.
        kernel._inverse_mass_matrix = curvature_inverse_mass(logp_fn, point)
        try:
            return kernel.init(key, tune, point, model_args=(), model_kwargs={})
        finally:
            kernel._inverse_mass_matrix = None

    program = _chunk_program(kernel, min(CHUNK, tune + draws))
    bar = _progress((tune + draws) * chains, chains) if progressbar else None
    if chain_method == "parallel":
        init_c, run_c = _compile_both(init, program, (keys[0], [p[0] for p in params]))
        samples = [np.empty((chains, draws) + p.shape[1:], p.dtype) for p in params]
        per_chain = _run_chains_apart(init_c, run_c, keys, params, tune, draws, bar, samples)
        stats = {k: np.stack([c[k] for c in per_chain]) for k in _STATS}
    elif chain_method == "vectorized":
        init_c, run_c = _compile_both(jax.vmap(init), jax.vmap(program, in_axes=(0, None)), (keys, params))
        state = init_c(keys, params)
        _check_starts(state, chains)
        samples = [np.empty((chains, draws) + p.shape[1:], p.dtype) for p in params]
        stats = _drive(state, run_c, tune, draws, lambda a, n: np.asarray(a[:, :n]), 1, bar, samples)
    else:
        raise ValueError(f"chain_method must be 'parallel' or 'vectorized', got {chain_method!r}.")
    if bar is not None:
        bar.close()
    stats["tree_depth"] = np.log2(stats["n_steps"]).astype(int) + 1
    return samples, stats, numpyro


def _compile_both(init, run, init_args):
    """Compiled ``init`` and ``run``, the two XLA compilations side by side.

    Each program holds the log-density and its gradient; XLA releases the
    GIL while it compiles, so ``run``, the longer one, compiles in a thread
    while this thread lowers and compiles ``init`` (dillonE1: 1.3 s and
    0.6 s of compilation, each alone). ``init`` is traced first all the
    same: NumPyro's kernel builds its transition function while ``init`` is
    traced, before ``run`` (which calls it) can be. Lowering ``init`` after
    ``run``'s compilation has started took 0.1 s off the start of a
    dillonE1 fit (3 runs each way).
    """
    from concurrent.futures import ThreadPoolExecutor

    import jax

    traced = jax.jit(init).trace(*init_args)
    run_lowered = jax.jit(run).trace(traced.out_info, 1).lower()
    with ThreadPoolExecutor(1) as pool:
        run_compiled = pool.submit(run_lowered.compile)
        return traced.lower().compile(), run_compiled.result()


def _drive(state, run, tune, draws, take, axis, bar, z_out, stop=None):
    """Advance ``state`` by ``tune`` + ``draws`` iterations in chunks; the post-warm-up stats.

    ``take(out, n)`` copies the first ``n`` draws of a chunk's buffers to the
    host; ``axis`` is their draw axis. The draws of the parameters go into
    ``z_out`` (host arrays, ``draws`` long on ``axis``): on large models they
    are the biggest arrays of the fit, and writing chunks and chains into
    them directly saves two copies of them. Returns None, early, once
    ``stop`` is set.
    """
    import jax

    pieces = []
    done, n_next = 0, 1
    while done < tune + draws:
        if stop is not None and stop.is_set():
            return None
        # A chunk never straddles the end of warm-up, so warm-up draws are dropped whole.
        n = min(n_next, CHUNK, tune - done if done < tune else tune + draws - done)
        t0 = time.perf_counter()
        state, (z, st) = run(state, n)
        if done >= tune:
            at = (slice(None),) * axis + (slice(done - tune, done - tune + n),)
            for dst, a in zip(z_out, z):
                dst[at] = take(a, n)
            pieces.append({k: take(v, n) for k, v in st.items()})
        jax.block_until_ready(state)
        if time.perf_counter() - t0 >= TRIM_SECONDS:
            # The execution's freed buffers (bayeslmm.heap); after short chunks
            # the call (up to 170 ms on a 1 GB heap) would cost more than it frees.
            release_freed_memory()
        # The next chunk's length follows the latest rate, growing at most
        # twofold: one cheap iteration says little of the next ones, and early
        # warm-up iterations can take a thousand times longer than late ones.
        n_next = max(1, min(2 * n, int(CHUNK_SECONDS * n / max(time.perf_counter() - t0, 1e-6))))
        done += n
        if bar is not None:
            bar.update(n)
    stats = {k: np.concatenate([p[k] for p in pieces], axis=axis) for k in _STATS}
    return stats


def _run_chains_apart(init, run, keys, params, tune, draws, bar, z_out):
    """Each chain driven by its own thread, all on the default device: the stats of each chain.

    Chain ``c`` writes its draws into ``z[c]`` for each array ``z`` of ``z_out``.

    Measured faster than one ``pmap`` over the chains with the same chunks,
    and than a device per chain (see the module docstring). JAX releases
    the GIL while a program runs, so the threads sample at once, and the
    chains share one compilation of ``init`` and ``run``.
    """
    import threading

    out, errors = [None] * len(keys), []
    # Set on an error in any chain, or on an interrupt (Ctrl-C, Jupyter's
    # stop button) in the caller's thread: the chains stop after their chunk.
    stop = threading.Event()

    def start(c):
        state = init(keys[c], [p[c] for p in params])
        _check_starts(state, 1)
        return state

    # Chain 0 starts here, so that a start that fails its check raises
    # before any thread runs.
    first = start(0)

    finished = [threading.Event() for _ in keys]

    def chain(c):
        try:
            state = first if c == 0 else start(c)
            out[c] = _drive(state, run, tune, draws, lambda a, n: np.asarray(a[:n]), 0, bar,
                            [z[c] for z in z_out], stop)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)
            stop.set()
        finally:
            finished[c].set()

    threads = [threading.Thread(target=chain, args=(c,), name=f"bayeslmm-chain-{c}") for c in range(len(keys))]
    # Waits on events, in short steps, rather than Thread.join: an interrupt
    # reaches this thread at once, and a join that an interrupt has broken
    # can return while its thread still runs (CPython 3.11).
    try:
        for t in threads:
            t.start()
        for f in finished:
            while not f.wait(0.2):
                pass
    except BaseException:
        stop.set()
        for t, f in zip(threads, finished):
            if t.ident is not None:  # started
                f.wait()
        raise
    if errors:
        raise errors[0]
    return out


def _progress(total, chains):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"NUTS, {chains} chain{'s' if chains > 1 else ''}", unit="it")


@contextlib.contextmanager
def numpyro_chunked(sampler):
    """While sampling with ``sampler="numpyro"``, have PyMC's JAX path call :func:`sample_numpyro_chunked`.

    PyMC private API: if ``_sample_numpyro_nuts`` moves, PyMC's own
    (single-execution) path runs unchanged.
    """
    import pymc.sampling.jax as pmjax

    if sampler != "numpyro" or not callable(getattr(pmjax, "_sample_numpyro_nuts", None)):
        yield
        return
    orig = pmjax._sample_numpyro_nuts
    orig_points = getattr(pmjax, "_get_batched_jittered_initial_points", None)
    pmjax._sample_numpyro_nuts = sample_numpyro_chunked
    if callable(orig_points):
        pmjax._get_batched_jittered_initial_points = partial(_unchecked_starts, orig_points)
    try:
        yield
    finally:
        pmjax._sample_numpyro_nuts = orig
        if callable(orig_points):
            pmjax._get_batched_jittered_initial_points = orig_points


def _unchecked_starts(points, *args, logp_fn=None, **kwargs):
    """PyMC's jittered initial points without its log-density check: :func:`_check_starts` does it.

    PyMC compiles the log-density for that check alone (0.5 s of a 10 s
    fit); NumPyro's ``init``, compiled anyway, evaluates it and its gradient
    at the same points.
    """
    return points(*args, logp_fn=lambda point: 0.0, **kwargs)


def _check_starts(state, chains):
    """Raise if a chain's initial point has a non-finite log-density or gradient."""
    import jax

    energy = np.asarray(state.potential_energy).reshape(chains)
    grad = np.stack([np.isfinite(np.asarray(g)).reshape(chains, -1).all(axis=1)
                     for g in jax.tree.leaves(state.z_grad)]).all(axis=0)
    bad = [c for c in range(chains) if not (np.isfinite(energy[c]) and grad[c])]
    if bad:
        raise ValueError(
            f"the log-density or its gradient is not finite at the jittered initial point of chain(s) "
            f"{bad} (log-density {[float(-energy[c]) for c in bad]}): check the data for extreme values, "
            "or the priors.")
