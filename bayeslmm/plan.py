"""Marginalization plan: which grouping factors are integrated out of the likelihood.

A plan is decided from the design alone (NumPy only). ``"auto"`` weighs an
estimated cost per gradient evaluation against how many sampled dimensions
(and which, the worst-mixing ones) each plan removes; see :func:`auto_plan`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

__all__ = ["MarginalizationPlan", "resolve_plan", "plan_cost"]

log = logging.getLogger("bayeslmm")


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
        return bool(self.marginalized) and not self.sampled

    @property
    def label(self) -> str:
        if not self.marginalized:
            return "none"
        if not self.sampled:
            return "all"
        return "+".join(self.marginalized)

    def describe(self) -> str:
        if not self.marginalized:
            return "no marginalization (all group-level effects sampled, non-centred)"
        how = "sufficient statistics, cost independent of N" if self.sufficient else "O(N) per evaluation"
        text = f"marginalized {', '.join(self.marginalized)} ({how})"
        return text + (f"; {self.reason}" if self.reason else "")


def plan_cost(design, marginalized) -> float:
    """Estimated flops of one log-density + gradient evaluation for a plan.

    Terms (N rows, block k with M_k levels and d_k effects; block 1 the
    largest marginalized one; D2 the size of the rest of the marginalized):
    the residual and the sampled effects' gather, O(N (p + sum d_k)) unless
    every factor is marginalized; the block-diagonal part, M_1 d_1^3; the
    Schur complement, M_1 d_1^2 D2 + D2^2 M_1 d_1 + D2^3 / 3. The gradient
    is taken as three times the value (reverse mode).
    """
    blocks = [b for b in design.blocks if b.name in marginalized]
    sampled = [b for b in design.blocks if b.name not in marginalized]
    n, p = design.X.shape
    cost = 0.0
    if sampled or not blocks:
        cost += n * (p + 2 + sum(2 * b.dim for b in design.blocks))
    else:
        cost += sum(b.size for b in blocks) * p
    if blocks:
        b1, rest = blocks[0], blocks[1:]
        d2 = sum(b.size for b in rest)
        cost += b1.n_levels * b1.dim ** 3 * 4
        cost += b1.size * d2 * (b1.dim + d2) + d2 ** 3 / 3
    return 3.0 * cost


def _auto(design) -> tuple[tuple[str, ...], str]:
    names = [b.name for b in design.blocks]
    if not names:
        return (), "no group-level effects"
    options = [()]
    for k in range(1, len(names) + 1):
        options += list(combinations(names, k))
    base = plan_cost(design, ())
    # Each marginalized factor removes its M*d hardest dimensions; the sampler
    # is assumed to need fewer gradients per draw the more of them are gone.
    total = sum(b.size for b in design.blocks)

    def score(opt):
        removed = sum(design.block(n).size for n in opt)
        grads_per_draw = 1.0 + 3.0 * (1.0 - removed / total)  # relative, see docs/marginalization.md
        return plan_cost(design, opt) * grads_per_draw

    best = min(options, key=score)
    reason = f"auto: estimated cost {score(best) / max(score(()), 1):.2g}x of no marginalization (base {base:.3g} flops)"
    return tuple(best), reason


def resolve_plan(design, marginalize="none") -> MarginalizationPlan:
    """Turn the user's ``marginalize=`` into a plan.

    Accepts "none", "all", "auto", a factor name as written in the formula
    ("subj", "a:b") or a list of them. Raises ``ValueError`` naming the valid
    choices for anything else, and for families that are not Gaussian on
    some scale.
    """
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
    elif chosen == ["auto"]:
        marg, reason = _auto(design)
    else:
        bad = [c for c in chosen if c not in names]
        if bad:
            raise ValueError(
                f"Unknown marginalize target(s) {bad}; valid choices are: {', '.join(map(repr, valid))}."
            )
        marg = tuple(n for n in names if n in chosen)
    if marg and design.family.name not in ("gaussian", "lognormal"):
        raise ValueError(f"family {design.family.name!r} cannot be marginalized; use marginalize='none'.")
    if not names and marg:
        raise ValueError("The formula has no group-level terms to marginalize; use marginalize='none'.")
    sampled = tuple(n for n in names if n not in marg)
    return MarginalizationPlan(marg, sampled, marginalize, reason)
