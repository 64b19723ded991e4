"""PyTensor Ops for the marginal Gaussian log-density, with JAX implementations.

``MarginalGaussianLogp(md)(beta, sigma, *Ls[, offset])`` is the scalar
:func:`bayeslmm.ops.marginal.marginal_logp`. On the C/Python backends
``perform`` calls a jitted JAX function and the gradient is a second Op; on
the JAX backend (``mode="JAX"``, ``pm.sample(nuts_sampler="numpyro")``)
``jax_funcify`` hands PyTensor the pure kernel, which the sampler
differentiates with ``jax.grad`` itself.

Why not ``pytensor.link.jax.ops.JAXOp``: it compares Ops by the identity of a
closure and holds a jitted function, so two Ops built on the same data are
unequal (no graph merging) and the Op cannot be pickled for multiprocess
sampling. Here the props are the data object itself and jitted functions are
rebuilt lazily after unpickling.
"""

from __future__ import annotations

import jax
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from .data import MarginalData
from .marginal import marginal_logp

__all__ = ["MarginalGaussianLogp", "MarginalGaussianLogpGrad", "marginal_loglik", "register_jax"]


class _MarginalOpBase(Op):
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

    def _as_inputs(self, inputs):
        specs = self._input_specs()
        if len(inputs) != len(specs):
            raise TypeError(f"{type(self).__name__} expects inputs "
                            f"{[n for n, _ in specs]}, got {len(inputs)} inputs")
        out = []
        for x, (name, shape) in zip(inputs, specs):
            x = pt.as_tensor_variable(x)
            if x.type.ndim != len(shape):
                raise TypeError(f"{name} must be {len(shape)}-D with shape {shape}, "
                                f"got a {x.type.ndim}-D {x.type}")
            if any(s is not None and s != e for s, e in zip(x.type.shape, shape)):
                raise TypeError(f"{name} must have shape {shape}, got {x.type.shape}")
            out.append(x if x.type.dtype == "float64" else pt.cast(x, "float64"))
        return out

    def __getstate__(self):
        # Jitted functions hold compiled executables that cannot be pickled.
        return {k: v for k, v in self.__dict__.items() if k != "_jitted"}

    def _compiled(self):
        if getattr(self, "_jitted", None) is None:
            self._jitted = jax.jit(self.jax_fn)
        return self._jitted

    def _run(self, inputs):
        # The C/Python backends call perform outside any fit's float64 context.
        with jax.enable_x64(True):
            return self._compiled()(*inputs)


class MarginalGaussianLogp(_MarginalOpBase):
    """Scalar ``log p(y | beta, sigma, L_1..L_K[, offset])`` with the effects integrated out.

    Inputs, in order: ``beta`` (p,), ``sigma`` (), one ``L_k`` (d_k, d_k) per
    factor in the caller order of ``md.names``, then ``offset`` (N,) if the Op
    was built with an offset (the default for a rows-mode ``md``). Output: a
    float64 scalar. The formula and its cost are in
    :func:`bayeslmm.ops.marginal.marginal_logp`.
    """

    def make_node(self, *inputs):
        return Apply(self, self._as_inputs(inputs), [pt.dscalar()])

    @property
    def jax_fn(self):
        return self._logp

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.asarray(self._run(inputs), dtype=np.float64)

    def infer_shape(self, fgraph, node, input_shapes):
        return [()]

    def L_op(self, inputs, outputs, output_grads):
        """Gradient for every input: ``g * d logp / d input`` from
        :class:`MarginalGaussianLogpGrad` (JAX reverse mode through the blocked
        Cholesky formulas; nothing of size N x N or N x D is ever formed)."""
        (g,) = output_grads
        grads = MarginalGaussianLogpGrad(self.md, self.with_offset)(*inputs, return_list=True)
        return [g * gi for gi in grads]


class MarginalGaussianLogpGrad(_MarginalOpBase):
    """Gradients of :class:`MarginalGaussianLogp` with respect to all its inputs.

    ``perform`` runs ``jax.grad`` of the kernel: JAX reverse-mode through the
    structured formulas (batched small Cholesky blocks, one dense Schur
    complement Cholesky, triangular solves, segment sums), so the cost is a
    small multiple of one log-density evaluation and memory stays
    O(D2 (D2 + M1 d1) + N). One output per input, same types and shapes.
    """

    def make_node(self, *inputs):
        inputs = self._as_inputs(inputs)
        return Apply(self, inputs, [x.type() for x in inputs])

    @property
    def jax_fn(self):
        n = len(self._input_specs())
        return jax.grad(self._logp, argnums=tuple(range(n)))

    def perform(self, node, inputs, output_storage):
        for out, gi in zip(output_storage, self._run(inputs)):
            out[0] = np.asarray(gi, dtype=np.float64)

    def infer_shape(self, fgraph, node, input_shapes):
        return list(input_shapes)


def register_jax() -> None:
    """Register the Ops' JAX implementations with PyTensor's ``jax_funcify`` (idempotent).

    Called when an Op is made, not at import: importing PyTensor's JAX
    dispatch turns on ``jax_enable_x64`` for the whole process (PyTensor's
    choice for ``floatX="float64"``), which importing bayeslmm must not do.
    """
    from pytensor.link.jax.dispatch import jax_funcify

    for op in (MarginalGaussianLogp, MarginalGaussianLogpGrad):
        jax_funcify.register(op)(_jax_funcify_marginal)


def _jax_funcify_marginal(op, **kwargs):
    return op.jax_fn


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
