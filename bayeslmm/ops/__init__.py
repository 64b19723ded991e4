"""The marginal log-density math: pure JAX functions, and their PyTensor Op.

- :mod:`~bayeslmm.ops.data`: :class:`MarginalData`, the cross-products of the
  data computed once in NumPy;
- :mod:`~bayeslmm.ops.linalg`: the blocked Cholesky of
  ``A = I + Lambda^T Z^T Z Lambda / sigma^2`` and its custom VJPs;
- :mod:`~bayeslmm.ops.marginal`: the marginal Gaussian log-density and exact
  draws of the integrated-out effects;
- :mod:`~bayeslmm.ops.op`: the PyTensor Op and its JAX registration;
- :mod:`~bayeslmm.ops.laplace`: the Laplace-marginal GLMM log-density (Newton
  mode, implicit-function gradients) and draws from the Laplace approximation;
- :mod:`~bayeslmm.ops.laplace_op`: its PyTensor Op;
- :mod:`~bayeslmm.ops.warm`: the context through which a sampler hands the
  Laplace kernels warm starts for their Newton solves while it traces them.

May import NumPy, JAX, PyTensor and :mod:`bayeslmm.model`; never PyMC.

Every function computes in float64, which JAX gives only inside
``jax.enable_x64(True)`` (or with ``jax_enable_x64`` set): the marginal
log-density subtracts terms of order N log(sigma^2) and r^T r / sigma^2 that
nearly cancel, and factors matrices whose pivots span many orders of
magnitude. bayeslmm's fits enter that context themselves, for their
duration only; :func:`marginal_logp` and the other functions refuse to run
in float32.
"""

from .data import MarginalData
from .marginal import compile_recover_batch, conditional_mean, marginal_logp, recover, recover_batch, sampled_mean
from .laplace_op import LaplaceData, LaplaceLogp, LaplaceLogpGrad, laplace_loglik
from .op import MarginalGaussianLogp, MarginalGaussianLogpGrad, marginal_loglik, register_jax

__all__ = [
    "LaplaceData",
    "LaplaceLogp",
    "LaplaceLogpGrad",
    "laplace_loglik",
    "MarginalData",
    "MarginalGaussianLogp",
    "MarginalGaussianLogpGrad",
    "compile_recover_batch",
    "conditional_mean",
    "marginal_logp",
    "marginal_loglik",
    "recover",
    "recover_batch",
    "register_jax",
    "sampled_mean",
]
