"""Data-only precomputation for the marginal Gaussian log-density.

Everything here runs once, before sampling, in NumPy. The per-evaluation
functions of :mod:`bayeslmm.ops.marginal` only touch parameters and the
arrays stored on :class:`MarginalData`. Factors come as
:class:`~bayeslmm.model.design.ReBlock` objects (anything with ``name``,
``group_index``, ``values``, ``n_levels``, ``dim`` and ``size``).

Layout used by the kernels ("internal order"): factors sorted by
``M_k d_k`` descending (stable); the largest is factor 1, whose block of
``A`` is block diagonal, and the rest form the dense part of size
``D2 = sum_{k>=2} M_k d_k``. Within a factor the flat index of level ``j``,
dimension ``a`` is ``a * M_k + j`` (dimension-major: each effect dimension is
a contiguous run of M_k numbers, which XLA vectorizes, where an innermost
axis of length d = 2 would not); factors are concatenated in internal order,
so a vector of length ``D`` splits as ``[factor 1 | dense part]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from bayeslmm.model.moments import least_squares

__all__ = ["MarginalData"]


def cross_blocks(fa, fb) -> np.ndarray:
    """``Z_a^T Z_b`` as a dense (M_a d_a, M_b d_b) array, without building Z.

    One bincount per pair of effect dimensions, O(N d_a d_b); memory is the
    output plus O(N).
    """
    out = None
    for a in range(fa.dim):
        rows = a * fa.n_levels + fa.group_index
        for b in range(fb.dim):
            flat = rows * fb.size + (b * fb.n_levels + fb.group_index)
            part = np.bincount(flat, weights=fa.values[:, a] * fb.values[:, b],
                               minlength=fa.size * fb.size)
            out = part if out is None else np.add(out, part, out=out)
    return out.reshape(fa.size, fb.size)


def level_blocks(f) -> np.ndarray:
    """Per-level ``S_j = sum_{n in j} z_n z_n^T``, shape (d, d, M); O(N d^2)."""
    out = np.empty((f.dim, f.dim, f.n_levels))
    for a in range(f.dim):
        for b in range(a, f.dim):
            out[a, b] = out[b, a] = np.bincount(
                f.group_index, weights=f.values[:, a] * f.values[:, b], minlength=f.n_levels)
    return out


def level_sums(f, x: np.ndarray) -> np.ndarray:
    """``Z_k^T x`` for ``x`` of shape (N, q), returned as (d_k * M_k, q); O(N d q)."""
    out = np.empty((f.dim, f.n_levels, x.shape[1]))
    for a in range(f.dim):
        for j in range(x.shape[1]):
            out[a, :, j] = np.bincount(f.group_index, weights=f.values[:, a] * x[:, j],
                                       minlength=f.n_levels)
    return out.reshape(f.size, x.shape[1])


def dense_layout(dims, levels, cross) -> dict:
    """The fields of :class:`MarginalData` that couple the factors after the first.

    ``dims`` and ``levels``: d_k and M_k per factor in the engine's order
    (the largest first); ``cross(i, j)``: ``Z_i^T Z_j`` as a dense
    (M_i d_i, M_j d_j) array. Returns ``diag_rows``/``diag_cols`` (where
    each dense factor's per-level blocks sit in D2 x D2), ``G22x`` (the
    cross blocks between dense factors, None with fewer than two) and
    ``G21`` (each dense factor against the first). O(D2^2 + sum_k D_k D_1)
    memory; the cost is that of the ``cross`` calls.
    """
    out = dict(G22x=None, G21=(), diag_rows=None, diag_cols=None)
    if len(dims) < 2:
        return out
    offsets = np.cumsum([0] + [d * m for d, m in zip(dims[1:], levels[1:])])
    rows, cols = [], []
    for k, o in zip(range(1, len(dims)), offsets):
        a, b, j = np.meshgrid(np.arange(dims[k]), np.arange(dims[k]), np.arange(levels[k]), indexing="ij")
        rows.append((o + a * levels[k] + j).ravel())
        cols.append((o + b * levels[k] + j).ravel())
    out["diag_rows"], out["diag_cols"] = np.concatenate(rows), np.concatenate(cols)
    if len(dims) > 2:
        g22 = np.zeros((int(offsets[-1]),) * 2)
        for i in range(1, len(dims)):
            for j in range(i + 1, len(dims)):
                blk = cross(i, j)
                g22[offsets[i - 1]:offsets[i], offsets[j - 1]:offsets[j]] = blk
                g22[offsets[j - 1]:offsets[j], offsets[i - 1]:offsets[i]] = blk.T
        out["G22x"] = g22
    out["G21"] = tuple(cross(k, 0).reshape(dims[k], levels[k], dims[0], levels[0]) for k in range(1, len(dims)))
    return out


def _check_weights(weights, n: int) -> np.ndarray:
    """Precision weights as a float64 (N,) array; ValueError naming the problem otherwise."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), one per row of y, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite; {int(np.sum(~np.isfinite(w)))} values are not")
    if np.any(w < 0):
        raise ValueError(f"weights must be non-negative, got min {w.min()!r}")
    if not np.any(w > 0):
        raise ValueError("weights are all zero: no row enters the likelihood")
    return w


