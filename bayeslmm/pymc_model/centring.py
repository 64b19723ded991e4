"""How far to centre each sampled group-level effect: partially non-centred parameterization.

A sampled effect ``u_j ~ N(0, tau^2)`` of level ``j`` can be written
non-centred, ``u_j = tau z_j`` with ``z_j ~ N(0, 1)``, centred, ``z_j = u_j``,
or anywhere between (Papaspiliopoulos, Roberts and Skold 2007; Gorinova,
Moore and Hoffman 2020): ``u_j = tau^(1 - w_j) z_j`` with
``z_j ~ N(0, tau^(2 w_j))``. Every ``w_j`` in [0, 1] gives the same model
(``u_j ~ N(0, tau^2)``); they differ in how strongly ``z_j`` and ``log tau``
are coupled in the posterior. With the level's data precision
``a_j = sum_i x_ij^2 / sigma^2`` (``x_ij`` the effect's covariate, 1 for an
intercept), ``u_j``'s conditional posterior SD is ``(a_j + tau^-2)^-1/2``,
whose derivative in ``log tau`` is ``1 / (1 + a_j tau^2)``; choosing

    w_j = a_j tau^2 / (1 + a_j tau^2)

makes the SD of ``z_j`` locally independent of ``tau``: 0 (non-centred) for
levels with little data, towards 1 (centred) for levels with much.

The builder applies it to sampled factors whose effects are uncorrelated
(:func:`bayeslmm.pymc_model.builder.build_model`), and writes ``tau^w_j`` as
``exp(w_j log tau)``, one exponential per level and effect. What it gains is
measured in docs/marginalization.md.

Nested factors are centred hierarchically (Gelfand, Sahu and Carlin 1995):
a level ``c`` of the inner factor within level ``j`` of its parent is
centred around its parent's effect, ``z_c ~ N(w_c u_j, tau^(2 w_c))`` and
``u_c = tau^(1 - w_c) (z_c - w_c u_j)`` (same model for every ``w_c``), so
that a fully centred ``z_c = u_j + u_c`` is what the data see and the two
factors do not trade off against each other. The parent's data then reach it
through its children: its precision per effect is
``a_j = sum_c g_c / (s^2 + g_c t_c)`` (``g_c`` the child's data, ``t_c`` its
variance) rather than ``sum_c g_c / s^2``, which would make an outer factor
look centred when its children's variation swamps it.

``tau`` and ``sigma`` are unknown before sampling; :func:`centring_weights`
plugs in quick estimates (:func:`~bayeslmm.model.moments.variance_components`).
They only choose the parameterization: rough values cost efficiency, never
correctness. NumPy only.
"""

from __future__ import annotations

import numpy as np

from bayeslmm.model.moments import level_gram, variance_components

__all__ = ["centring_weights"]


def centring_weights(y, X, factors, parents=None):
    """Weights ``w`` (n_levels x d, in [0, 1]) of the partially non-centred parameterization of each factor.

    ``w_jk = a_jk t_k / (1 + a_jk t_k)`` with ``a_jk = sum_{i in j} x_ik^2 / s^2``
    and ``(s^2, t_k)`` from :func:`~bayeslmm.model.moments.variance_components`
    over all ``factors`` (:class:`~bayeslmm.model.design.ReBlock`) of the
    model. Effects estimated to vary little get ``w`` near 0 (non-centred).
    ``parents`` maps the index of a nested factor to ``(index of its parent,
    parent level of each of its levels)``; a parent's ``a_jk`` for an effect
    its children share is then the children's, as in the module docstring.

    Cost that of the variance components, once, before sampling.
    """
    grams = [level_gram(f.group_index, f.values, f.n_levels) for f in factors]
    s2, tau2 = variance_components(y, X, factors, grams=grams)
    if not s2 > 0:
        return [np.zeros((f.n_levels, f.dim)) for f in factors]
    a = [np.einsum("jkk->jk", G) / s2 for G in grams]  # a_jk = (G_j)_kk / s^2
    for i, (o, parent_level) in (parents or {}).items():
        inner, outer = factors[i], factors[o]
        g = np.einsum("jkk->jk", grams[i])
        for k, term in enumerate(inner.terms):
            if term not in outer.terms:
                continue
            ko = outer.terms.index(term)
            info = np.zeros(outer.n_levels)
            np.add.at(info, parent_level, g[:, k] / (s2 + g[:, k] * tau2[i][k]))
            a[o][:, ko] = info
    out = []
    for ak, t in zip(a, tau2):
        at = ak * t[None, :]
        out.append(at / (1.0 + at))
    return out
