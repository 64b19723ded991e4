"""PyTensor Ops around a pure JAX log-density kernel: the value Op and its gradient Op.

A subclass of :class:`KernelOp` supplies ``_logp(*inputs)`` (a scalar JAX
function) and ``_input_specs()`` (name and shape per input); mixing in
:class:`KernelValue` or :class:`KernelGradient` makes it the value Op or the
gradient Op. On the C/Python backends ``perform`` calls the jitted JAX
function; on the JAX backend ``jax_funcify`` hands PyTensor ``jax_fn``
itself (registered by :func:`register_kernels`), which the JAX samplers
differentiate with ``jax.grad``.

Why not ``pytensor.link.jax.ops.JAXOp``: it compares Ops by the identity of a
closure and holds a jitted function, so two Ops built on the same data are
unequal (no graph merging) and the Op cannot be pickled for multiprocess
sampling. Here the props are a data object and jitted functions are rebuilt
lazily after unpickling.
"""

from __future__ import annotations

import jax
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

__all__ = ["KernelGradient", "KernelOp", "KernelValue", "register_kernels"]


class KernelOp(Op):
    """Input checks, jitted evaluation and pickling shared by kernel Ops."""

    #: Length of the vector an inner solve of ``_logp`` records in a
    #: :func:`bayeslmm.ops.warm.warm_started` context (None: no inner solve).
    inner_solve_size = None

    def _logp(self, *inputs):
        raise NotImplementedError

    def _input_specs(self) -> list[tuple[str, tuple[int, ...]]]:
        raise NotImplementedError

    def _gradient_op(self) -> "KernelOp":
        raise NotImplementedError

    def _as_inputs(self, inputs):
        specs = self._input_specs()
        if len(inputs) != len(specs):
            raise TypeError(f"{type(self).__name__} expects inputs {[n for n, _ in specs]}, "
                            f"got {len(inputs)} inputs")
        out = []
        for x, (name, shape) in zip(inputs, specs):
            x = pt.as_tensor_variable(x)
            if x.type.ndim != len(shape):
                raise TypeError(f"{name} must be {len(shape)}-D with shape {shape}, got a {x.type.ndim}-D {x.type}")
            if any(s is not None and s != e for s, e in zip(x.type.shape, shape)):
                raise TypeError(f"{name} must have shape {shape}, got {x.type.shape}")
            out.append(x if x.type.dtype == "float64" else pt.cast(x, "float64"))
        return out

    def __getstate__(self):
        # Jitted functions hold compiled executables that cannot be pickled.
        return {k: v for k, v in self.__dict__.items() if k != "_jitted"}

    def _run(self, inputs):
        # The C/Python backends call perform outside any fit's float64 context.
        with jax.enable_x64(True):
            if getattr(self, "_jitted", None) is None:
                self._jitted = jax.jit(self.jax_fn)
            return self._jitted(*inputs)


class KernelValue:
    """Mixin: the scalar value of ``_logp``; its gradient is ``_gradient_op()``."""

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
        """Gradient for every input: ``g * d logp / d input`` from the gradient Op (JAX reverse mode)."""
        (g,) = output_grads
        grads = self._gradient_op()(*inputs, return_list=True)
        return [g * gi for gi in grads]


class KernelGradient:
    """Mixin: the gradient of ``_logp`` with respect to every input, one output per input."""

    def make_node(self, *inputs):
        inputs = self._as_inputs(inputs)
        return Apply(self, inputs, [x.type() for x in inputs])

    @property
    def jax_fn(self):
        return jax.grad(self._logp, argnums=tuple(range(len(self._input_specs()))))

    def perform(self, node, inputs, output_storage):
        for out, gi in zip(output_storage, self._run(inputs)):
            out[0] = np.asarray(gi, dtype=np.float64)

    def infer_shape(self, fgraph, node, input_shapes):
        return list(input_shapes)


def register_kernels(*op_classes) -> None:
    """Register the Ops' JAX implementations with PyTensor's ``jax_funcify`` (idempotent).

    Called when an Op is made, not at import: importing PyTensor's JAX
    dispatch turns on ``jax_enable_x64`` for the whole process (PyTensor's
    choice for ``floatX="float64"``), which importing bayeslmm must not do.
    """
    from pytensor.link.jax.dispatch import jax_funcify

    for op in op_classes:
        jax_funcify.register(op)(_jax_fn)


def _jax_fn(op, **kwargs):
    return op.jax_fn
