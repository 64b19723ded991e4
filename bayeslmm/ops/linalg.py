"""Structured linear algebra of ``A = I + Lambda^T Z^T W Z Lambda``: blocked Cholesky, solves, custom VJPs.

Pure JAX functions on arrays; they know nothing of the data layout of
:class:`~bayeslmm.ops.data.MarginalData` (that is :mod:`bayeslmm.ops.marginal`).

``A`` is factored blockwise: the largest factor's block ``A_11`` is block
diagonal (``M1`` Cholesky factorizations of ``d1 x d1``), the remaining
factors form a dense Schur complement of size ``D2``:

    A_11 = C1 C1^T (per level),  B = (C1^{-1} A_12)^T,  A_22 - B^T B = C2 C2^T,
    w1 = C1^{-1} c1,  w2 = C2^{-1} (c2 - B^T w1).

Then ``log|A| = 2 sum log diag C1 + 2 sum log diag C2`` and
``c^T A^{-1} c = |w1|^2 + |w2|^2``. Every pivot of ``A`` is >= 1 when its
data part is positive semi-definite, so no inverse of ``Lambda`` is ever
taken and an SD of exactly 0 is fine.

Three custom VJPs keep the reverse pass to a few large operations:
:func:`mm` (small ``x @ L`` products), :func:`sandwich` (``L^T G L``
blocks) and :func:`logdet_quad` (``log|A| - c^T A^{-1} c`` from the
forward factors). Forward mode (``jax.jvp``) is therefore not available.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Core", "chol", "factor_core", "logdet_quad", "mm", "sandwich", "solve_lower", "solve_mean",
           "solve_upper_t", "tri_solve", "within"]

# ---------------------------------------------------------------------------
# Small per-level matrices are stored dimension-major ("planar"): a batch of M
# d x d matrices is an array (d, d, M), a batch of right-hand sides (d, M, ...).
# For d <= _UNROLL the Cholesky factorization and the triangular solves are
# unrolled into elementwise ops on length-M vectors, which XLA fuses into a few
# vectorized loops; a batched LAPACK call pays per matrix, and an innermost axis
# of length 2 does not vectorize.

_UNROLL = 4


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def mm(x, L, axis):
    """Contract ``axis`` of x with the first index of a small L: ``out[.., b, ..] = sum_a x[.., a, ..] L[a, b]``.

    For d <= 4 the product is unrolled into d^2 elementwise multiply-adds.
    Custom VJP, for the cotangent ``g`` of ``out``: ``dx = mm(g, L^T, axis)``
    and ``dL[a, b] = sum_{other axes} x[.., a, ..] g[.., b, ..]``, one
    contraction (JAX's own transpose of the unrolled form is d^2 separate
    sums). Cost O(size(x) d).
    """
    d = L.shape[0]
    if d > _UNROLL:
        return jnp.moveaxis(jnp.tensordot(x, L, axes=([axis], [0])), -1, axis)
    parts = [jax.lax.index_in_dim(x, a, axis, keepdims=False) for a in range(d)]
    return jnp.stack([sum(parts[a] * L[a, b] for a in range(d)) for b in range(d)], axis=axis)


def _mm_fwd(x, L, axis):
    return mm(x, L, axis), (x, L)


def _mm_bwd(axis, res, g):
    x, L = res
    axis = axis % x.ndim
    rest = [i for i in range(x.ndim) if i != axis]
    return mm(g, L.T, axis), jnp.tensordot(x, g, axes=(rest, rest))


mm.defvjp(_mm_fwd, _mm_bwd)


def chol(A):
    """Lower Cholesky factors of a planar batch A (d, d, M)."""
    d = A.shape[0]
    if d > _UNROLL:
        return jnp.moveaxis(jnp.linalg.cholesky(jnp.moveaxis(A, -1, 0)), 0, -1)
    C = [[jnp.zeros_like(A[0, 0])] * d for _ in range(d)]
    for j in range(d):
        C[j][j] = jnp.sqrt(A[j, j] - sum(C[j][k] ** 2 for k in range(j)))
        for i in range(j + 1, d):
            C[i][j] = (A[i, j] - sum(C[i][k] * C[j][k] for k in range(j))) / C[j][j]
    return jnp.stack([jnp.stack(row) for row in C])


def solve_lower(C, b):
    """``C_j^{-1} b_j`` for planar C (d, d, M) and b (..., d, M)."""
    d = C.shape[0]
    if d > _UNROLL:
        return _solve_batched(C, b, False)
    x = []
    for i in range(d):
        x.append((b[..., i, :] - sum(C[i, k] * x[k] for k in range(i))) / C[i, i])
    return jnp.stack(x, axis=-2)


def solve_upper_t(C, b):
    """``C_j^{-T} b_j`` for planar lower-triangular C (d, d, M) and b (..., d, M)."""
    d = C.shape[0]
    if d > _UNROLL:
        return _solve_batched(C, b, True)
    x = [None] * d
    for i in reversed(range(d)):
        x[i] = (b[..., i, :] - sum(C[k, i] * x[k] for k in range(i + 1, d))) / C[i, i]
    return jnp.stack(x, axis=-2)


def _solve_batched(C, b, transpose):
    d, m = b.shape[-2:]
    rhs = jnp.transpose(b.reshape(-1, d, m), (2, 1, 0))            # (M, d, K)
    x = jax.lax.linalg.triangular_solve(jnp.moveaxis(C, -1, 0), rhs, left_side=True, lower=True,
                                        transpose_a=transpose)
    return jnp.transpose(x, (2, 1, 0)).reshape(b.shape)


def tri_solve(C, b, transpose=False):
    """``C^{-1} b`` (or ``C^{-T} b``) for one dense lower-triangular C; b (D,) or (D, K).

    Cost O(D^2 K).
    """
    # lax's solve directly: jax.scipy's wrapper ran 2x slower at D = 80.
    vec = b.ndim == 1
    x = jax.lax.linalg.triangular_solve(C, b[:, None] if vec else b, left_side=True, lower=True,
                                        transpose_a=transpose)
    return x[:, 0] if vec else x


@jax.custom_vjp
def sandwich(G, La, Lb):
    """``out[a, x, b, y] = sum_pq La[p, a] G[p, x, q, y] Lb[q, b]`` for G (dA, X, dB, Y).

    The blocks of ``Lambda^T Z^T Z Lambda`` between two factors (X, Y their
    levels) or within one (X = 1, Y = M). G is data: no cotangent. The
    custom VJP contracts the incoming cotangent with G once,
    ``T[p, q, a, b] = sum_xy G[p, x, q, y] g[a, x, b, y]``, and reads both
    L gradients off T; JAX's own transpose of the two small contractions is
    several passes over G-sized arrays. Cost O(X Y dA dB (dA + dB)).
    """
    return mm(mm(G, Lb, 2), La, 0)


def _sandwich_fwd(G, La, Lb):
    return sandwich(G, La, Lb), (G, La, Lb)


def _sandwich_bwd(res, g):
    G, La, Lb = res
    T = jnp.einsum("pxqy,axby->pqab", G, g)
    return None, jnp.einsum("pqab,qb->pa", T, Lb), jnp.einsum("pqab,pa->qb", T, La)


sandwich.defvjp(_sandwich_fwd, _sandwich_bwd)


def within(S, L):
    """``L^T S_j L`` for planar per-level blocks S (d, d, M): (d, d, M)."""
    d, _, m = S.shape
    return sandwich(S.reshape(d, 1, d, m), L, L).reshape(d, d, m)


class Core(NamedTuple):
    """Blocked Cholesky of ``A`` and ``w = C^{-1} c``; the D2 parts are None with one factor."""

    C1: jax.Array  # (d1, d1, M1) Cholesky blocks of A_11
    w1: jax.Array  # (d1, M1) = C1^{-1} c1
    B: jax.Array   # (D2, d1, M1) = (C1^{-1} A_12)^T
    C2: jax.Array  # (D2, D2) Cholesky of the Schur complement A_22 - B^T B
    w2: jax.Array  # (D2,) = C2^{-1} (c2 - B^T w1)


def factor_core(A1, A21, A22, c1, c2) -> Core:
    """Cost O(M1 d1^3) for the blocks, O(M1 d1 D2^2) for ``B^T B``, O(D2^3) for C2.

    ``B`` is kept as (D2, d1 M1), so that ``B^T B`` contracts the contiguous
    axis (twice as fast as contracting the leading one).
    """
    C1 = chol(A1)
    w1 = solve_lower(C1, c1)
    if A22 is None:
        return Core(C1, w1, None, None, None)
    B = solve_lower(C1, A21)
    Bf = B.reshape(B.shape[0], -1)
    C2 = jnp.linalg.cholesky(A22 - Bf @ Bf.T)
    w2 = tri_solve(C2, c2 - Bf @ w1.reshape(-1))
    return Core(C1, w1, B, C2, w2)


def solve_mean(core: Core, xi1=None, xi2=None):
    """``v = C^{-T}(w + xi)`` by block back-substitution; ``A^{-1} c`` when xi is None."""
    v2 = None
    rhs1 = core.w1 if xi1 is None else core.w1 + xi1
    if core.C2 is not None:
        v2 = tri_solve(core.C2, core.w2 if xi2 is None else core.w2 + xi2, transpose=True)
        rhs1 = rhs1 - (v2 @ core.B.reshape(v2.shape[0], -1)).reshape(rhs1.shape)
    return solve_upper_t(core.C1, rhs1), v2


def _logdet_quad_value(core: Core):
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(core.C1)))
    quad = jnp.sum(core.w1 * core.w1)
    if core.C2 is not None:
        logdet = logdet + 2.0 * jnp.sum(jnp.log(jnp.diagonal(core.C2)))
        quad = quad + core.w2 @ core.w2
    return logdet - quad


@jax.custom_vjp
def logdet_quad(A1, A21, A22, c1, c2):
    """``log|A| - c^T A^{-1} c`` from the blocks of the symmetric matrix ``A``.

    Hand-written reverse mode so that value and gradient share one blocked
    Cholesky and the backward pass is a handful of large ops. With
    ``m = A^{-1} c``: d/dA = A^{-1} + m m^T, d/dc = -2 m. The blocks of
    ``A^{-1}`` needed are ``P = Schur^{-1}`` (22), ``-P E^T`` (21,
    ``E^T = B C1^{-1}``) and the diagonal blocks ``A_11j^{-1} + E_j P E_j^T``
    (11); cost O(D2^3 + M1 d1 D2^2), like the forward pass. A1 and A22 are
    read as symmetric matrices; A21 (D2, d1, M1) stands for both
    off-diagonal blocks.
    """
    return _logdet_quad_value(factor_core(A1, A21, A22, c1, c2))


def _logdet_quad_fwd(A1, A21, A22, c1, c2):
    core = factor_core(A1, A21, A22, c1, c2)
    return _logdet_quad_value(core), core


def _logdet_quad_bwd(core: Core, g):
    m1, m2 = solve_mean(core)
    d1, n1 = m1.shape
    eye = jnp.broadcast_to(jnp.eye(d1)[:, :, None], (d1, d1, n1))
    gA1 = solve_upper_t(core.C1, solve_lower(core.C1, eye)) + m1[:, None] * m1[None, :]
    if core.C2 is None:
        return g * gA1, None, None, -2.0 * g * m1, None
    D2 = core.C2.shape[0]
    # P = C2^{-T} C2^{-1} as W W^T with W = C2^{-T}: the contiguous-axis product.
    W = tri_solve(core.C2, jnp.eye(D2), transpose=True)
    P = W @ W.T
    E = solve_upper_t(core.C1, core.B)                        # (D2, d1, M1)
    F = (P @ E.reshape(D2, -1)).reshape(E.shape)
    gA1 = gA1 + jnp.sum(F[:, :, None] * E[:, None, :], axis=0)
    gA21 = 2.0 * (m2[:, None, None] * m1 - F)
    gA22 = P + jnp.outer(m2, m2)
    return g * gA1, g * gA21, g * gA22, -2.0 * g * m1, -2.0 * g * m2


logdet_quad.defvjp(_logdet_quad_fwd, _logdet_quad_bwd)
