"""A starting inverse mass matrix for NUTS from the curvature of the potential at each chain's start.

NumPyro (like Stan) starts warm-up with the identity as inverse mass
matrix and estimates the posterior variances from the draws of its first
slow window, 75-100 iterations in. Until then one step size serves every
coordinate, so the most tightly determined parameter sets it: on large data
``log sigma`` can have a posterior SD of a few thousandths while
non-centred effects have about 1, and the first iterations then take
hundreds of leapfrog steps each. Started from the inverse of the
potential's diagonal curvature (:func:`curvature_inverse_mass`), warm-up
takes about as many steps as when started from the adapted matrix of a
finished run (docs/marginalization.md has the counts). NumPyro's adaptation
takes over from there unchanged.

Used by the chunked sampler (:mod:`bayeslmm.sampling.nuts`), inside the
compiled initialisation of each chain, as :func:`curvature_and_gradient`,
which also gives the potential and gradient at the start that the
integrator's first state needs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COORDINATEWISE", "curvature_and_gradient", "curvature_inverse_mass"]

#: Parameter arrays up to this size get their curvature one coordinate at a
#: time; larger ones (the per-level effects of sampled factors) keep 1.
COORDINATEWISE = 64

#: Bounds on the starting inverse mass (posterior variance scale in the
#: unconstrained space).
_BOUNDS = (1e-10, 1e4)


def curvature_inverse_mass(potential, params, eps=1e-3, coordinatewise=COORDINATEWISE):
    """Diagonal inverse mass ``1 / h`` from the potential's curvature ``h`` at ``params``.

    ``potential`` maps a pytree like ``params`` to a scalar (minus the log
    density). On the flattened parameters (``jax.flatten_util.ravel_pytree``,
    NumPyro's order), each coordinate ``i`` of an array with at most
    ``coordinatewise`` entries gets the second difference
    ``h_i = (U(x + eps e_i) - 2 U(x) + U(x - eps e_i)) / eps^2``, the
    diagonal Hessian entry ``H_ii`` (exact for a quadratic potential; the
    relative error of the exponential terms in log-scale coordinates is
    about ``eps^2``, the rounding error about ``|U| 2e-16 / eps^2``, 1e-5
    for a potential of 1e5). Those are the population-level effects, standard
    deviations, correlations and sigma, whose scales differ the most (a
    posterior SD of 0.004 for ``log sigma`` on 73,421 rows). Larger arrays,
    the non-centred effects of sampled factors, keep 1: their prior
    variance, which bounds their posterior one.

    Where ``h`` is not finite or not positive the entry is 1 (NumPyro's
    default); the result is clipped to [1e-10, 1e4].

    Cost: ``2 n_small + 1`` evaluations of the potential (no gradient),
    taken in one ``fori_loop`` so that the potential is compiled once.
    Traceable: call it inside the jitted initialisation.
    """
    return _curvature(lambda p: (potential(p), ()), (), params, eps, coordinatewise)[0]


def curvature_and_gradient(potential, params, eps=1e-3, coordinatewise=COORDINATEWISE):
    """``(inverse mass, U(params), grad U(params))``: :func:`curvature_inverse_mass` and what a chain's start needs.

    The same second differences, from evaluations of the potential and its
    gradient; the last evaluation is at ``params`` itself, so its value and
    gradient are returned too, for the integrator's initial state. A
    chain's initialisation then holds one copy of the gradient program
    rather than a potential-only copy for the curvature beside a gradient
    one, which is what its compilation time goes on.

    Cost: ``2 n_small + 1`` evaluations of the potential and its gradient
    (about three potentials each), in one ``fori_loop``. Traceable.
    """
    import jax
    import jax.numpy as jnp

    return _curvature(jax.value_and_grad(potential), jax.tree.map(jnp.zeros_like, params), params, eps,
                      coordinatewise)


def _curvature(evaluate, extra0, params, eps, coordinatewise):
    """``(inverse mass, U(params), extra(params))`` for ``evaluate(p) -> (U(p), extra(p))``.

    ``extra0``: zeros shaped like ``extra``, the loop's first carry (given, so that the potential is not traced
    once more only to read its output's shapes).
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(params)
    start, coords = 0, []
    for leaf in jax.tree.leaves(params):
        size = int(np.size(leaf))
        if size <= coordinatewise:
            coords += range(start, start + size)
        start += size
    inv = jnp.ones_like(flat)
    if not coords:
        return (inv,) + tuple(evaluate(params))
    n = len(coords)
    # Step k evaluates U at flat + sign[k] eps e_index[k] and adds it to slot[k]:
    # +eps and -eps for each coordinate, then the centre (sign 0) into slot n.
    # One evaluation per step keeps a single copy of the potential in the program;
    # the centre comes last, so the carried ``extra`` ends as the centre's.
    index = jnp.asarray(np.append(np.repeat(coords, 2), 0))
    sign = jnp.asarray(np.append(np.tile([1.0, -1.0], n), 0.0))
    slot = jnp.asarray(np.append(np.repeat(np.arange(n), 2), n))

    def body(k, carry):
        acc, _ = carry
        u = (sign[k] * eps) * jax.nn.one_hot(index[k], flat.size, dtype=flat.dtype)
        value, extra = evaluate(unravel(flat + u))
        return acc.at[slot[k]].add(value), extra

    sums, extra = jax.lax.fori_loop(0, 2 * n + 1, body, (jnp.zeros(n + 1, flat.dtype), extra0))
    h = (sums[:n] - 2.0 * sums[n]) / eps**2
    h = jnp.where(jnp.isfinite(h) & (h > 0), h, 1.0)
    return inv.at[jnp.asarray(coords)].set(jnp.clip(1.0 / h, *_BOUNDS)), sums[n], extra
