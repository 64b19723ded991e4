"""Priors: data-scaled defaults, user overrides, and a table of every prior in use.

Defaults (weakly informative, scaled by the data like rstanarm's autoscaling;
``s_y`` and ``m_y`` are the SD and mean of the response on the model scale,
``s_x`` the SD of a predictor column):

========== =========================================== =======================================
class       default                                     why
========== =========================================== =======================================
Intercept   student_t(3, m_y, 2.5 s_y)                  on centred predictors, as brms does, so
                                                        it is the mean response, not an
                                                        extrapolation to x = 0
b           normal(0, 2.5 s_y / s_x)                    rstanarm: a 1-SD change in x moves y by
                                                        at most a few SDs of y
sd          half_student_t(3, s_y / s_x)                brms-like heavy tail; slopes' SDs in
                                                        the units of y per unit of x
cor         lkj(2)                                      mildly keeps correlations off +-1, where
                                                        singular lme4 fits put them
sigma       half_student_t(3, s_y)                      brms-like
nu          gamma(2, 0.1)                               brms (student); not truncated at 1
shape       gamma(0.01, 0.01)                           brms (negbinomial)
========== =========================================== =======================================

For families that are not Gaussian on some scale (bernoulli, binomial,
poisson, negbinomial) the scales are on the link scale, as in brms:
Intercept student_t(3, m, 2.5) with m = 0 for bernoulli/binomial and
log(mean y) for counts, b normal(0, 2.5 / s_x) (brms has a flat prior; a
proper one keeps prior predictive checks possible), sd half_student_t(3,
2.5 / s_x). ``student`` uses the Gaussian table.

Overrides are :class:`Prior` objects, by class, by group (sd, cor) and by
coefficient (b, sd); the most specific one wins. A prior that targets nothing
in the model, or that the model cannot honour, raises ``ValueError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Prior", "ResolvedPrior", "resolve_priors", "prior_table", "parse_dist"]

CLASSES = ("Intercept", "b", "sd", "cor", "sigma", "shape", "nu")
# name -> number of arguments
_DISTS = {
    "normal": 2, "student_t": 3, "cauchy": 2, "exponential": 1, "gamma": 2, "lkj": 1,
    "half_normal": 1, "half_student_t": 2, "half_cauchy": 1, "flat": 0, "lognormal": 2,
}
_POSITIVE = ("sd", "sigma", "shape", "nu")
_HALF_OF = {"normal": "half_normal", "student_t": "half_student_t", "cauchy": "half_cauchy"}


def whole_of(dist: str, args: tuple):
    """``(family, args)`` of the symmetric prior whose half is ``dist``, or None for other families.

    The inverse of the half versions that location-0 priors on SDs become
    (:func:`_honour`): ``half_student_t(nu, s)`` -> ``student_t(nu, 0, s)``,
    ``half_normal(s)`` -> ``normal(0, s)``, ``half_cauchy(s)`` -> ``cauchy(0, s)``.
    """
    whole = next((w for w, half in _HALF_OF.items() if half == dist), None)
    if whole is None:
        return None
    return whole, ((args[0], 0.0, args[1]) if whole == "student_t" else (0.0, args[0]))


def parse_dist(text: str) -> tuple[str, tuple[float, ...]]:
    """``"normal(0, 2.5)"`` -> ``("normal", (0.0, 2.5))``."""
    m = re.fullmatch(r"\s*([A-Za-z_]+)\s*\((.*)\)\s*", text or "")
    if not m:
        raise ValueError(f"Cannot parse prior {text!r}; write it like 'normal(0, 1)'.")
    name = m.group(1).lower()
    if name not in _DISTS:
        raise ValueError(f"Unknown prior distribution {name!r}; supported: {', '.join(_DISTS)}.")
    try:
        args = tuple(float(a) for a in m.group(2).split(",") if a.strip())
    except ValueError:
        raise ValueError(f"Prior {text!r} must have numeric arguments.") from None
    if len(args) != _DISTS[name]:
        raise ValueError(f"Prior {name} takes {_DISTS[name]} argument(s), got {len(args)} in {text!r}.")
    if not all(np.isfinite(args)):
        raise ValueError(f"Prior {text!r} has a non-finite argument; every argument must be finite.")
    # Scales, rates, shapes and degrees of freedom are positive; locations may be anything.
    positive = {"normal": (1,), "student_t": (0, 2), "cauchy": (1,), "exponential": (0,), "gamma": (0, 1),
                "lkj": (0,), "half_normal": (0,), "half_student_t": (0, 1), "half_cauchy": (0,),
                "lognormal": (1,)}[name] if name != "flat" else ()
    bad = [i for i in positive if args[i] <= 0]
    if bad:
        raise ValueError(f"Prior {text!r}: argument {bad[0] + 1} ({args[bad[0]]!r}) must be positive.")
    return name, args


@dataclass(frozen=True)
class Prior:
    """A user prior, as in brms ``prior(normal(0, 1), class = b, coef = x)``.

    Parameters
    ----------
    dist : str
        "normal(mu, sigma)", "student_t(nu, mu, sigma)", "cauchy(mu, sigma)",
        "exponential(rate)", "gamma(alpha, beta)", "lognormal(mu, sigma)",
        "half_normal(sigma)", "half_student_t(nu, sigma)", "half_cauchy(sigma)",
        "lkj(eta)" (class cor only), "flat()" (Intercept and b only).
        For sd and sigma, normal/student_t/cauchy with location 0 mean their
        half versions, as in brms.
    cls : {"Intercept", "b", "sd", "cor", "sigma"}
    coef : str, optional
        A fixed-effect column name (class b) or effect name (class sd).
    group : str, optional
        A grouping factor as written in the formula (classes sd and cor).
    """

    dist: str
    cls: str = "b"
    coef: str | None = None
    group: str | None = None

    def __post_init__(self):
        if not isinstance(self.dist, str):
            raise TypeError(f"Prior dist must be a string like 'normal(0, 1)', got {self.dist!r} "
                            f"({type(self.dist).__name__}).")
        if self.cls not in CLASSES:
            raise ValueError(f"Unknown prior class {self.cls!r}; classes are {', '.join(CLASSES)}.")
        parse_dist(self.dist)


@dataclass(frozen=True)
class ResolvedPrior:
    """The prior of one parameter (or one LKJ block), ready for the builder."""

    cls: str
    group: str | None
    coef: str | None
    dist: str
    args: tuple
    source: str  # "default" or "user"

    @property
    def text(self) -> str:
        return f"{self.dist}({', '.join(f'{a:.4g}' for a in self.args)})"


def _honour(p: Prior) -> tuple[str, tuple]:
    """Check that ``p`` makes sense for its class; map location-0 priors on SDs to half versions."""
    name, args = parse_dist(p.dist)
    if p.cls == "cor":
        if name != "lkj":
            raise ValueError(f"Class 'cor' takes an lkj(eta) prior, got {p.dist!r}.")
        if args[0] <= 0:
            raise ValueError(f"lkj eta must be positive, got {args[0]}.")
        return name, args
    if name == "lkj":
        raise ValueError(f"lkj() is a prior for class 'cor', not {p.cls!r}.")
    if p.cls in _POSITIVE:
        if name in _HALF_OF:
            loc = args[0] if name != "student_t" else args[1]
            if loc != 0:
                raise ValueError(
                    f"Prior {p.dist!r} on class {p.cls!r}: an SD prior must have location 0 "
                    "(it is truncated at 0, as in brms)."
                )
            name, args = _HALF_OF[name], (args if name != "student_t" else (args[0], args[2]))
            if name == "half_normal" or name == "half_cauchy":
                args = args[-1:]
        elif name == "flat":
            raise ValueError(f"flat() is not a proper prior for class {p.cls!r}.")
    elif name.startswith("half_") or name in ("exponential", "gamma", "lognormal"):
        raise ValueError(f"Prior {p.dist!r} is for positive parameters; class {p.cls!r} can be negative.")
    return name, args


def _targets(design):
    """Every prior slot of the model as (cls, group, coef)."""
    out = []
    if design.has_intercept:
        out.append(("Intercept", None, None))
    out += [("b", None, c) for c in design.fixed_names if c != "Intercept"]
    for blk in design.blocks:
        out += [("sd", blk.name, t) for t in blk.terms]
        if blk.correlated:
            out.append(("cor", blk.name, None))
    out += [(a, None, None) for a in design.family.aux]
    return out


def _link_scale(design) -> tuple[float, float]:
    """(m_y, s_y) of the default priors: the response's on the Gaussian scale, brms's on a link scale."""
    fam = design.family
    if fam.counts and not fam.trials:
        m = float(np.mean(design.y_original))
        return (float(np.log(m)) if m > 0 else 0.0), 1.0
    return 0.0, 1.0


def _defaults(design) -> dict:
    mom = design.moments()
    gaussian_scale = design.family.name in ("gaussian", "lognormal", "student")
    m_y, s_y = (mom.y_mean, mom.y_sd or 1.0) if gaussian_scale else _link_scale(design)
    x_sd = {c: float(mom.x_sd[i]) for i, c in enumerate(design.fixed_names)}
    out = {}
    for cls, group, coef in _targets(design):
        if cls == "Intercept":
            out[(cls, group, coef)] = ("student_t", (3.0, m_y, 2.5 * s_y))
        elif cls == "b":
            out[(cls, group, coef)] = ("normal", (0.0, 2.5 * s_y / (x_sd[coef] or 1.0)))
        elif cls == "sd":
            blk = design.block(group)
            s_x = float(mom.z_sd[group][blk.terms.index(coef)]) if coef != "Intercept" else 0.0
            sd_scale = s_y if gaussian_scale else 2.5
            out[(cls, group, coef)] = ("half_student_t", (3.0, sd_scale / (s_x or 1.0)))
        elif cls == "cor":
            out[(cls, group, coef)] = ("lkj", (2.0,))
        elif cls == "nu":
            out[(cls, group, coef)] = ("gamma", (2.0, 0.1))
        elif cls == "shape":
            out[(cls, group, coef)] = ("gamma", (0.01, 0.01))
        else:
            out[(cls, group, coef)] = ("half_student_t", (3.0, s_y))
    return out


def _specificity(p: Prior) -> int:
    return (p.group is not None) + 2 * (p.coef is not None)


def resolve_priors(design, priors=None) -> list[ResolvedPrior]:
    """Combine defaults with user priors; the most specific user prior wins.

    Raises ``ValueError`` for a user prior that matches no parameter (listing
    the valid targets) or that the model cannot honour.
    """
    if priors is None:
        priors = []
    elif isinstance(priors, Prior):
        priors = [priors]
    priors = list(priors)
    for p in priors:
        if not isinstance(p, Prior):
            raise TypeError(f"priors must be bayeslmm.Prior objects, got {type(p).__name__}.")
    seen = {}
    for p in priors:
        key = (p.cls, p.coef, p.group)
        if key in seen:
            raise ValueError(f"Duplicated prior specification for class={p.cls!r}, coef={p.coef!r}, group={p.group!r}: "
                             f"{seen[key].dist!r} and {p.dist!r}; give one prior per target.")
        seen[key] = p
    targets = _targets(design)
    chosen = {t: (*d, "default") for t, d in _defaults(design).items()}
    best = {}
    for p in sorted(priors, key=_specificity):
        name, args = _honour(p)
        matched = [t for t in targets if t[0] == p.cls
                   and (p.group is None or t[1] == p.group)
                   and (p.coef is None or t[2] == p.coef)]
        if not matched:
            valid = sorted({f"class={c!r}" + (f", group={g!r}" if g else "") + (f", coef={k!r}" if k else "")
                            for c, g, k in targets if c == p.cls}) or [f"no {p.cls!r} parameters in this model"]
            raise ValueError(f"Prior {p} matches no parameter of the model. Valid targets: {'; '.join(valid)}.")
        for t in matched:
            if best.get(t, -1) <= _specificity(p):
                best[t] = _specificity(p)
                chosen[t] = (name, args, "user")
    resolved = [ResolvedPrior(c, g, k, *chosen[(c, g, k)]) for c, g, k in targets]
    _check_lkj_blocks(design, resolved)
    return resolved


def _check_lkj_blocks(design, resolved) -> None:
    """SDs in one correlated block are drawn jointly with the LKJ factor: one family per block."""
    by = {(r.group, r.coef): r for r in resolved if r.cls == "sd"}
    for blk in design.blocks:
        for grp in blk.corr_groups:
            fams = {by[(blk.name, blk.terms[i])].dist for i in grp}
            if len(grp) > 1 and len(fams) > 1:
                raise ValueError(
                    f"The correlated effects {[blk.terms[i] for i in grp]} of {blk.name!r} have SD priors of "
                    f"different families {sorted(fams)}; within one correlated block they must share a family "
                    "(their scales may differ)."
                )


def prior_table(resolved) -> pd.DataFrame:
    """Every prior in use, like brms ``get_prior``: prior, class, coef, group, source."""
    return pd.DataFrame(
        [{"prior": r.text, "class": r.cls, "coef": r.coef or "", "group": r.group or "", "source": r.source}
         for r in resolved]
    )
