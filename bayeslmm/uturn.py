"""NUTS's U-turn check across the halves of every subtree (as in Stan and AdvancedHMC.jl), for NumPyro's NUTS.

NUTS stops doubling its trajectory when the two ends of the trajectory, or
of any binary subtree of it, move towards each other:
``p_left . rho <= 0`` or ``p_right . rho <= 0``, ``rho`` the sum of the
momenta over that stretch (NumPyro subtracts half the two end momenta,
Betancourt 2017, A.4.2). On a target that the adapted mass matrix has made
nearly isotropic, every coordinate turns with the same period, about
``2 pi / eps`` leapfrog steps. When that period is close to a tree's
length (15, 31, 63, ...), each subtree, and the whole trajectory, ends about
where it began, its end momenta agree with ``rho`` and no check fires; the
trajectory doubles to the next size, which again spans whole periods, and
so on. Stan's NUTS (``base_nuts.hpp``, since 2020) and AdvancedHMC.jl
(TuringLang/AdvancedHMC.jl#207) have checks that catch this: for each
merge of two subtrees ``A`` and ``B`` (in trajectory order), also
``A`` with the first state of ``B``, and the last state of ``A`` with
``B``. Those stretches are ``2^k + 1`` states long, so they cannot all span
whole periods. NumPyro (0.22) does not have them; its own code says so
(``_leaf_idx_to_ckpt_idxs``: "a tree 0 -> 7 is a circle, ...").

Measured on one machine:

- 500 independent normal coordinates (SDs 0.9-1.1), step 0.208, no
  adaptation, 2,000 draws: NumPyro's checks let 16.5% of the trajectories run
  47 to 255 leapfrog steps (mean 27.0); with these, none ran over 31 (mean
  19.7), and the bulk ESS went 2,263 -> 2,381.
- InstEval-shaped model (73,421 rows, 2,972 sampled student effects, d and
  dept marginalized; 2 chains, 1000 + 1000; leapfrog steps per draw after
  warm-up, per chain), seeds 1-3: NumPyro's checks gave chains of 15 and 108,
  15 and 31, 15 and 31 steps per draw; with these, 20 and 15, 31 and 31,
  15 and 31. The long chains (108 steps every draw) come and go with the
  adapted step size, so they are a matter of luck of the seed without these
  checks.
- Small models, everything marginalized (means over seeds 1-4, min bulk ESS
  per second): dillonE1 `||` 94 -> 116, eeg 66 -> 63, english 219 -> 209:
  within the spread of seeds.

The checks are evaluated on the same binary subtrees as NumPyro's, so the
trajectory, and whether it stops, depend only on the states in it and not
on where in it the chain started: the reversibility NUTS needs is kept
(Stan's argument). The added work per leapfrog step is two more momentum
dot products per completed subtree, and one more stored momentum per tree
level.

:func:`extra_uturn_checks` puts the checks into ``numpyro.infer.hmc_util``
while the sampler is traced (PyMC's JAX path, or bayeslmm's chunked loop).
NumPyro private API: if its tree builder does not have the arguments this
module was written against, NumPyro's own is left in place and a warning
says so.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings

__all__ = ["extra_uturn_checks", "supported"]

# Arguments of the NumPyro functions replaced here (as in numpyro 0.21 and 0.22, the versions checked).
_SUBTREE_ARGS = ["prototype_tree", "vv_update", "kinetic_fn", "inverse_mass_matrix", "step_size",
                 "going_right", "rng_key", "energy_current", "max_delta_energy", "r_ckpts", "r_sum_ckpts"]
_COMBINE_ARGS = ["current_tree", "new_tree", "inverse_mass_matrix", "going_right", "rng_key",
                 "biased_transition"]


def supported() -> bool:
    """Whether the installed NumPyro's tree builder has the functions and arguments replaced here."""
    from numpyro.infer import hmc_util as hu

    try:
        return (list(inspect.signature(hu._iterative_build_subtree).parameters) == _SUBTREE_ARGS
                and list(inspect.signature(hu._combine_tree).parameters) == _COMBINE_ARGS
                and all(callable(getattr(hu, f, None)) for f in (
                    "_is_turning", "_leaf_idx_to_ckpt_idxs", "_build_basetree", "_get_leaf", "_double_tree")))
    except (AttributeError, TypeError, ValueError):
        return False


