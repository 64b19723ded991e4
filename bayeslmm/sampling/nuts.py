"""NumPyro's NUTS, advanced a chunk of iterations per XLA execution, the chains in threads.

The transition is NumPyro's: its warm-up adapter (dual averaging of the
step size, windowed diagonal mass matrix), its velocity Verlet integrator
and its iterative tree builder, all taken from NumPyro's public
``numpyro.infer.hmc_util`` functions; :func:`nuts_kernel` assembles them
exactly as ``numpyro.infer.hmc.hmc(algo="NUTS")`` does, so the same keys
give the same draws as ``numpyro.infer.MCMC(NUTS(potential_fn=...))``
(tested). Three things are added, each optional:

- the starting inverse mass matrix of each chain from the curvature of the
  potential at its start (:mod:`bayeslmm.sampling.mass_matrix`; NumPyro
  starts from the identity);
- Stan's extra U-turn checks between the halves of every subtree
  (:mod:`bayeslmm.sampling.compat`, which holds the only private NumPyro
  names the package uses);
- for a potential with Laplace kernels, each leapfrog step's Newton solves
  started from the modes of the step before (:func:`warm_potential`).

:func:`sample_nuts` runs warm-up and sampling as a sequence of short XLA
executions of one compiled program (:func:`_chunk_program`), each sized to
last about :data:`CHUNK_SECONDS`, copying the draws to the host between
them: memory stays bounded however long the run, the progress bar moves,
and an interrupt (Ctrl-C, Jupyter's stop button) ends the run within one
chunk. Chains run in threads of their own (``chain_method="parallel"``,
all on the default device: JAX releases the GIL while a program runs, so
one compilation serves every chain), or batched in one program with
``jax.vmap`` (``"vectorized"``, the better choice on one GPU).
"""

from __future__ import annotations

import threading
import time
import numpy as np

from .heap import release_freed_memory
from .interrupt import check_interrupt
from .mass_matrix import curvature_and_gradient

__all__ = ["CHUNK", "CHUNK_SECONDS", "RESTART_AT", "STATS", "nuts_kernel", "restart_iterations", "sample_nuts",
           "warm_potential"]

#: Seconds one XLA execution is aimed to last: the memory held during an
#: execution grows with its length; per-execution costs are a few ms.
CHUNK_SECONDS = 4.0
#: Most iterations per execution (the size of the draw buffer).
CHUNK = 250
#: Chunks that lasted this long are followed by a :func:`~bayeslmm.sampling.heap.release_freed_memory`.
TRIM_SECONDS = 1.0

#: With ``curvature_start``, the warm-up iterations after which each chain's starting inverse mass
#: matrix and step size are taken again, from the curvature where the chain has got to
#: (:func:`restart_iterations`).
RESTART_AT = (10, 25)

#: Sampler statistics recorded per draw, named as PyMC and ArviZ name them.
STATS = {
    "n_steps": lambda s: s.num_steps,
    "lp": lambda s: -s.potential_energy,
    "energy": lambda s: s.energy,
    "step_size": lambda s: s.adapt_state.step_size,
    "acceptance_rate": lambda s: s.accept_prob,
    "diverging": lambda s: s.diverging,
}


