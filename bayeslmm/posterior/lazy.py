"""Predictions and pointwise log-likelihood on a Dask frame, as lazy Dask arrays.

A model fitted on a Dask frame (:class:`~bayeslmm.distributed.DaskDesign`)
has no rows on the driver. Its pointwise log-likelihood, and predictions for
a Dask ``newdata``, are Dask arrays of shape (draws, rows), the draws in
chain-major order as :func:`bayeslmm.posterior.predict.predict` returns them,
with one block of columns per partition: each block is computed, when the
array is, from that partition alone and the posterior draws (shipped to the
workers with the graph), so no step collects the rows.

Per partition the fixed-effects matrix and the effect columns are evaluated
with formulae as during the fit (the same formula, global ``scale()`` /
``center()`` columns added with the training moments), and each row's level
is looked up among the training levels. Levels not seen in training are an
error when the block is computed (a Dask frame's levels are not known
before), so ``allow_new_levels`` is not supported here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayeslmm.model.design import ReBlock, common_matrix, evaluate_expression, factor_labels

from .predict import KINDS, PredictionRows, _included_effects, _Part, linear_predictor, response_mean
from .recover import stack_draws

__all__ = ["is_dask_design", "lazy_log_likelihood", "lazy_predict"]

_LOG_2PI = np.log(2 * np.pi)


def is_dask_design(design) -> bool:
    """True for a design summarised from a Dask frame."""
    return getattr(design, "eval_spec", None) is not None and design.X is None


def _rows(design, keep, part: pd.DataFrame) -> PredictionRows:
    spec = design.eval_spec
    part = part.reset_index(drop=True)
    X = common_matrix(spec.fixed, part)[0].reshape(len(part), -1)
    parts = []
    for blk in design.blocks:
        if not keep.get(blk.name):
            continue
        terms = [t for t in spec.random if t.factor_name == blk.name]
        labels = factor_labels(part, terms[0].factor)
        gidx = pd.Index(blk.levels).get_indexer(labels)
        if (gidx < 0).any():
            new = list(pd.unique(labels[gidx < 0]))[:5]
            raise ValueError(f"A partition has level(s) of {blk.name!r} not seen in training: {new}; "
                             "predictions on a Dask frame need the training levels.")
        values = np.column_stack([np.ones((len(part), 1)) if t.expr.strip() == "1" else
                                  common_matrix(t.expr, part)[0] for t in terms])
        parts.append(_Part(ReBlock(blk.name, gidx.astype(np.int64), values, blk.levels, blk.terms,
                                   blk.corr_groups), keep[blk.name], blk.n_levels))
    return PredictionRows(X, tuple(parts))


def _blocks(frame, fn, n_draws):
    """One (n_draws, len(partition)) block per partition of ``frame``, ``fn(partition)`` each, as one Dask array."""
    import dask
    import dask.array as da

    lengths = frame.map_partitions(len).compute()  # one integer per partition, for known chunks
    parts = frame.to_delayed()
    return da.concatenate([da.from_delayed(dask.delayed(fn)(p), shape=(n_draws, int(n)), dtype=float)
                           for p, n in zip(parts, lengths)], axis=1)


def lazy_predict(fit, newdata=None, re_formula=None, kind="mean"):
    """Draws of predictions for the rows of a Dask frame: a Dask array (draws, rows).

    ``newdata`` None means the training frame. ``kind`` "mean" or "link"
    (see :func:`bayeslmm.posterior.predict.predict`); "response" needs
    random numbers per partition and is not offered. Cost when computed:
    O(S n (p + sum_g d_g)) per partition of n rows, for S draws; nothing
    but the partition lengths is computed before.
    """
    design = fit.design
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if kind == "response":
        raise ValueError("kind='response' is not supported for a Dask frame; use kind='mean' or 'link'.")
    keep = _included_effects(design, re_formula)
    frame = design.data if newdata is None else design.transform(newdata)
    post = fit.posterior
    aux = {a: stack_draws(post[a])[:, None] for a in design.family.aux}
    n_draws = post.sizes["chain"] * post.sizes["draw"]

    def block(part):
        eta = linear_predictor(post, _rows(design, keep, part))
        return eta if kind == "link" else response_mean(design.family, eta, aux)

    return _blocks(frame, block, n_draws)


def lazy_log_likelihood(fit):
    """Pointwise log-likelihood of the training rows of a Dask-fitted model: a Dask array (draws, rows).

    The same quantity as :func:`bayeslmm.posterior.loglik.log_likelihood`
    (conditional on each draw's group-level effects; for lognormal, the
    density of the original y), computed partition by partition when the
    array is computed. Cost: O(S n (p + sum_g d_g)) per partition.
    """
    from bayeslmm.distributed.design import _response

    design = fit.design
    keep = _included_effects(design, None)
    post = fit.posterior
    sigma = stack_draws(post["sigma"])[:, None]
    n_draws = post.sizes["chain"] * post.sizes["draw"]

    def block(part):
        part = part.reset_index(drop=True)
        y = _response(design.eval_spec, design.family, part)
        eta = linear_predictor(post, _rows(design, keep, part))
        jac = -y if design.family.log_scale else 0.0  # y is log(y) on the model scale
        s = sigma
        if design.weights_source is not None:  # lme4's precision weights, as for a pandas frame
            w = np.asarray(evaluate_expression(design.weights_source, part, "weights"), dtype=float)
            s = sigma / np.sqrt(np.maximum(w, 1e-300))
            # A zero weight leaves the row out of the likelihood: its term is 0 (loglik.log_likelihood).
            return np.where(w > 0, -0.5 * _LOG_2PI - np.log(s) - 0.5 * ((y - eta) / s) ** 2 + jac, 0.0)
        return -0.5 * _LOG_2PI - np.log(s) - 0.5 * ((y - eta) / s) ** 2 + jac

    return _blocks(design.data, block, n_draws)