def _pick(going_right, a, b):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x, y: jnp.where(going_right, x, y), a, b)


def _combine_tree(orig):
    """NumPyro's ``_combine_tree``; on a doubling of the trajectory, also the checks between its halves."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc_util import _is_turning

    def combine(current_tree, new_tree, inverse_mass_matrix, going_right, rng_key, biased_transition):
        tree = orig(current_tree, new_tree, inverse_mass_matrix, going_right, rng_key, biased_transition)
        if not biased_transition:  # a merge inside a subtree: checked by the subtree builder
            return tree
        # The current trajectory C and the new subtree N, each 2^k states; their
        # ends next to each other ("near") and away from each other ("far").
        c_near = _pick(going_right, current_tree.r_right, current_tree.r_left)
        c_far = _pick(going_right, current_tree.r_left, current_tree.r_right)
        n_near = _pick(going_right, new_tree.r_left, new_tree.r_right)
        n_far = _pick(going_right, new_tree.r_right, new_tree.r_left)
        c_and_first = _is_turning(inverse_mass_matrix, c_far, n_near,
                                  jax.tree.map(jnp.add, current_tree.r_sum, n_near))
        last_and_n = _is_turning(inverse_mass_matrix, c_near, n_far,
                                 jax.tree.map(jnp.add, new_tree.r_sum, c_near))
        return tree._replace(turning=tree.turning | c_and_first | last_and_n)

    return combine


def _iterative_build_subtree(prototype_tree, vv_update, kinetic_fn, inverse_mass_matrix, step_size,
                             going_right, rng_key, energy_current, max_delta_energy, r_ckpts, r_sum_ckpts):
    """NumPyro's iterative subtree builder, with the checks between the halves of each completed subtree.

    NumPyro keeps, per tree level, the momentum ``r`` and the running momentum
    sum ``S`` at the first state of every subtree still open (the checkpoints;
    slot ``i`` for the subtree of ``2^j`` states that ends at the newest state
    ``n`` is ``idx_max - j + 1``). When that subtree ``[A][B]`` completes, the
    first state ``m`` of its second half ``B`` is the checkpoint in slot
    ``i + 1``; this builder also keeps the momentum of the state before each
    checkpoint (``r(m - 1)``, the last state of ``A``). The two extra checks
    for slot ``i`` (subtrees of 4 or more states; for 2 they equal the main one):

    - ``A`` and ``m``: ends ``r(a)``, ``r(m)``; sum ``S(m) - S(a) + r(a)``;
    - ``m - 1`` and ``B``: ends ``r(m - 1)``, ``r(n)``; sum ``S(n) - S(m) + r(m) + r(m - 1)``.
    """
    import jax.numpy as jnp
    from jax import random
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.hmc_util import (
        TreeInfo, _build_basetree, _combine_tree, _get_leaf, _is_turning, _leaf_idx_to_ckpt_idxs)
    from numpyro.util import cond, identity, while_loop

    max_num_proposals = 2**prototype_tree.depth
    r_prev_ckpts = jnp.zeros_like(r_ckpts)

    def turning_at(r_new, r_sum, r_ckpts, r_sum_ckpts, r_prev_ckpts, idx_min, idx_max, unravel):
        def body(state):
            i, _ = state
            r_a = r_ckpts[i]
            turning = _is_turning(inverse_mass_matrix, unravel(r_a), r_new, unravel(r_sum - r_sum_ckpts[i] + r_a))
            j = jnp.minimum(i + 1, idx_max)
            r_m, r_before_m = r_ckpts[j], r_prev_ckpts[j]
            a_and_m = _is_turning(inverse_mass_matrix, unravel(r_a), unravel(r_m),
                                  unravel(r_sum_ckpts[j] - r_sum_ckpts[i] + r_a))
            before_m_and_b = _is_turning(inverse_mass_matrix, unravel(r_before_m), r_new,
                                         unravel(r_sum - r_sum_ckpts[j] + r_m + r_before_m))
            return i - 1, turning | ((i < idx_max) & (a_and_m | before_m_and_b))

        return while_loop(lambda s: (s[0] >= idx_min) & ~s[1], body, (idx_max, False))[1]

    def cond_fn(state):
        tree, turning = state[0], state[1]
        return (tree.num_proposals < max_num_proposals) & ~turning & ~tree.diverging

    def body_fn(state):
        current_tree, _, r_ckpts, r_sum_ckpts, r_prev_ckpts, rng_key = state
        rng_key, transition_rng_key = random.split(rng_key)
        z, r, z_grad = _get_leaf(current_tree, going_right)
        new_leaf = _build_basetree(vv_update, kinetic_fn, z, r, z_grad, inverse_mass_matrix, step_size,
                                   going_right, energy_current, max_delta_energy)
        new_tree = cond(
            current_tree.num_proposals == 0, new_leaf, identity,
            (current_tree, new_leaf, inverse_mass_matrix, going_right, transition_rng_key),
            lambda x: _combine_tree(*x, False))
        leaf_idx = current_tree.num_proposals
        ckpt_idx_min, ckpt_idx_max = _leaf_idx_to_ckpt_idxs(leaf_idx)
        r_new, unravel = ravel_pytree(new_leaf.r_right)
        r_sum, _ = ravel_pytree(new_tree.r_sum)
        r_last, _ = ravel_pytree(r)  # the state before the new one (before the subtree, for its first)
        r_ckpts, r_sum_ckpts, r_prev_ckpts = cond(
            leaf_idx % 2 == 0,
            (r_ckpts, r_sum_ckpts, r_prev_ckpts),
            lambda x: (x[0].at[ckpt_idx_max].set(r_new), x[1].at[ckpt_idx_max].set(r_sum),
                       x[2].at[ckpt_idx_max].set(r_last)),
            (r_ckpts, r_sum_ckpts, r_prev_ckpts), identity)
        turning = turning_at(new_leaf.r_right, r_sum, r_ckpts, r_sum_ckpts, r_prev_ckpts,
                             ckpt_idx_min, ckpt_idx_max, unravel)
        return new_tree, turning, r_ckpts, r_sum_ckpts, r_prev_ckpts, rng_key

    basetree = prototype_tree._replace(num_proposals=0)
    tree, turning, *_ = while_loop(cond_fn, body_fn,
                                   (basetree, False, r_ckpts, r_sum_ckpts, r_prev_ckpts, rng_key))
    return TreeInfo(tree.z_left, tree.r_left, tree.z_left_grad, tree.z_right, tree.r_right, tree.z_right_grad,
                    tree.z_proposal, tree.z_proposal_pe, tree.z_proposal_grad, tree.z_proposal_energy,
                    prototype_tree.depth, tree.weight, tree.r_sum, turning, tree.diverging,
                    tree.sum_accept_probs, tree.num_proposals)


@contextlib.contextmanager
def extra_uturn_checks(enabled=True):
    """While active, NumPyro's NUTS (as traced) checks U-turns between the halves of every subtree.

    What they cost and gain is measured in :mod:`bayeslmm.uturn`'s notes.
    Tracing happens when the sampler is compiled, so the context must cover
    the compilation; a program compiled inside keeps the checks after it is
    left. ``enabled=False`` leaves NumPyro as it is.
    """
    from numpyro.infer import hmc_util as hu

    if not enabled:
        yield False
        return
    if not supported():
        warnings.warn("bayeslmm: this NumPyro's tree builder differs from the one bayeslmm's U-turn checks "
                      "were written for; sampling with NumPyro's own checks.", RuntimeWarning, stacklevel=3)
        yield False
        return
    saved = hu._iterative_build_subtree, hu._combine_tree
    hu._iterative_build_subtree, hu._combine_tree = _iterative_build_subtree, _combine_tree(saved[1])
    try:
        yield True
    finally:
        hu._iterative_build_subtree, hu._combine_tree = saved