def nuts_kernel(potential_fn, num_warmup, target_accept=0.8, max_tree_depth=10, stan_uturn=True,
                dense_mass=False, warm_start=None):
    """``(init, step)``: NumPyro's NUTS transition for ``potential_fn`` (minus the log-density of a pytree).

    ``init(key, z, inverse_mass_matrix=None, potential_energy=None, z_grad=None, step_size=1.0)``
    returns NumPyro's ``HMCState`` at ``z``, as NumPyro's ``NUTS.init``
    would with the same key (warm-up adaptation starting from that step
    size and inverse mass matrix, the identity if None; the potential and
    its gradient at ``z`` are evaluated unless both are given); ``step(state)``
    one NUTS transition, adapting during the first ``num_warmup``.
    ``stan_uturn`` adds Stan's checks between subtree halves where the
    installed NumPyro is one :mod:`~bayeslmm.sampling.compat` was checked
    against. ``dense_mass`` adapts a dense inverse mass matrix (NumPyro's
    ``NUTS(dense_mass=True)``) instead of a diagonal one; a one-dimensional
    ``inverse_mass_matrix`` given to ``init`` then starts it as that diagonal.
    ``warm_start``: None, or ``(potential_and_modes, cold)`` for a potential
    with inner Newton solves (:func:`warm_potential`): each leapfrog step then
    evaluates ``potential_and_modes(z, modes) -> (U, modes)`` from the modes
    of the step before, carried in the integrator state beside the gradient
    (its ``z_grad`` is then ``(gradient, modes)``, ``cold`` at a chain's
    start and restarts). Pure functions: jit, vmap and trace them as any JAX function.

    Cost per transition: the leapfrog steps NUTS takes, each one gradient
    of ``potential_fn``; with ``dense_mass`` also an ``n x n``
    matrix-vector product per step (``n`` unconstrained coordinates) and,
    during warm-up, an ``n x n`` covariance update per iteration and a
    Cholesky factorization at the end of each window.
    """
    import jax.numpy as jnp
    from jax import lax, random
    from numpyro.infer.hmc import HMCState, momentum_generator
    from numpyro.infer.hmc_util import (
        IntegratorState, build_tree, euclidean_kinetic_energy, velocity_verlet, warmup_adapter)
    from numpyro.util import cond, identity

    from . import compat

    tree_builder = compat.build_tree_with_stan_checks if stan_uturn and compat.supported() else build_tree
    kinetic_fn = euclidean_kinetic_energy
    wa_init, wa_update = warmup_adapter(num_warmup, dense_mass=dense_mass, target_accept_prob=target_accept)
    vv_init, vv_update = (velocity_verlet(potential_fn, kinetic_fn) if warm_start is None
                          else _warm_verlet(potential_fn, *warm_start, kinetic_fn))
    max_delta_energy = 1000.0

    def init(key, z, inverse_mass_matrix=None, potential_energy=None, z_grad=None, step_size=1.0):
        # NumPyro's NUTS.init splits off a key for its model initialisation, then hmc's init_kernel splits three.
        key = random.split(key)[0]
        key_hmc, key_wa, key_momentum = random.split(key, 3)
        z_info = IntegratorState(z=z, r=None, potential_energy=None, z_grad=None)
        wa_state = wa_init(z_info, key_wa, lax.convert_element_type(step_size, jnp.result_type(float)),
                           inverse_mass_matrix=inverse_mass_matrix)
        r = momentum_generator(z, wa_state.mass_matrix_sqrt, key_momentum)
        vv_state = vv_init(z, r, potential_energy, z_grad)
        energy = vv_state.potential_energy + kinetic_fn(wa_state.inverse_mass_matrix, vv_state.r)
        zero = jnp.array(0, dtype=jnp.result_type(int))
        return HMCState(zero, vv_state.z, vv_state.z_grad, vv_state.potential_energy, energy, None, None, zero,
                        jnp.zeros(()), jnp.zeros(()), jnp.array(False), wa_state, key_hmc)

    def step(state):
        key, key_momentum, key_transition = random.split(state.rng_key, 3)
        r = momentum_generator(state.z, state.adapt_state.mass_matrix_sqrt, key_momentum)
        vv_state = IntegratorState(state.z, r, state.potential_energy, state.z_grad)
        tree = tree_builder(vv_update, kinetic_fn, vv_state, state.adapt_state.inverse_mass_matrix,
                            state.adapt_state.step_size, key_transition, max_delta_energy=max_delta_energy,
                            max_tree_depth=(max_tree_depth, max_tree_depth))
        accept_prob = tree.sum_accept_probs / tree.num_proposals
        vv_state = IntegratorState(tree.z_proposal, vv_state.r, tree.z_proposal_pe, tree.z_proposal_grad)
        adapt_state = cond(state.i < num_warmup, (state.i, accept_prob, vv_state, state.adapt_state),
                           lambda args: wa_update(*args), state.adapt_state, identity)
        itr = state.i + 1
        n = jnp.where(state.i < num_warmup, itr, itr - num_warmup)
        mean_accept = state.mean_accept_prob + (accept_prob - state.mean_accept_prob) / n
        return HMCState(itr, vv_state.z, vv_state.z_grad, vv_state.potential_energy, tree.z_proposal_energy,
                        None, None, tree.num_proposals, accept_prob, mean_accept, tree.diverging, adapt_state, key)

    return init, step