def _scaled_factor(f, sw: np.ndarray):
    """``f`` with each row's covariates times ``sw``: the rows of ``W^{1/2} Z_k``."""
    return SimpleNamespace(name=f.name, group_index=f.group_index, values=f.values * sw[:, None],
                           n_levels=f.n_levels, dim=f.dim, size=f.size)


@dataclass(frozen=True, eq=False)
class MarginalData:
    """Everything the marginal log-density needs from the data, computed once.

    Build with :meth:`MarginalData.build`. Equality and hashing are by identity,
    so that PyTensor Ops holding the same instance compare equal.

    Attributes
    ----------
    mode : {"rows", "sufficient"}
        How ``r^T r`` and ``Z^T r`` are obtained per evaluation.
    names : tuple of str
        Factor names in caller order.
    order : tuple of int
        ``order[i]`` is the caller index of the i-th factor in internal order.
    levels, dims : tuple of int
        ``M_k`` and ``d_k`` in internal order.
    n_obs, n_fixed : int
        ``N`` (rows, zero-weight ones included: the length of an offset) and ``p``.
    n_positive : int or None
        Rows with a positive weight, which enter the likelihood's
        ``log(2 pi sigma^2)`` term; None without weights (all ``n_obs``).
    sum_log_w : float
        ``sum_i log w_i`` over the rows with positive weight (0 without weights):
        ``log|sigma^2 W^{-1}| = n_positive log sigma^2 - sum_log_w``.
    S1 : ndarray (d1, d1, M1)
        ``S_{1,j} = sum_{n in j} z_n z_n^T`` for the largest factor.
    S2 : tuple of ndarray (d_k, d_k, M_k)
        The same per-level blocks for each factor of the dense part: the
        block diagonal of ``Z_2^T Z_2``.
    G21 : tuple of ndarray (d_k, M_k, d1, M1)
        ``Z_k^T Z_1`` for each dense factor, indexed (dim, level, dim, level).
    G22x : ndarray (D2, D2) or None
        The off-diagonal blocks of ``Z_2^T Z_2`` (between different factors
        of the dense part; zero diagonal blocks); None with one dense factor,
        the common crossed design, where ``Z_2^T Z_2`` is block diagonal.
    diag_rows, diag_cols : ndarray of int (sum_k d_k^2 M_k,) or None
        Where the entries of ``S2`` (flattened) sit in the dense (D2, D2) layout.
    y, X : ndarray or None
        Rows mode only; with weights, ``W^{1/2} y`` and ``W^{1/2} X``.
    row_groups, row_values : tuple of ndarray (N,) and (d_k, N), or None
        Rows mode only: group index and transposed covariates per factor
        (internal order), for ``Z_k^T r`` by segment sums; with weights, the
        covariates of ``W^{1/2} Z_k``.
    sqrt_w : ndarray (N,) or None
        Rows mode with weights only: ``w_i^{1/2}``, which scales an offset
        given per evaluation like the rows of ``y``.
    beta_hat, ete, Xte, XtX, Zte, ZtX : ndarray or None
        Sufficient mode only: least-squares reference ``beta_hat``,
        ``e = y - X beta_hat``, ``e^T e``, ``X^T e``, ``X^T X``, ``Z^T e`` (D,)
        and ``Z^T X`` (D, p) in the internal layout; with weights, the
        weighted least-squares fit and ``e^T W e``, ``X^T W e``, ...
    """

    mode: str
    names: tuple
    order: tuple
    levels: tuple
    dims: tuple
    n_obs: int
    n_fixed: int
    S1: np.ndarray
    S2: tuple = ()
    G21: tuple = ()
    G22x: np.ndarray | None = None
    diag_rows: np.ndarray | None = None
    diag_cols: np.ndarray | None = None
    y: np.ndarray | None = None
    X: np.ndarray | None = None
    row_groups: tuple | None = None
    row_values: tuple | None = None
    beta_hat: np.ndarray | None = None
    ete: float | None = None
    Xte: np.ndarray | None = None
    XtX: np.ndarray | None = None
    Zte: np.ndarray | None = None
    ZtX: np.ndarray | None = None
    n_positive: int | None = None
    sum_log_w: float = 0.0
    sqrt_w: np.ndarray | None = None

    @property
    def n_likelihood(self) -> int:
        """Rows that enter the likelihood: those with a positive weight (all rows without weights)."""
        return self.n_obs if self.n_positive is None else self.n_positive

    @property
    def n_factors(self) -> int:
        return len(self.order)

    @property
    def sizes(self) -> tuple[int, ...]:
        """``M_k d_k`` in internal order."""
        return tuple(m * d for m, d in zip(self.levels, self.dims))

    @property
    def dense_size(self) -> int:
        """``D2``, the size of the dense part (0 with one factor)."""
        return sum(self.sizes[1:])

    @classmethod
    def build(cls, y, X, factors, sufficient: bool, weights=None) -> "MarginalData":
        """Precompute the cross-products for ``y = X beta + offset + sum_k Z_k u_k + eps``.

        Parameters
        ----------
        y : array (N,)
        X : array (N, p)
        factors : list of ReBlock
            The marginalized factors, in caller order.
        sufficient : bool
            If True, store sufficient statistics so that each evaluation costs
            O(D2^2 (M1 d1 + D2) + D p) independently of N; only valid when no
            offset enters the mean. If False ("rows" mode) keep y and X and
            compute ``r`` per evaluation, O(N (p + sum d_k)).
        weights : array (N,), optional
            lme4's precision weights, ``eps_i ~ N(0, sigma^2 / w_i)``: every
            cross-product is taken with row weights ``w_i`` (equivalently, of
            ``W^{1/2} y``, ``W^{1/2} X``, ``W^{1/2} Z``), which keeps the
            marginal density exact. A row of weight 0 has infinite variance
            and drops out of the likelihood. Non-negative, finite, not all 0.

        Notes
        -----
        Cost O(N sum_{k,l} d_k d_l + N p^2) time; memory O(D2 M1 d1) for
        ``Z_2^T Z_1``, plus O(D2^2) for the cross-products between dense
        factors when there are several, plus O(N) temporaries.
        """
        y = np.asarray(y, dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {y.shape}")
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must have shape (N, p) with N = {y.shape[0]}, got {X.shape}")
        if not factors:
            raise ValueError("at least one marginalized factor is required")
        for f in factors:
            if f.group_index.shape[0] != y.shape[0]:
                raise ValueError(f"factor {f.name!r} has {f.group_index.shape[0]} rows, "
                                 f"y has {y.shape[0]}")

        weighted = {}
        if weights is not None:
            w = _check_weights(weights, y.shape[0])
            pos = w > 0
            sw = np.sqrt(w)
            # With W^{1/2} applied to y, X and Z the model has unit weights and the
            # unweighted statistics below are the weighted ones.
            y, X = y * sw, X * sw[:, None]
            factors = [_scaled_factor(f, sw) for f in factors]
            weighted = dict(n_positive=int(pos.sum()), sum_log_w=float(np.sum(np.log(w[pos]))),
                            sqrt_w=None if sufficient else sw)

        order = tuple(sorted(range(len(factors)), key=lambda k: -factors[k].size))
        fs = [factors[k] for k in order]
        f1, dense = fs[0], fs[1:]

        fields = dict(
            names=tuple(f.name for f in factors), order=order,
            levels=tuple(f.n_levels for f in fs), dims=tuple(f.dim for f in fs),
            n_obs=y.shape[0], n_fixed=X.shape[1],
            S1=level_blocks(f1), S2=tuple(level_blocks(f) for f in dense),
            mode="sufficient" if sufficient else "rows",
        )
        fields.update(dense_layout([f.dim for f in fs], [f.n_levels for f in fs],
                                   lambda i, j: cross_blocks(fs[i], fs[j])))

        if sufficient:
            # Centre on the least-squares fit: with y ~ 5000 the raw y^T y would
            # cancel against 2 beta^T X^T y to lose ~8 digits; residuals do not.
            beta_hat = least_squares(y, X)[0]
            e = y - X @ beta_hat
            fields.update(
                beta_hat=beta_hat, ete=float(e @ e), Xte=X.T @ e, XtX=X.T @ X,
                Zte=np.concatenate([level_sums(f, e[:, None])[:, 0] for f in fs]),
                ZtX=np.concatenate([level_sums(f, X) for f in fs]),
                y=None, X=None, row_groups=None, row_values=None,
            )
        else:
            fields.update(
                y=y, X=X,
                row_groups=tuple(f.group_index for f in fs),
                # (d, N): each effect dimension contiguous, one segment sum each.
                row_values=tuple(np.ascontiguousarray(f.values.T) for f in fs),
            )
        fields.update(weighted)
        return cls(**fields)

    def __repr__(self):
        parts = ", ".join(f"{self.names[k]}: {m}x{d}"
                          for k, m, d in zip(self.order, self.levels, self.dims))
        w = "" if self.n_positive is None else f", weighted ({self.n_positive} rows with w > 0)"
        return f"MarginalData(mode={self.mode!r}, N={self.n_obs}, p={self.n_fixed}, [{parts}]{w})"
