"""PyTensor Ops for the marginal Gaussian log-density, with JAX implementations.

``MarginalGaussianLogp(md)(beta, sigma, *Ls[, offset])`` is the scalar
:func:`bayeslmm.ops.marginal.marginal_logp`. On the C/Python backends
``perform`` calls a jitted JAX function and the gradient is a second Op; on
the JAX backend (``mode="JAX"``, ``pm.sample(nuts_sampler="numpyro")``)
``jax_funcify`` hands PyTensor the pure kernel, which the sampler
differentiates with ``jax.grad`` itself.

The Op machinery (checks, jitted evaluation, pickling, JAX registration) is
:mod:`bayeslmm.ops.kernel_op`'s, shared with the Laplace Ops.
"""

from __future__ import annotations

from .data import MarginalData
from .kernel_op import KernelGradient, KernelOp, KernelValue, register_kernels
from .marginal import marginal_logp

__all__ = ["MarginalGaussianLogp", "MarginalGaussianLogpGrad", "marginal_loglik", "register_jax"]


class _MarginalOpBase(KernelOp):
    """Shared props, pure JAX function and pickling for the value and gradient Ops."""

    __props__ = ("md", "with_offset")

    def __init__(self, md: MarginalData, with_offset: bool | None = None):
        if with_offset is None:
            with_offset = md.mode == "rows"
        if with_offset and md.mode != "rows":
            raise ValueError("an offset input needs MarginalData built with sufficient=False")
        self.md = md
        self.with_offset = bool(with_offset)
        register_jax()
        super().__init__()

    def _logp(self, beta, sigma, *rest):
        k = self.md.n_factors
        return marginal_logp(self.md, beta, sigma, list(rest[:k]),
                             rest[k] if self.with_offset else None)

    def _input_specs(self):
        names = [f"L[{n}]" for n in self.md.names]
        d = [self.md.dims[self.md.order.index(k)] for k in range(self.md.n_factors)]
        specs = [("beta", (self.md.n_fixed,)), ("sigma", ())]
        specs += [(n, (dk, dk)) for n, dk in zip(names, d)]
        if self.with_offset:
            specs.append(("offset", (self.md.n_obs,)))
        return specs

    def _gradient_op(self):
        return MarginalGaussianLogpGrad(self.md, self.with_offset)


class MarginalGaussianLogp(KernelValue, _MarginalOpBase):
    """Scalar ``log p(y | beta, sigma, L_1..L_K[, offset])`` with the effects integrated out.

    Inputs, in order: ``beta`` (p,), ``sigma`` (), one ``L_k`` (d_k, d_k) per
    factor in the caller order of ``md.names``, then ``offset`` (N,) if the Op
    was built with an offset (the default for a rows-mode ``md``). Output: a
    float64 scalar. The formula and its cost are in
    :func:`bayeslmm.ops.marginal.marginal_logp`.
    """


class MarginalGaussianLogpGrad(KernelGradient, _MarginalOpBase):
    """Gradients of :class:`MarginalGaussianLogp` with respect to all its inputs.

    ``perform`` runs ``jax.grad`` of the kernel: JAX reverse-mode through the
    structured formulas (batched small Cholesky blocks, one dense Schur
    complement Cholesky, triangular solves, segment sums), so the cost is a
    small multiple of one log-density evaluation and memory stays
    O(D2 (D2 + M1 d1) + N). One output per input, same types and shapes.
    """


def register_jax() -> None:
    """Register the Gaussian Ops with PyTensor's ``jax_funcify`` (see :func:`~bayeslmm.ops.kernel_op.register_kernels`)."""
    register_kernels(MarginalGaussianLogp, MarginalGaussianLogpGrad)


def marginal_loglik(md: MarginalData, beta, sigma, Ls, offset=None):
    """Symbolic marginal log-likelihood, e.g. for ``pm.Potential("lik", ...)``.

    Parameters
    ----------
    md : MarginalData
    beta : tensor (p,)
    sigma : scalar tensor
    Ls : sequence of tensors (d_k, d_k), in the caller order of ``md.names``
    offset : tensor (N,), optional (rows mode only)

    Returns
    -------
    float64 scalar tensor
    """
    op = MarginalGaussianLogp(md, with_offset=offset is not None)
    extra = [] if offset is None else [offset]
    return op(beta, sigma, *Ls, *extra)