def _warm_verlet(potential_fn, potential_and_modes, cold, kinetic_fn):
    """NumPyro's velocity Verlet with the inner solves' modes carried in ``z_grad`` as ``(gradient, modes)``.

    The same arithmetic as ``numpyro.infer.hmc_util.velocity_verlet``; the
    tree builder passes ``z_grad`` through untouched (it selects and stores
    it, never computes with it), so the modes travel with every leaf and
    proposal. A start evaluates ``potential_fn`` (no warm start) and takes
    ``cold`` as its modes.
    """
    import jax
    from numpyro.infer.hmc_util import IntegratorState

    value_grad = jax.value_and_grad(potential_and_modes, has_aux=True)
    kinetic_grad = jax.grad(kinetic_fn, argnums=1)

    def init_fn(z, r, potential_energy=None, z_grad=None):
        if potential_energy is None or z_grad is None:
            potential_energy, z_grad = jax.value_and_grad(potential_fn)(z)
        return IntegratorState(z, r, potential_energy, (z_grad, cold))

    def update_fn(step_size, inverse_mass_matrix, state):
        z, r, _, (z_grad, modes) = state
        r = jax.tree.map(lambda r, g: r - 0.5 * step_size * g, r, z_grad)
        r_grad = kinetic_grad(inverse_mass_matrix, r)
        z = jax.tree.map(lambda z, rg: z + step_size * rg, z, r_grad)
        (potential_energy, modes), z_grad = value_grad(z, modes)
        r = jax.tree.map(lambda r, g: r - 0.5 * step_size * g, r, z_grad)
        return IntegratorState(z, r, potential_energy, (z_grad, modes))

    return init_fn, update_fn


def warm_potential(potential_fn, z, sizes=None):
    """``(potential_and_modes, cold)`` for :func:`nuts_kernel`'s ``warm_start``, or None.

    Where ``potential_fn`` holds Laplace kernels (each solving for a
    conditional mode), returns ``potential_and_modes(z, modes)``, the
    potential evaluated inside :func:`bayeslmm.ops.warm.warm_started`, with
    each kernel's Newton solve started from its entry of ``modes``, and the
    new modes; and ``cold``, zeros of their shapes (the start from 0). None
    for a potential without such solves: the sampler then runs NumPyro's
    integrator as it is. ``sizes``: the modes' lengths in evaluation order,
    where known; None: ``potential_fn`` is traced once at ``z`` (shapes
    only, under ``jax.eval_shape``) to find them. Tracing
    ``potential_and_modes`` raises ``ValueError`` if the solves it meets
    are not those of ``sizes``.
    """
    import jax
    import jax.numpy as jnp

    from bayeslmm.ops.warm import warm_started

    def modes_of(x, modes):
        with warm_started(modes) as found:
            u = potential_fn(x)
        return u, tuple(found)

    if sizes is None:
        shapes = [s.shape for s in jax.eval_shape(lambda x: modes_of(x, None)[1], z)]
    else:
        shapes = [(int(n),) for n in sizes]
    if not shapes:
        return None

    def potential_and_modes(x, modes):
        u, found = modes_of(x, modes)
        if [jnp.shape(m) for m in found] != shapes:
            raise ValueError(f"the potential's inner solves have modes of shapes {[jnp.shape(m) for m in found]}, "
                             f"not the expected {shapes}.")
        return u, found

    return potential_and_modes, tuple(jnp.zeros(s) for s in shapes)


def restart_iterations(tune: int, curvature_start: bool = True) -> tuple:
    """The warm-up iterations after which a chain's curvature start is taken again (maybe none).

    The curvature at the jittered start is the curvature far out in the tails,
    where the chain spends its first few iterations; in a typical-set
    direction it can be orders of magnitude off (a Laplace plan's signed SDs
    start near 0, where the marginal density is flat in them). NumPyro keeps
    that matrix for the whole initial fast window (75 iterations of a
    1000-iteration warm-up) and the step size then has to fit the worst
    direction, with long trees throughout that window (docs/marginalization.md
    has a Laplace fit's counts). After 10 iterations the chain
    is usually in the typical set, and the curvature there is the
    posterior's; the second restart (:data:`RESTART_AT`) covers a chain that
    took longer. Only while the initial fast window lasts (NumPyro's
    ``init_buffer``, 75 iterations, or 15% of a warm-up shorter than 1000:
    warm-ups under 200 iterations are left as they are). Cost: one
    initialisation (the compiled one, reused) per restart and chain.
    """
    if not curvature_start or tune < 200:
        return ()
    return RESTART_AT


def _restart_with(init):
    """``state -> init(state's key, position)``, carried on at ``state``'s iteration.

    The iteration count is the adaptation schedule's clock, so the windows that follow are NumPyro's.
    """
    return lambda state: init(state.rng_key, state.z)._replace(i=state.i)


