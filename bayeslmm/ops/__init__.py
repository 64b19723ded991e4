"""Marginal Gaussian log-density of linear mixed models: kernels and PyTensor Ops.

Importing this package turns on float64 in JAX. The marginal log-density
subtracts terms of order N log(sigma^2) and r^T r / sigma^2 that nearly cancel,
and factors matrices whose pivots span many orders of magnitude; float32
would lose most digits (and JAX silently downcasts to float32 otherwise).
"""

import jax

jax.config.update("jax_enable_x64", True)

from bayeslmm.ops.kernels import (  # noqa: E402
    compile_recover_batch,
    conditional_mean,
    marginal_logp,
    recover,
    recover_batch,
)
from bayeslmm.ops.marginal_op import (  # noqa: E402
    MarginalGaussianLogp,
    MarginalGaussianLogpGrad,
    marginal_loglik,
)
from bayeslmm.ops.precompute import FactorData, MarginalData  # noqa: E402

__all__ = [
    "compile_recover_batch",
    "FactorData",
    "MarginalData",
    "MarginalGaussianLogp",
    "MarginalGaussianLogpGrad",
    "conditional_mean",
    "marginal_logp",
    "marginal_loglik",
    "recover",
    "recover_batch",
]
