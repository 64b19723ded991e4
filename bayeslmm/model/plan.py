"""Marginalization plan: which grouping factors are integrated out of the likelihood.

A plan is decided from the design alone (NumPy only). ``"auto"`` weighs an
estimated cost per gradient evaluation against how many sampled dimensions
(and which, the worst-mixing ones) each plan removes; see :func:`auto_plan`.

Gaussian families are integrated exactly. The others can have factors
integrated out only with ``approximation="laplace"`` (the Laplace
approximation at the conditional mode, :mod:`bayeslmm.ops.laplace`); their
cost per gradient is :func:`laplace_grad_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .moments import least_squares, moment_sds

__all__ = ["MarginalizationPlan", "resolve_plan", "plan_cost", "grad_seconds", "grad_seconds_terms", "GRAD_CONSTANTS",
           "grads_per_draw_factor",
           "level_information", "run_seconds", "laplace_grad_seconds", "laplace_accuracy_warning", "APPROXIMATIONS"]

APPROXIMATIONS = (None, "laplace")
# Families whose likelihood is log-concave in the linear predictor: Newton on the effects converges.
_LAPLACE_FAMILIES = ("gaussian", "lognormal", "bernoulli", "binomial", "poisson", "negbinomial")


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
    approximation: str | None = None   # None: exact integration; "laplace": Laplace at the mode

    @property
    def sufficient(self) -> bool:
        """True when every factor is marginalized exactly: the likelihood uses sufficient statistics.

        Never for a Laplace plan, whose weights ``W`` change with the mode at every evaluation.
        """
        return bool(self.marginalized) and not self.sampled and self.approximation is None

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
        if self.approximation == "laplace":
            text = (f"marginalized {', '.join(self.marginalized)} by a Laplace approximation at the conditional "
                    "mode (approximation='laplace'; Newton steps of O(N) each per evaluation)")
            return text + (f"; {self.reason}" if self.reason else "")
        how = "sufficient statistics, cost independent of N" if self.sufficient else "O(N) per evaluation"
        text = f"marginalized {', '.join(self.marginalized)} ({how})"
        return text + (f"; {self.reason}" if self.reason else "")


# Calibrated on this project's benchmark machine (2-core x86-64 CPU, JAX 0.10, float64, one JAX
# device): benchmarks/bench_grad_cost.py times one log-density + gradient of every plan of every
# Gaussian registry data set (46 plans, benchmarks/results/latest/grad_cost.json) and fits these four
# by non-negative least squares on the relative error; see docs/marginalization.md.
_OVERHEAD_S = 1.23e-4     # one log-density + gradient evaluation, any plan
_DENSE_ROW_S = 2.53e-6    # per row of the dense (Schur) part: XLA's sequential Cholesky steps
_ROW_S = 1.96e-9          # per row and per column touched (X, gathers, scatter-adds)
_FLOP_S = 1.26e-11        # per flop of the dense blocked Cholesky (BLAS-3 rate)
_MIX_PER_INFO = 1.0       # extra gradients per effective draw, per unit of a sampled factor's information
_MIX_PER_FACTOR = 1.0     # extra gradients per effective draw for any sampled factor, however little informed
#: The constants of :func:`grad_seconds`, in the order of :func:`grad_seconds_terms`.
GRAD_CONSTANTS = (_OVERHEAD_S, _ROW_S, _FLOP_S, _DENSE_ROW_S)


def grad_seconds_terms(design, marginalized) -> tuple:
    """The four terms of :func:`grad_seconds`, each the count its constant multiplies.

    ``(1, row operations, flops, dense rows)``: the overhead's 1; N (p + 1 +
    sum_k d_k) row operations unless every factor is marginalized (then
    sum_k M_k d_k (p + 1): the likelihood uses sufficient statistics); the
    flops of the blocked factorization, 6 (M_1 d_1^3 + M_1 d_1 D2^2 + D2^3 / 3)
    (multiply-add, and the gradient at twice the value), block 1 the largest
    marginalized factor and D2 the size of the others; and D2. O(number of factors).
    """
    blocks = [b for b in design.blocks if b.name in marginalized]
    sampled = [b for b in design.blocks if b.name not in marginalized]
    n, p = design.n, len(design.fixed_names)
    if sampled or not blocks:
        rows = n * (p + 1 + sum(b.dim for b in design.blocks))
    else:
        rows = sum(b.size for b in blocks) * (p + 1)
    flops, d2 = 0.0, 0
    if blocks:
        b1, rest = blocks[0], blocks[1:]
        d2 = sum(b.size for b in rest)
        flops = 6 * (b1.n_levels * b1.dim ** 3 + b1.size * d2 ** 2 + d2 ** 3 / 3)
    return 1.0, float(rows), float(flops), float(d2)


def grad_seconds(design, marginalized) -> float:
    """Predicted seconds of one log-density + gradient evaluation under a plan.

    ``_OVERHEAD_S`` + ``_ROW_S`` x row operations + ``_FLOP_S`` x flops of
    the blocked factorization + ``_DENSE_ROW_S`` x rows of its dense part:
    the terms of :func:`grad_seconds_terms`. O(number of factors).
    """
    return float(np.dot(grad_seconds_terms(design, marginalized), GRAD_CONSTANTS))


# A Laplace evaluation is a Newton solve: K steps, each a row pass, a re-accumulation of the Gram
# blocks Z^T W Z from the rows and one blocked factorization, plus one more factorization at the
# mode, shared by the value and the implicit-function gradient. K = 5 is the count from v = 0 at
# lme4's estimates of benchmarks/bench_laplace_grad.py (4 cbpp, 5 sim_bernoulli, 7 grouseticks).
_NEWTON_STEPS = 5


def laplace_grad_seconds(design, marginalized) -> float:
    """Predicted seconds of one Laplace log-density + gradient evaluation under a plan.

    ``_OVERHEAD_S + (K + 1)`` times one Newton step (K steps and the
    factorization at the mode that serves the value and the gradient), a step
    costing what a rows-mode Gaussian gradient costs (the rows term over
    every factor and the blocked factorization of :func:`grad_seconds`) plus
    the Gram accumulation ``N sum_{j,k in S} d_j d_k`` row operations; K =
    ``_NEWTON_STEPS``. A Newton step is taken to cost about one Gaussian
    gradient; docs/marginalization.md compares the prediction with timings.
    """
    blocks = [b for b in design.blocks if b.name in marginalized]
    if not blocks:
        return grad_seconds(design, ())
    # Rows-mode row operations (those of the plan that samples everything) plus the Gram
    # accumulation; the factorization's terms are the plan's own.
    rows = grad_seconds_terms(design, ())[1] + design.n * sum(a.dim * b.dim for a in blocks for b in blocks)
    _, _, flops, d2 = grad_seconds_terms(design, marginalized)
    step = _ROW_S * rows + _FLOP_S * flops + _DENSE_ROW_S * d2
    return _OVERHEAD_S + (_NEWTON_STEPS + 1) * step


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


#: Leapfrog steps per NUTS iteration that :func:`run_seconds` assumes for a plan that marginalizes every
#: factor (tree depth 3-4); :func:`grads_per_draw_factor` scales it for the others.
_STEPS_PER_ITERATION = 10
#: Warm-ups shorter than this are not predicted: the chunked sampler's curvature restarts and NumPyro's
#: first mass-matrix window need about as many iterations, and before them trees can reach 2^10 steps.
_MIN_PREDICTED_TUNE = 200


def run_seconds(design, plan, tune, draws) -> float | None:
    """Predicted seconds of one chain's ``tune + draws`` NUTS iterations under ``plan``: an order of magnitude.

    ``(tune + draws)`` x ``_STEPS_PER_ITERATION`` x :func:`grads_per_draw_factor`
    gradients of :func:`grad_seconds` (:func:`laplace_grad_seconds` for a
    Laplace plan); None for a warm-up shorter than ``_MIN_PREDICTED_TUNE``,
    whose unadapted iterations can cost far more. It decides whether a fit
    is short enough that compile time is worth more than run time
    (:func:`bayeslmm.sampling.xla.options_for`), not which plan wins.
    O(number of factors) when every factor is marginalized, else O(N p^2)
    (the moment estimates of :func:`level_information`).
    """
    if tune < _MIN_PREDICTED_TUNE:
        return None
    marg = plan.marginalized
    grad = laplace_grad_seconds(design, marg) if plan.approximation else grad_seconds(design, marg)
    factor = grads_per_draw_factor(design, marg) if plan.sampled else 1.0
    return float((tune + draws) * _STEPS_PER_ITERATION * factor * grad)


# Below these median counts (trials per level and per effect of the factor for bernoulli/binomial, rows
# per level for counts) the Laplace error is large. Against 100-node quadrature (docs/marginalization.md) bernoulli
# with 5-10 trials per level is about 0.011 nats per level too low and still 0.0085 at 20; in posterior
# terms one intercept with 20 bernoulli trials per level is within 0.05 posterior SDs of exact HMC, but
# an intercept and a slope sharing 20 trials per level (10 per effect) pull the slope SD down by 0.3-0.6
# posterior SDs (docs/benchmarks.md, sim_bernoulli). Counts are near-Gaussian sooner: poisson with 5
# rows per level is within 0.12 posterior SDs; no slope has been measured for them, so their threshold
# is per level.
_LAPLACE_MIN_TRIALS_PER_EFFECT = 20
_LAPLACE_MIN_COUNTS_PER_LEVEL = 10


def laplace_accuracy_warning(design, plan) -> str | None:
    """The warning text when a Laplace plan integrates out factors with few observations per level, else None.

    A factor with d effects is flagged when the median over its levels of
    the trials (bernoulli: rows; binomial: the sum of the trials) falls
    below 20 d, or for counts the median of the rows below 10 (the
    thresholds and their measurements: docs/marginalization.md). Gaussian
    families are exact and never flagged. Cost O(N) per factor.
    """
    if plan.approximation != "laplace" or design.family.gaussian:
        return None
    fam = design.family.name
    trials = fam in ("bernoulli", "binomial")
    few = []
    for name in plan.marginalized:
        b = design.block(name)
        if fam == "binomial":
            counts, what = np.bincount(b.group_index, weights=design.trials, minlength=b.n_levels), "trials"
        else:
            counts = np.bincount(b.group_index, minlength=b.n_levels)
            what = "trials" if fam == "bernoulli" else "observations"
        med = float(np.median(counts))
        if med < (_LAPLACE_MIN_TRIALS_PER_EFFECT * b.dim if trials else _LAPLACE_MIN_COUNTS_PER_LEVEL):
            effects = f", {b.dim} effects" if trials and b.dim > 1 else ""
            few.append(f"{name!r} (median {med:g} {what} per level{effects})")
    if not few:
        return None
    rule = (f"{_LAPLACE_MIN_TRIALS_PER_EFFECT} trials per level and effect" if trials
            else f"{_LAPLACE_MIN_COUNTS_PER_LEVEL} observations per level")
    return (f"approximation='laplace' integrates out {', '.join(few)}: with fewer than {rule} the Laplace "
            f"approximation of the {fam} likelihood is biased (measured for bernoulli: about 0.01 nats per level "
            "too low at 5-20 trials per level, and the error varies with the parameters), which pulls the "
            "group-level SDs down. Check the estimates against marginalize='none' (exact, every effect "
            "sampled); docs/marginalization.md has the measured error.")


def _auto_laplace(design) -> tuple[tuple[str, ...], str]:
    """Cheapest of "none" (exact, every effect sampled) and every Laplace plan.

    Gradients per effective draw come from :func:`grads_per_draw_factor`, whose
    level information is measured on the response scale (a linear proxy for
    a non-Gaussian family's information per level).
    """
    names = [b.name for b in design.blocks]
    if not names:
        return (), "no group-level terms"
    info = level_information(design)
    options = [()] + [c for k in range(1, len(names) + 1) for c in combinations(names, k)]
    secs = {opt: laplace_grad_seconds(design, opt) if opt else grad_seconds(design, ()) for opt in options}
    costs = {opt: secs[opt] * grads_per_draw_factor(design, opt, info) for opt in options}
    best = min(options, key=costs.get)
    reason = (f"auto (laplace): predicted {costs[()] / costs[best]:.2g}x the effective draws per second of no "
              f"marginalization ({secs[best] * 1e3:.2g} ms per gradient)")
    return tuple(n for n in names if n in best), reason


def _check_laplace(design):
    """Raise ValueError where approximation="laplace" cannot apply (before anything compiles)."""
    name = design.family.name
    if name == "student":
        raise ValueError(
            "approximation='laplace' cannot be used with family='student': the Laplace approximation finds the "
            "mode of the effects by Newton's method, which needs a likelihood that is log-concave in the linear "
            "predictor, and the Student-t likelihood is not (its curvature turns negative for outlying rows, so "
            "the mode may not be unique and the Hessian not positive definite). Use marginalize='none' (every "
            "effect sampled, exact)."
        )
    if name not in _LAPLACE_FAMILIES:
        raise ValueError(f"approximation='laplace' has no form for family={name!r}; it covers "
                         f"{', '.join(_LAPLACE_FAMILIES)}.")
    if design.weights is not None:
        raise ValueError("approximation='laplace' does not take weights yet (the Laplace density has no per-row "
                         "weights); use marginalize='none'.")
    if design.X is None:
        raise ValueError("approximation='laplace' needs the rows of the data; a design summarised by sufficient "
                         "statistics (a Dask frame) is integrated exactly: use approximation=None.")


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
    some scale unless ``approximation="laplace"``.

    ``approximation``: None (exact integration, Gaussian families only) or
    ``"laplace"`` (the Laplace approximation at the conditional mode, for
    gaussian, lognormal, bernoulli, binomial, poisson and negbinomial; not
    student, whose likelihood is not log-concave). With "laplace", "auto"
    chooses among "none" and the Laplace plans by
    :func:`laplace_grad_seconds` x :func:`grads_per_draw_factor`. A plan
    that marginalizes nothing carries no approximation.
    """
    if not (approximation is None or (isinstance(approximation, str) and approximation in APPROXIMATIONS)):
        raise ValueError(
            f"approximation={approximation!r} is not an option: use None (exact integration, Gaussian "
            "families) or 'laplace' (Laplace approximation at the conditional mode of the effects)."
        )
    if approximation == "laplace":
        _check_laplace(design)
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
    elif chosen == ["auto"] and approximation == "laplace":
        marg, reason = _auto_laplace(design)
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
    if marg and not design.family.gaussian and approximation is None:
        raise ValueError(
            f"marginalize={marginalize!r} cannot be used with family={design.family.name!r}: exact integration "
            "of the group-level effects needs a likelihood that is Gaussian in them (gaussian, lognormal), and "
            f"the {design.family.name} likelihood is not, so the integral has no closed form. Use "
            "marginalize='none' (every effect sampled, exact) or marginalize='auto', or integrate them out "
            f"approximately with approximation='laplace' (fit(marginalize={marginalize!r}, "
            "approximation='laplace'))."
        )
    if not names and marg:
        raise ValueError("The formula has no group-level terms to marginalize; use marginalize='none'.")
    sampled = tuple(n for n in names if n not in marg)
    return MarginalizationPlan(marg, sampled, marginalize, reason, approximation if marg else None)