def _collect(state, modes=False):
    # With warm-started solves z_grad is (gradient, modes): the modes at the draw go out beside it.
    z = list(state.z) + (list(state.z_grad[1]) if modes else [])
    return z, {k: f(state) for k, f in STATS.items()}


def _chunk_program(step, length, modes=False):
    """``(state, n) -> (state, draws)``: ``n <= length`` NUTS transitions, collected in a buffer of ``length``.

    ``n`` is an argument, not a constant, so that one compiled program serves
    every chunk, including a last, shorter one. ``modes``: the state is a
    warm-started one (:func:`warm_potential`), and the inner solves' modes
    at each draw are collected after the coordinates.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    def run(state, n):
        buf = jax.tree.map(lambda x: jnp.zeros((length,) + jnp.shape(x), jnp.result_type(x)),
                           _collect(state, modes))

        def body(i, carry):
            st, bf = carry
            st = step(st)
            bf = jax.tree.map(lambda b, v: lax.dynamic_update_index_in_dim(b, v, i, 0), bf, _collect(st, modes))
            return st, bf

        return lax.fori_loop(0, n, body, (state, buf))

    return run


def sample_nuts(logp_fn, initial_points, *, draws, tune, chains, target_accept=0.8, random_seed=None,
                chain_method="parallel", progressbar=False, curvature_start=True, stan_uturn=True,
                inverse_mass_matrix=None, compiler_options=None, dense_mass=False, inner_solves=None):
    """Draw ``tune`` + ``draws`` NUTS iterations per chain, at most :data:`CHUNK` per XLA execution.

    Parameters
    ----------
    logp_fn : callable
        The log-density of a list of unconstrained parameter arrays (JAX).
    initial_points : list of arrays
        The start of each chain: arrays with a leading axis of length ``chains``.
    random_seed : int, optional
        Chain ``c`` runs on key ``c`` of ``jax.random.split(PRNGKey(random_seed), chains)``.
    chain_method : {"parallel", "vectorized"}
        Chains in threads on the default device, or batched with ``jax.vmap``.
    curvature_start : bool
        Start each chain's warm-up from the inverse of the potential's
        diagonal curvature at its start (:mod:`bayeslmm.sampling.mass_matrix`);
        ignored when ``inverse_mass_matrix`` is given.
    stan_uturn : bool
        Stan's extra U-turn checks (:func:`nuts_kernel`).
    compiler_options : dict, optional
        XLA options for the two compilations (:mod:`bayeslmm.sampling.xla`).
    dense_mass : bool
        Adapt a dense inverse mass matrix instead of a diagonal one
        (:func:`nuts_kernel`); the curvature start is then its diagonal.
    inner_solves : tuple of int, optional
        The lengths of the modes ``logp_fn``'s inner Newton solves record,
        in evaluation order (:func:`warm_potential`), where the caller
        knows them (``JaxModel.inner_solves``); None: found by a shape-only
        trace of ``logp_fn``.

    Returns
    -------
    (samples, stats)
        ``samples``: host arrays (chains, draws, ...) in the order of
        ``initial_points``; ``stats``: :data:`STATS` plus ``tree_depth``,
        each (chains, draws), and, for a potential with inner solves,
        ``inner_modes``: per solve the modes at each draw, (chains, draws, n).

    Notes
    -----
    Cost: NUTS's leapfrog steps, plus one compilation of the chunk program
    and one of the initialisation (the step-size search and, with
    ``curvature_start``, ``2 n + 1`` potentials and gradients for the ``n``
    small parameters, else one gradient), compiled side by side; per chunk,
    one dispatch and a copy of its draws to the host. Raises ``ValueError`` if a chain's starting
    point has a non-finite log-density or gradient.
    """
    import jax

    if chain_method not in ("parallel", "vectorized"):
        raise ValueError(f"chain_method must be 'parallel' or 'vectorized', got {chain_method!r}.")
    with jax.enable_x64(True):
        return _sample_nuts(logp_fn, initial_points, draws, tune, chains, target_accept, random_seed,
                            chain_method, progressbar, curvature_start, stan_uturn, inverse_mass_matrix,
                            compiler_options, dense_mass, inner_solves)


def _sample_nuts(logp_fn, initial_points, draws, tune, chains, target_accept, random_seed, chain_method,
                 progressbar, curvature_start, stan_uturn, inverse_mass_matrix, compiler_options, dense_mass,
                 inner_solves):
    import jax
    import jax.numpy as jnp

    def potential(z):
        return -logp_fn(z)

    warm = warm_potential(potential, [jnp.asarray(p[0]) for p in initial_points], inner_solves)
    init, step = nuts_kernel(potential, tune, target_accept, stan_uturn=stan_uturn, dense_mass=dense_mass,
                             warm_start=warm)
    if inverse_mass_matrix is not None:
        imm = jnp.asarray(inverse_mass_matrix)

        def start(key, z):
            return init(key, z, imm)
    elif curvature_start:
        def start(key, z):
            return init(key, z, *curvature_and_gradient(potential, z))
    else:
        start = init

    if random_seed is None:
        random_seed = int(np.random.default_rng().integers(2**31))
    # Host arrays: the compiled programs take them as they are, where indexing
    # or converting device arrays compiles one small XLA program per shape.
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(random_seed), chains))
    params = [np.asarray(p) for p in initial_points]
    program = _chunk_program(step, min(CHUNK, tune + draws), modes=warm is not None)
    restart_at = restart_iterations(tune, curvature_start and inverse_mass_matrix is None)
    samples = [np.empty((chains, draws) + p.shape[1:], p.dtype) for p in params]
    modes = [] if warm is None else [np.empty((chains, draws) + c.shape, c.dtype) for c in warm[1]]
    bar = _progress((tune + draws) * chains, chains) if progressbar else None
    try:
        if chain_method == "parallel":
            init_c, run_c = _compile_both(start, program, (keys[0], [p[0] for p in params]), compiler_options)
            per_chain = _run_chains_apart(init_c, run_c, keys, params, tune, draws, bar, samples + modes,
                                          restart_at)
            stats = {k: np.stack([c[k] for c in per_chain]) for k in STATS}
        else:
            init_c, run_c = _compile_both(jax.vmap(start), jax.vmap(program, in_axes=(0, None)), (keys, params),
                                          compiler_options)
            state = init_c(keys, params)
            _check_starts(state, chains)
            stats = _drive(state, run_c, tune, draws, _take_draws, 1, bar, samples + modes,
                           restart=(restart_at, _restart_with(init_c)))
    finally:
        if bar is not None:
            bar.close()
    stats["tree_depth"] = np.log2(np.maximum(stats["n_steps"], 1)).astype(int) + 1
    if modes:
        stats["inner_modes"] = tuple(modes)
    return samples, stats


def _start(fn, *args, name="bayeslmm-compile"):
    """Start ``fn(*args)`` in a thread; return a function that waits for it, in short steps, and gives its result.

    A compilation or an XLA execution runs in C++; while the calling thread
    is inside it, CPython cannot deliver KeyboardInterrupt, whereas the wait
    raises it at once. Left behind on an interrupt, the thread finishes its
    call and its result is dropped.
    """
    # Not a daemon: an interpreter that exits after the interrupt waits for the call
    # to end. A daemon thread still inside XLA at exit is stopped by pthread_exit when it
    # next takes the GIL, and the forced unwind through XLA's C++ aborts the process
    # ("FATAL: exception not rethrown"). The wait is on an event, not Thread.join: in
    # CPython 3.11 a join that KeyboardInterrupt breaks marks the still-running thread
    # as stopped, and the exiting interpreter then no longer waits for it.
    import jax

    box, done = {}, threading.Event()

    def run():
        try:
            with jax.enable_x64(True):
                box["out"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["err"] = e
        finally:
            done.set()

    threading.Thread(target=run, name=name).start()

    def wait():
        while not done.wait(0.1):
            check_interrupt()
        check_interrupt()
        if "err" in box:
            raise box["err"]
        return box["out"]

    return wait


def _compile_both(init, run, init_args, compiler_options=None):
    """Compiled ``init`` and ``run``, the two XLA compilations side by side.

    Each program holds the log-density and its gradient; XLA releases the
    GIL while it compiles, so ``run``, the longer one, compiles in one
    thread while ``init`` compiles in another. ``init`` is traced first:
    ``run`` starts from its output's shapes.
    """
    import jax

    opts = compiler_options or None
    traced = jax.jit(init).trace(*init_args)
    run_compiled = _start(jax.jit(run).trace(traced.out_info, 1).lower().compile, opts, name="bayeslmm-compile-run")
    init_compiled = _start(traced.lower().compile, opts)()
    return init_compiled, run_compiled()


# The whole buffer is copied and cut on the host: slicing the device array by a
# chunk length that follows the measured rate would compile one small XLA
# program per distinct length, a cost on every fit and entries in the
# persistent compilation cache that no later fit can reuse.
def _take_draws(a, n):
    return np.asarray(a)[:, :n]


def _take_rows(a, n):
    return np.asarray(a)[:n]


def _drive(state, run, tune, draws, take, axis, bar, z_out, stop=None, restart=((), None)):
    """Advance ``state`` by ``tune`` + ``draws`` iterations in chunks; the post-warm-up stats.

    ``take(out, n)`` copies the first ``n`` draws of a chunk's buffers to the
    host; ``axis`` is their draw axis. The draws go into ``z_out`` (host
    arrays, ``draws`` long on ``axis``), written in place. Returns None,
    early, once ``stop`` is set. ``restart``: ``(iterations, fn)``; after each of
    those iteration counts the state becomes ``fn(state)`` (:func:`restart_iterations`).
    """
    import jax

    pieces = []
    done, n_next = 0, 1
    while done < tune + draws:
        if stop is not None and stop.is_set():
            return None
        # A chunk never straddles the end of warm-up, so warm-up draws are dropped whole.
        n = min(n_next, CHUNK, tune - done if done < tune else tune + draws - done)
        upcoming = [r for r in restart[0] if r > done]
        if upcoming:
            n = min(n, upcoming[0] - done)
        t0 = time.perf_counter()
        state, (z, st) = run(state, n)
        if done >= tune:
            at = (slice(None),) * axis + (slice(done - tune, done - tune + n),)
            for dst, a in zip(z_out, z):
                dst[at] = take(a, n)
            pieces.append({k: take(v, n) for k, v in st.items()})
        jax.block_until_ready(state)
        if time.perf_counter() - t0 >= TRIM_SECONDS:
            # The execution's freed buffers (bayeslmm.sampling.heap); after short
            # chunks the call would cost more than it frees.
            release_freed_memory()
        # The next chunk's length follows the latest rate, growing at most
        # twofold: one cheap iteration says little of the next ones, and early
        # warm-up iterations can take a thousand times longer than late ones.
        n_next = max(1, min(2 * n, int(CHUNK_SECONDS * n / max(time.perf_counter() - t0, 1e-6))))
        done += n
        if done in restart[0]:
            state = restart[1](state)
        if bar is not None:
            bar.update(n)
    return {k: np.concatenate([p[k] for p in pieces], axis=axis) for k in STATS}


def _run_chains_apart(init, run, keys, params, tune, draws, bar, z_out, restart_at=()):
    """Each chain driven by its own thread, all on the default device: the stats of each chain.

    Chain ``c`` writes its draws into ``z[c]`` for each array ``z`` of ``z_out``.
    JAX releases the GIL while a program runs, so the threads sample at
    once, and the chains share one compilation of ``init`` and ``run``.
    """
    import jax

    out, errors = [None] * len(keys), []
    # Set on an error in any chain, or on an interrupt (Ctrl-C, Jupyter's
    # stop button) in the caller's thread: the chains stop after their chunk.
    stop = threading.Event()

    def start(c):
        state = init(keys[c], [p[c] for p in params])
        _check_starts(state, 1)
        return state

    finished = [threading.Event() for _ in keys]

    def chain(c):
        try:
            # JAX's float64 setting is per thread.
            with jax.enable_x64(True):
                out[c] = _drive(start(c), run, tune, draws, _take_rows, 0, bar,
                                [z[c] for z in z_out], stop,
                                (restart_at, _restart_with(init)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            stop.set()
        finally:
            finished[c].set()

    # Not daemons (see _start): on an interrupt they stop after their chunk, and an
    # interpreter that exits waits for that rather than killing them inside XLA.
    threads = [threading.Thread(target=chain, args=(c,), name=f"bayeslmm-chain-{c}")
               for c in range(len(keys))]
    # Waits on events, in short steps, rather than Thread.join: an interrupt
    # reaches this thread at once, and a join that an interrupt has broken
    # can return while its thread still runs (CPython 3.11).
    try:
        for t in threads:
            t.start()
        for f in finished:
            while not f.wait(0.2):
                check_interrupt()
        check_interrupt()
    except BaseException:
        stop.set()
        # The chains stop after their current chunk; waiting for that (briefly)
        # keeps an interpreter that exits next from tearing down threads inside XLA.
        deadline = time.monotonic() + 5.0
        for f in finished:
            f.wait(max(0.0, deadline - time.monotonic()))
        raise
    if errors:
        raise errors[0]
    return out


def _progress(total, chains):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"NUTS, {chains} chain{'s' if chains > 1 else ''}", unit="it")


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
