"""The one place where bayeslmm uses another library's private names: Stan's U-turn checks for NumPyro's NUTS.

NUTS stops doubling its trajectory when the two ends of the trajectory, or
of any binary subtree of it, move towards each other:
``p_left . rho <= 0`` or ``p_right . rho <= 0``, ``rho`` the sum of the
momenta over that stretch. On a target that the adapted mass matrix has
made nearly isotropic, every coordinate turns with the same period, about
``2 pi / eps`` leapfrog steps. When that period is close to a tree's
length (15, 31, 63, ...), each subtree, and the whole trajectory, ends about
where it began, its end momenta agree with ``rho`` and no check fires; the
trajectory doubles to the next size, which again spans whole periods, and
so on. Stan's NUTS (``base_nuts.hpp``, since 2020) and AdvancedHMC.jl
(TuringLang/AdvancedHMC.jl#207) have checks that catch this: for each
merge of two subtrees ``A`` and ``B`` (in trajectory order), also ``A``
with the first state of ``B``, and the last state of ``A`` with ``B``.
Those stretches are ``2^k + 1`` states long, so they cannot all span whole
periods. NumPyro does not have them (its ``_leaf_idx_to_ckpt_idxs`` says
so: "a tree 0 -> 7 is a circle, ...").

The checks are evaluated on the same binary subtrees as NumPyro's, so the
trajectory, and whether it stops, depend only on the states in it and not
on where in it the chain started: the reversibility NUTS needs is kept
(Stan's argument). The added work per leapfrog step is two more momentum
dot products per completed subtree, and one more stored momentum per tree
level. What they gain is measured in docs/marginalization.md.

:func:`build_tree_with_stan_checks` has the signature and result of
NumPyro's public ``numpyro.infer.hmc_util.build_tree``; it is built from
NumPyro's tree pieces, read (never replaced) from ``numpyro.infer.hmc_util``:
:data:`PRIVATE_NAMES`, checked against the NumPyro versions in
:data:`CHECKED_VERSIONS`. On any other version :func:`supported` is False
and the sampler uses NumPyro's own ``build_tree`` (tests fail on such a
version, so that the list is renewed with the pins in pyproject.toml).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

__all__ = ["CHECKED_VERSIONS", "PRIVATE_NAMES", "build_tree_with_stan_checks", "supported"]

#: NumPyro releases (major.minor) whose tree builder this module was checked against.
CHECKED_VERSIONS = ("0.22",)

#: The private names of ``numpyro.infer.hmc_util`` used here, with the arguments they are called with.
PRIVATE_NAMES = {
    "_build_basetree": ["vv_update", "kinetic_fn", "z", "r", "z_grad", "inverse_mass_matrix", "step_size",
                        "going_right", "energy_current", "max_delta_energy"],
    "_combine_tree": ["current_tree", "new_tree", "inverse_mass_matrix", "going_right", "rng_key",
                      "biased_transition"],
    "_get_leaf": ["tree", "going_right"],
    "_is_turning": ["inverse_mass_matrix", "r_left", "r_right", "r_sum"],
    "_leaf_idx_to_ckpt_idxs": ["n"],
}


def supported() -> bool:
    """Whether the installed NumPyro is a checked version and has each private name with the arguments used here."""
    from numpyro.infer import hmc_util as hu

    if ".".join(version("numpyro").split(".")[:2]) not in CHECKED_VERSIONS:
        return False
    try:
        return all(list(inspect.signature(getattr(hu, name)).parameters) == args
                   for name, args in PRIVATE_NAMES.items())
    except (AttributeError, TypeError, ValueError):
        return False


def build_tree_with_stan_checks(verlet_update, kinetic_fn, verlet_state, inverse_mass_matrix, step_size, rng_key,
                                max_delta_energy=1000.0, max_tree_depth=10):
    """NumPyro's ``build_tree`` with Stan's checks between the halves of every subtree and of every doubling.

    Same arguments and result (a ``TreeInfo``) as
    ``numpyro.infer.hmc_util.build_tree``; its loop, written again here so
    that each doubling calls the subtree builder and merge below. Cost per
    leapfrog step: that of NumPyro's plus two momentum dot products per
    completed subtree.
    """
    import jax.numpy as jnp
    from jax import random
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.hmc_util import TreeInfo
    from numpyro.util import while_loop

    if isinstance(max_tree_depth, tuple):
        depth_now, max_tree_depth = max_tree_depth
    else:
        depth_now = max_tree_depth
    z, r, potential_energy, z_grad = verlet_state
    energy_current = potential_energy + kinetic_fn(inverse_mass_matrix, r)
    latent_size = jnp.size(ravel_pytree(r)[0])
    r_ckpts = jnp.zeros((max_tree_depth, latent_size))
    r_sum_ckpts = jnp.zeros((max_tree_depth, latent_size))
    tree = TreeInfo(z, r, z_grad, z, r, z_grad, z, potential_energy, z_grad, energy_current, depth=0,
                    weight=jnp.zeros(()), r_sum=r, turning=jnp.array(False), diverging=jnp.array(False),
                    sum_accept_probs=jnp.zeros(()), num_proposals=jnp.array(0, dtype=jnp.result_type(int)))

    def cond_fn(state):
        tree, _ = state
        return (tree.depth < depth_now) & ~tree.turning & ~tree.diverging

    def body_fn(state):
        tree, key = state
        key, direction_key, doubling_key = random.split(key, 3)
        going_right = random.bernoulli(direction_key)
        subtree_key, transition_key = random.split(doubling_key)
        new_tree = _iterative_build_subtree(tree, verlet_update, kinetic_fn, inverse_mass_matrix, step_size,
                                            going_right, subtree_key, energy_current, max_delta_energy,
                                            r_ckpts, r_sum_ckpts)
        return _combine_with_checks(tree, new_tree, inverse_mass_matrix, going_right, transition_key), key

    return while_loop(cond_fn, body_fn, (tree, rng_key))[0]


def _pick(going_right, a, b):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x, y: jnp.where(going_right, x, y), a, b)


def _combine_with_checks(current_tree, new_tree, inverse_mass_matrix, going_right, rng_key):
    """NumPyro's ``_combine_tree`` for a doubling of the trajectory, plus the checks between its halves."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc_util import _combine_tree, _is_turning

    tree = _combine_tree(current_tree, new_tree, inverse_mass_matrix, going_right, rng_key, True)
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
