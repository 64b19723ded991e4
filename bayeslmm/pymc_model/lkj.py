"""LKJ correlation prior, sampled on an unconstrained scale without a funnel.

``pm.LKJCholeskyCov`` samples the Cholesky factor of the *covariance*: its
free coordinates are ``(log L00, L10, log L11, ...)``. When a standard
deviation is poorly identified (a slope SD near zero, common in lme4
"singular" fits), ``L10 = sd1 * rho`` is squeezed towards zero together
with ``sd1``: a funnel in the covariance parameters themselves, which HMC
can only cross with tiny steps (min ESS 130 out of 2,000 draws on the
crossed 50 x 40 set, a chain stuck for the whole run on another seed).

brms and Stan sample the SDs and the correlation Cholesky factor
separately, and so does bayeslmm: ``sd ~ prior`` (log scale), and the
correlations through the canonical partial correlations (CPCs, Lewandowski,
Kurowicka and Joe 2009; Stan's ``cholesky_factor_corr``). With the SDs
apart, an SD going to zero leaves the correlation at its prior: no funnel.

:class:`CPCTransform` maps ``k = d(d-1)/2`` unconstrained values ``z`` to
the upper-triangle correlations of ``pm.LKJCorr`` (``np.triu_indices(d, 1)``
order):

    w_ij = tanh(z_ij)                        (CPCs, row by row, j < i)
    L_ij = w_ij sqrt(r_ij),  r_i,j+1 = r_ij (1 - w_ij^2),  r_i0 = 1
    L_ii = sqrt(r_ii),  C = L L^T

    log |dC/dz| = sum_ij log(1 - w_ij^2)                  (tanh)
                + sum_ij 1/2 log r_ij                      (z -> rows of L)
                + sum_j (d - 1 - j) log L_jj               (L -> C)

Every operation is scalar and unrolled (d is small and known when the model
is built), so the cost is O(d^3) flops with no linear-algebra call.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

__all__ = ["CPCTransform", "corr_cholesky", "cholesky_of_corr"]

_LOG2 = float(np.log(2.0))


def _log1m_tanh2(z):
    """log(1 - tanh(z)^2) = log(4) - 2|z| - 2 log1p(exp(-2|z|)), finite for every z."""
    a = pt.abs(z)
    return 2.0 * _LOG2 - 2.0 * a - 2.0 * pt.log1p(pt.exp(-2.0 * a))


def corr_cholesky(z, d):
    """Cholesky factor R (d x d) of a correlation matrix from CPC coordinates ``z``, and log|dC/dz|.

    ``z`` holds the ``d(d-1)/2`` values row by row of the strict lower
    triangle (``np.tril_indices(d, -1)`` order). Returns ``(R, logdet)``.
    """
    rows = [[pt.constant(1.0)] + [pt.constant(0.0)] * (d - 1)]
    logdet = pt.constant(0.0)
    log_diag = [pt.constant(0.0)]
    k = 0
    for i in range(1, d):
        row = []
        log_r = pt.constant(0.0)  # log of 1 - (sum of squares so far in this row)
        for _ in range(i):
            w = pt.tanh(z[k])
            row.append(w * pt.exp(0.5 * log_r))
            l1m = _log1m_tanh2(z[k])
            logdet = logdet + l1m + 0.5 * log_r
            log_r = log_r + l1m
            k += 1
        row.append(pt.exp(0.5 * log_r))
        row += [pt.constant(0.0)] * (d - 1 - i)
        rows.append(row)
        log_diag.append(0.5 * log_r)
    for j in range(1, d - 1):
        logdet = logdet + (d - 1 - j) * log_diag[j]
    R = pt.stack([pt.stack(r) for r in rows])
    return R, logdet


def cholesky_of_corr(c, d):
    """Cholesky factor of the correlation matrix whose upper triangle (``np.triu_indices(d, 1)`` order) is ``c``.

    Unrolled scalar Cholesky (O(d^3) scalar operations, no LAPACK call): d is
    small, and this keeps the sampler's graph free of a matrix factorization.
    """
    iu = list(zip(*np.triu_indices(d, 1)))
    cor = {(j, i): c[k] for k, (i, j) in enumerate(iu)}  # C[i, j] for i > j
    R = {}
    for i in range(d):
        ss = pt.constant(0.0)
        for j in range(i):
            acc = cor[(i, j)]
            for m in range(j):
                acc = acc - R[(i, m)] * R[(j, m)]
            R[(i, j)] = acc / R[(j, j)]
            ss = ss + R[(i, j)] ** 2
        R[(i, i)] = pt.sqrt(1.0 - ss) if i else pt.constant(1.0)
    zero = pt.constant(0.0)
    return pt.stack([pt.stack([R.get((i, j), zero) for j in range(d)]) for i in range(d)])


def _to_cpc(c, d):
    """Inverse of :func:`corr_cholesky` (correlation vector in triu order -> z); used for initial points."""
    R = cholesky_of_corr(c, d)
    zs = []
    for i in range(1, d):
        r = pt.constant(1.0)
        for j in range(i):
            w = R[i, j] / pt.sqrt(r)
            zs.append(pt.arctanh(w))
            r = r * (1.0 - w**2)
    return pt.stack(zs)


class CPCTransform(Transform):
    """Unconstrained R^k <-> the upper-triangle correlations of an LKJ(d) correlation matrix (see module doc)."""

    name = "cpc"
    ndim_supp = 1

    def __init__(self, d: int):
        if d < 2:
            raise ValueError("a correlation matrix needs d >= 2")
        self.d = int(d)
        self._iu = np.triu_indices(self.d, 1)

    def backward(self, value, *inputs):
        R, _ = corr_cholesky(value, self.d)
        return pt.dot(R, R.T)[self._iu]

    def forward(self, value, *inputs):
        return _to_cpc(value, self.d)

    def log_jac_det(self, value, *inputs):
        return corr_cholesky(value, self.d)[1]
