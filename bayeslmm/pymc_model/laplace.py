"""The Laplace-marginal likelihood of a design: which engine family, parameter and offset it gets.

Under ``approximation="laplace"`` the marginalized factors are integrated out
by :class:`bayeslmm.ops.laplace_op.LaplaceLogp`. This module maps a design's
family onto the engine's (gaussian and lognormal are the gaussian engine on
the model scale, whose Laplace value is the exact marginal density), names
the family parameter it takes (``phi``: negbinomial ``shape``, gaussian
``sigma``) and builds the offset: the user's ``offset()`` on the link scale
(already subtracted from ``y`` for Gaussian families) plus the sampled
factors' contribution.
"""

from __future__ import annotations

import numpy as np
import pymc as pm

from bayeslmm.ops.laplace import Family
from bayeslmm.ops.laplace_op import LaplaceData, laplace_loglik

__all__ = ["laplace_data", "laplace_phi_name", "laplace_offset", "add_laplace_likelihood"]


def laplace_data(design, md) -> LaplaceData:
    """The :class:`LaplaceData` for ``design`` on the rows-mode ``md`` (its ``y`` is ``design.y``)."""
    fam = design.family
    if fam.gaussian:
        family = Family("gaussian", "identity")
    else:
        family = Family(fam.name, fam.link)
    trials = design.trials if fam.name == "binomial" else None
    return LaplaceData.build(md, family, trials)


def laplace_phi_name(design) -> str | None:
    """The family parameter the engine takes as ``phi``: "sigma", "shape" or None."""
    if design.family.gaussian:
        return "sigma"
    return "shape" if design.family.name == "negbinomial" else None


def laplace_offset(design) -> np.ndarray:
    """The fixed part of the offset input: the user's offset for non-Gaussian families, else zeros."""
    if design.family.gaussian or design.offset is None:
        return np.zeros(design.n)
    return np.asarray(design.offset, dtype=np.float64)


def add_laplace_likelihood(design, md, beta, Ls, sampled_offset, aux) -> None:
    """Register ``pm.Potential("y_laplace", ...)``: the Laplace-marginal log-likelihood.

    ``Ls``: tensors in the order of ``md.names``; ``sampled_offset``: the
    sampled factors' contribution (N,); ``aux``: the family's parameters.
    Cost per evaluation: that of :func:`bayeslmm.ops.laplace.laplace_logp`.
    """
    ld = laplace_data(design, md)
    phi_name = laplace_phi_name(design)
    ll = laplace_loglik(ld, beta, Ls, sampled_offset + laplace_offset(design),
                        aux[phi_name] if phi_name else None)
    pm.Potential("y_laplace", ll + design.log_jacobian)
