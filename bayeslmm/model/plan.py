"""Marginalization plan: which grouping factors are integrated out of the likelihood.

A plan is decided from the design alone (NumPy only). ``"auto"`` weighs an
estimated cost per gradient evaluation against how many sampled dimensions
(and which, the worst-mixing ones) each plan removes; see :func:`auto_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .moments import least_squares, moment_sds

__all__ = ["MarginalizationPlan", "resolve_plan", "plan_cost", "grad_seconds", "grads_per_draw_factor",
           "level_information"]


@dataclass(frozen=True)
class MarginalizationPlan:
    """Factors integrated out (largest first) and how the likelihood gets its statistics.

    ``sufficient`` is True when every random factor is marginalized: the
    likelihood then uses statistics computed once and costs O(1) in N per
    evaluation. Otherwise it is O(N) (a scatter-add of the residual).
    """

    marginalized: tuple[str, ...]
    sampled: tuple[str, ...]
    requested: object = "none"
    reason: str = ""

    @property
    def sufficient(self) -> bool:
        """True when every factor is marginalized: the likelihood uses sufficient statistics."""
        return bool(self.marginalized) and not self.sampled

    @property
    def label(self) -> str:
        """"none", "all", or the marginalized factors joined by "+"."""
        if not self.marginalized:
            return "none"
        if not self.sampled:
            return "all"
        return "+".join(self.marginalized)

    def describe(self) -> str:
        """One line for logs and summaries: what is marginalized, at what cost, and why."""
        if not self.marginalized:
            return "no marginalization (all group-level effects sampled, non-centred)"
        how = "sufficient statistics, cost independent of N" if self.sufficient else "O(N) per evaluation"
        text = f"marginalized {', '.join(self.marginalized)} ({how})"
        return text + (f"; {self.reason}" if self.reason else "")


# Calibrated on this project's benchmark machine (2-core x86-64 CPU, JAX 0.10,
# float64; benchmarks/results/latest/plans/plans_small.json and plans_insteval.json;
# _DENSE_ROW_S re-measured on plans_seeds.json after the kernel rewrite:
# 2.5-3.1 us on dillonE1, eeg and crossed 50x40); see
# docs/marginalization.md for the derivation and the check of the choices.
_OVERHEAD_S = 1.2e-4      # one log-density + gradient evaluation, any plan
_DENSE_ROW_S = 3.0e-6     # per row of the dense (Schur) part: XLA's sequential Cholesky steps
_ROW_S = 5.6e-9           # per row and per column touched (X, gathers, scatter-adds)
_FLOP_S = 2.0e-11         # per flop of the dense blocked Cholesky (BLAS-3 rate)
_MIX_PER_INFO = 1.0       # extra gradients per effective draw, per unit of a sampled factor's information
_MIX_PER_FACTOR = 1.0     # extra gradients per effective draw for any sampled factor, however little informed


def grad_seconds(design, marginalized) -> float:
    """Predicted seconds of one log-density + gradient evaluation under a plan.

    ``_OVERHEAD_S`` + rows term + dense term, where the rows term is
    N (p + sum_k d_k) row operations unless every factor is marginalized
    (then the likelihood uses sufficient statistics and costs O(D p)), and the
    dense term counts the flops of the blocked factorization (block 1 the
    largest marginalized factor, D2 the size of the others):
    M_1 d_1^3 + M_1 d_1 D2^2 + D2^3 / 3, times 6 (multiply-add, and the
    gradient at twice the value).
    """
    blocks = [b for b in design.blocks if b.name in marginalized]
    sampled = [b for b in design.blocks if b.name not in marginalized]
    n, p = design.n, len(design.fixed_names)
    t = _OVERHEAD_S
    if sampled or not blocks:
        t += _ROW_S * n * (p + 1 + sum(b.dim for b in design.blocks))
    else:
        t += _ROW_S * sum(b.size for b in blocks) * (p + 1)
    if blocks:
        b1, rest = blocks[0], blocks[1:]
        d2 = sum(b.size for b in rest)
        flops = b1.n_levels * b1.dim ** 3 + b1.size * d2 ** 2 + d2 ** 3 / 3
        t += 6 * _FLOP_S * flops + _DENSE_ROW_S * d2
    return t


def level_information(design) -> dict:
    """Per factor, how strongly the data inform each level's effect: ``n_bar tau^2 / sigma^2``.

    ``sigma^2`` and the between-level variance ``tau^2`` of the intercepts are
    the one-way moment estimates of :func:`~bayeslmm.model.moments.moment_sds`
    on the least-squares residuals (cost O(N p^2)), ``n_bar = N / M``. This is
    the ratio that decides whether a non-centred parameterization mixes
    well (small) or badly (large).
    """
    e = least_squares(design.y, design.X)[1]
    ones = np.ones((design.n, 1))
    out = {}
    for b in design.blocks:
        s2, tau2 = moment_sds(e, b.group_index, ones, b.n_levels)
        out[b.name] = (design.n / b.n_levels) * float(tau2[0]) / s2 if s2 > 0 else float("inf")
    return out


def grads_per_draw_factor(design, marginalized, info=None) -> float:
    """Predicted gradients per effective draw, relative to marginalizing every factor.

    Each sampled (non-centred) factor adds ``_MIX_PER_FACTOR + _MIX_PER_INFO``
    x its :func:`level_information`: non-centring mixes badly exactly when the
    data pin each level's effect down well, and even a factor the data say
    little about adds M d coordinates to the sampler (the calibration is in
    docs/marginalization.md).
    """
    info = level_information(design) if info is None else info
    return 1.0 + sum(_MIX_PER_FACTOR + _MIX_PER_INFO * info[b.name]
                     for b in design.blocks if b.name not in marginalized)


def plan_cost(design, marginalized, info=None) -> float:
    """Predicted seconds per effective draw (up to a constant): gradient time x gradients per draw."""
    return grad_seconds(design, marginalized) * grads_per_draw_factor(design, marginalized, info)


def _auto(design) -> tuple[tuple[str, ...], str]:
    names = [b.name for b in design.blocks]
    if not names:
        return (), "no group-level terms"
    options = [()] + [c for k in range(1, len(names) + 1) for c in combinations(names, k)]
    info = level_information(design)
    costs = {opt: plan_cost(design, opt, info) for opt in options}
    best = min(options, key=costs.get)
    reason = (f"auto: predicted {costs[()] / costs[best]:.2g}x the effective draws per second of no "
              f"marginalization ({grad_seconds(design, best) * 1e3:.2g} ms per gradient)")
    return tuple(n for n in names if n in best), reason


def resolve_plan(design, marginalize="none", approximation=None) -> MarginalizationPlan:
    """Turn the user's ``marginalize=`` into a plan.

    Accepts "none", "all", "auto", a factor name as written in the formula
    ("subj", "a:b") or a list of them. Raises ``ValueError`` naming the valid
    choices for anything else, and for families that are not Gaussian on
    some scale.
    """
    if approximation is not None:
        works = ("'none', 'auto'" if not design.family.gaussian
                 else "'none', 'all', 'auto' or factor names (exact, no approximation needed)")
        raise ValueError(
            f"approximation={approximation!r} is not an option of this version: group-level effects are "
            f"integrated out only exactly, for Gaussian likelihoods. For family={design.family.name!r} the plans "
            f"that work are marginalize={works}, with approximation=None."
        )
    names = [b.name for b in design.blocks]
    valid = ["none", "all", "auto"] + names
    if isinstance(marginalize, str):
        chosen = [marginalize]
    elif isinstance(marginalize, (list, tuple)) and all(isinstance(m, str) for m in marginalize):
        chosen = list(marginalize)
    else:
        raise TypeError(f"marginalize must be a string or a list of factor names, got {marginalize!r}.")
    reason = ""
    if chosen == ["none"] or chosen == []:
        marg = ()
    elif chosen == ["all"]:
        marg = tuple(names)
    elif chosen == ["auto"] and not design.family.gaussian:
        marg, reason = (), f"family={design.family.name!r} is not Gaussian in the effects: every effect sampled"
    elif chosen == ["auto"]:
        marg, reason = _auto(design)
    else:
        bad = [c for c in chosen if c not in names]
        if bad:
            raise ValueError(
                f"Unknown marginalize target(s) {bad}; valid choices are: {', '.join(map(repr, valid))}."
            )
        marg = tuple(n for n in names if n in chosen)
    if marg and not design.family.gaussian:
        raise ValueError(
            f"marginalize={marginalize!r} cannot be used with family={design.family.name!r}: exact integration "
            "of the group-level effects needs a likelihood that is Gaussian in them (gaussian, lognormal), and "
            f"the {design.family.name} likelihood is not, so the integral has no closed form. Use "
            "marginalize='none' (every effect sampled, exact) or marginalize='auto'."
        )
    if not names and marg:
        raise ValueError("The formula has no group-level terms to marginalize; use marginalize='none'.")
    sampled = tuple(n for n in names if n not in marg)
    return MarginalizationPlan(marg, sampled, marginalize, reason)
