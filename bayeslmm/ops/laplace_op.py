"""PyTensor Ops for the Laplace-marginal GLMM log-density, with JAX implementations.

``LaplaceLogp(ld)(beta, *Ls, offset[, phi])`` is the scalar
:func:`bayeslmm.ops.laplace.laplace_logp`, the pattern of
:mod:`bayeslmm.ops.op`: on the C/Python backends ``perform`` calls a jitted
JAX function and the gradient is a second Op (:class:`LaplaceLogpGrad`, JAX
reverse mode through the implicit-function-theorem VJP of the mode); on the
JAX backend ``jax_funcify`` hands PyTensor the pure kernel, which the sampler
differentiates itself.

The props are one :class:`LaplaceData` (the rows, the family, the trials),
compared by identity like :class:`~bayeslmm.ops.data.MarginalData`, so two
Ops on the same data merge in a graph and the Op pickles for multiprocess
sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import MarginalData
from .kernel_op import KernelGradient, KernelOp, KernelValue, register_kernels
from .laplace import Family, laplace_logp

__all__ = ["LaplaceData", "LaplaceLogp", "LaplaceLogpGrad", "laplace_loglik", "register_laplace_jax"]


@dataclass(frozen=True, eq=False)
class LaplaceData:
    """What the Laplace log-density needs besides the parameters; equality by identity.

    ``md``: rows-mode :class:`MarginalData` whose ``y`` is the response
    (successes for binomial); ``family``: :class:`bayeslmm.ops.laplace.Family`;
    ``trials``: (N,) or None (binomial only); ``max_steps``, ``tol``: the
    Newton limits of :func:`~bayeslmm.ops.laplace.laplace_logp`. The fits'
    ``tol`` is 1e-8, looser than that function's default: the value's error
    is first order in the mode's (through ``log|H|``), and at 1e-8 it stays
    near 1e-9, far below what moves a NUTS acceptance, for fewer Newton
    steps (docs/marginalization.md).
    """

    md: MarginalData
    family: Family
    trials: np.ndarray | None = None
    max_steps: int = 100
    tol: float = 1e-8

    @classmethod
    def build(cls, md, family, trials=None, max_steps=100, tol=1e-8) -> "LaplaceData":
        """Check the inputs once (rows mode, family and link, trials' shape) and freeze them."""
        if md.mode != "rows":
            raise ValueError("the Laplace log-density needs MarginalData built with sufficient=False, "
                             f"got mode={md.mode!r}")
        family = (family if isinstance(family, Family) else Family(*np.atleast_1d(family))).checked()
        if trials is not None:
            if family.name != "binomial":
                raise ValueError(f"trials are only meaningful for the binomial family, not {family.name!r}")
            trials = np.asarray(trials, dtype=np.float64)
            if trials.shape != (md.n_obs,):
                raise ValueError(f"trials must have shape ({md.n_obs},), got {trials.shape}")
        return cls(md, family, trials, int(max_steps), float(tol))

    @property
    def has_phi(self) -> bool:
        """True when the family has a parameter input (negbinomial shape, gaussian sigma)."""
        return self.family.name in ("negbinomial", "gaussian")


class _LaplaceOpBase(KernelOp):
    """Shared props, pure JAX function, input checks and pickling for the value and gradient Ops."""

    __props__ = ("ld",)

    def __init__(self, ld: LaplaceData):
        if not isinstance(ld, LaplaceData):
            raise TypeError(f"{type(self).__name__} needs a LaplaceData, got {type(ld).__name__}")
        self.ld = ld
        register_laplace_jax()
        super().__init__()

    @property
    def inner_solve_size(self) -> int:
        """Length of the mode the Newton solve records (every effect of every marginalized factor)."""
        return int(sum(self.ld.md.sizes))

    def _logp(self, beta, *rest):
        ld, k = self.ld, self.ld.md.n_factors
        return laplace_logp(ld.md, ld.family, beta, list(rest[:k]), rest[k], ld.trials,
                            rest[k + 1] if ld.has_phi else None, ld.max_steps, ld.tol)

    def _input_specs(self):
        md = self.ld.md
        d = [md.dims[md.order.index(k)] for k in range(md.n_factors)]
        specs = [("beta", (md.n_fixed,))]
        specs += [(f"L[{n}]", (dk, dk)) for n, dk in zip(md.names, d)]
        specs.append(("offset", (md.n_obs,)))
        if self.ld.has_phi:
            specs.append(("phi", ()))
        return specs

    def _gradient_op(self):
        return LaplaceLogpGrad(self.ld)


class LaplaceLogp(KernelValue, _LaplaceOpBase):
    """Scalar Laplace approximation of ``log p(y | beta, L_1..L_K, offset[, phi])``.

    Inputs, in order: ``beta`` (p,), one ``L_k`` (d_k, d_k) per marginalized
    factor in the caller order of ``ld.md.names``, ``offset`` (N,) (the
    sampled factors' contribution to the linear predictor plus any user
    offset), then ``phi`` () for negbinomial (shape) and gaussian (sigma).
    The formula and its cost (K Newton steps, each a row pass and one blocked
    factorization) are in :func:`bayeslmm.ops.laplace.laplace_logp`.
    """


class LaplaceLogpGrad(KernelGradient, _LaplaceOpBase):
    """Gradients of :class:`LaplaceLogp` with respect to all its inputs.

    ``perform`` runs ``jax.grad`` of the kernel: the Newton solve forward,
    then the implicit-function-theorem VJP (one blocked solve) and the
    derivative of the log-determinant; about two Newton steps more than one
    value. One output per input, same types and shapes.
    """


def register_laplace_jax() -> None:
    """Register the Laplace Ops with PyTensor's ``jax_funcify`` (see :func:`~bayeslmm.ops.kernel_op.register_kernels`)."""
    register_kernels(LaplaceLogp, LaplaceLogpGrad)


def laplace_loglik(ld: LaplaceData, beta, Ls, offset, phi=None):
    """Symbolic Laplace-marginal log-likelihood, e.g. for ``pm.Potential("lik", ...)``.

    ``Ls``: tensors (d_k, d_k) in the caller order of ``ld.md.names``;
    ``offset``: tensor (N,); ``phi``: scalar tensor, required exactly when the
    family has one (negbinomial shape, gaussian sigma). Returns a float64
    scalar tensor.
    """
    if ld.has_phi != (phi is not None):
        raise ValueError(f"family {ld.family.name!r} "
                         + ("needs phi" if ld.has_phi else f"takes no phi, got {phi!r}"))
    return LaplaceLogp(ld)(beta, *Ls, offset, *([] if phi is None else [phi]))
