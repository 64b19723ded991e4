"""Parse lme4/brms mixed-model formulas into a :class:`FormulaSpec`.

formulae parses the fixed part and each random term's left-hand side, but it
knows neither ``||`` nor ``/`` in grouping factors, and it builds dense
group-specific design matrices. So the random terms are split off here, at the
string level, and only plain fixed-effects sub-formulas go to formulae.

Supported random-term syntax (lme4 semantics):

- ``(x | g)``      intercept and slope for ``g``, correlated
- ``(x || g)``     the same, uncorrelated (every column on its own)
- ``(0 + x | g)``, ``(x - 1 | g)``  no intercept
- ``(1 | a/b)``    nested: ``(1 | a) + (1 | a:b)``
- ``(1 | a:b)``    interaction of factors as one grouping factor

Response-side and offset syntax:

- ``cbind(s, f) ~``        binomial successes and failures (lme4)
- ``s | trials(n) ~``      binomial successes out of n trials (brms)
- ``y | weights(w) ~``     weights (brms; several terms join with ``+``)
- ``offset(expr)``         in the fixed part: added to the linear predictor
  with coefficient 1 (lme4/brms), not estimated
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FormulaSpec", "RandomTerm", "parse_formula", "QUOTED", "unquote"]

# Column names as formulae reads them unquoted: Python identifiers (any script) and dots.
_NAME = re.compile(r"^(?:[^\W\d]|\.)[\w.]*$")
# formulae's quoting of other names: `my col`.
QUOTED = re.compile(r"`([^`]*)`")
# Characters this module splits formulas on; inside a quoted name they would split it.
_UNQUOTABLE = set("~|()+{}[]")
# R users write contrasts as contr.sum; formulae calls them Sum/Treatment.
_R_CONTRASTS = {"contr.sum": "Sum", "contr.treatment": "Treatment"}


@dataclass(frozen=True)
class RandomTerm:
    """One ``(expr | factor)`` term after expansion of ``||`` and ``/``.

    ``expr`` is a formulae right-hand side ("1 + x", "0 + x"); ``factor`` a
    tuple of column names whose interaction defines the groups;
    ``correlated`` is False for terms that came from ``||``.
    """

    expr: str
    factor: tuple[str, ...]
    correlated: bool

    @property
    def factor_name(self) -> str:
        return ":".join(self.factor)


@dataclass(frozen=True)
class FormulaSpec:
    """A formula split into response, fixed part and random terms."""

    formula: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    trials: str | None = None  # expression for the number of trials (binomial)
    weights: str | None = None  # expression for the weights
    offsets: tuple[str, ...] = ()  # expressions added to the linear predictor
    failures: str | None = None  # cbind()'s second argument

    @property
    def factor_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.random:
            seen.setdefault(t.factor_name)
        return tuple(seen)


def unquote(name: str) -> str:
    """```my col``` -> ``my col``; any other text unchanged."""
    m = QUOTED.fullmatch(name.strip())
    return m.group(1) if m else name


def _check_quoting(formula: str) -> None:
    if formula.count("`") % 2:
        raise ValueError(f"Malformed formula {formula!r}: unmatched backtick; quote a column name as `my col`.")
    for name in QUOTED.findall(formula):
        bad = sorted(set(name) & _UNQUOTABLE)
        if not name.strip() or bad:
            raise ValueError(f"Malformed formula {formula!r}: the quoted column name `{name}` "
                             + (f"contains {' '.join(bad)}, which formulas split on; rename the column."
                                if bad else "is empty."))


def _check_balanced(s: str, formula: str) -> None:
    depth = 0
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            break
    if depth != 0:
        raise ValueError(f"Malformed formula {formula!r}: unbalanced parentheses.")


def _split_top(s: str, sep: str) -> list[str]:
    """Split ``s`` on ``sep`` where it is outside parentheses and braces."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _outer_parens(chunk: str) -> str | None:
    """Return the inside of ``chunk`` if one pair of parentheses wraps all of it."""
    c = chunk.strip()
    if not (c.startswith("(") and c.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(c):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(c) - 1:
            return None
    return c[1:-1]


def _bar_split(inner: str) -> tuple[str, str, bool] | None:
    """Split ``expr | factor`` / ``expr || factor`` at top level, if present."""
    depth = 0
    for i, ch in enumerate(inner):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            double = inner[i + 1 : i + 2] == "|"
            rhs = inner[i + (2 if double else 1) :]
            return inner[:i], rhs, not double
    return None


def _expand_factor(rhs: str, formula: str) -> list[tuple[str, ...]]:
    """``a/b/c`` -> [(a,), (a,b), (a,b,c)]; ``a:b`` -> [(a,b)]."""
    rhs = rhs.strip()
    if not rhs:
        raise ValueError(f"Malformed formula {formula!r}: a random term has no grouping factor after '|'.")
    nested = [p.strip() for p in rhs.split("/")]
    out, prefix = [], ()
    for part in nested:
        cols = tuple(c.strip() for c in part.split(":"))
        for c in cols:
            if not (_NAME.match(c) or QUOTED.fullmatch(c)):
                raise ValueError(
                    f"Malformed formula {formula!r}: grouping factor {rhs!r} must be column names "
                    f"joined by ':' or '/', a name that is not an identifier quoted as `my col` (got {c!r})."
                )
        cols = tuple(unquote(c) for c in cols)
        prefix = prefix + cols
        out.append(prefix)
    return out


def _split_uncorrelated(expr: str) -> list[str]:
    """``x + z`` under ``||`` -> ["1", "0 + x", "0 + z"] (lme4 semantics)."""
    terms = [t.strip() for t in _split_top(expr, "+") if t.strip()]
    has_intercept = True
    cols = []
    for t in terms:
        # "x - 1" arrives as one chunk
        sub = [s.strip() for s in t.split("-")]
        head, minus = sub[0], sub[1:]
        if "1" in minus:
            has_intercept = False
        if head in ("0", "-1"):
            has_intercept = False
        elif head == "1":
            pass
        elif head:
            cols.append(head)
    return (["1"] if has_intercept else []) + [f"0 + {c}" for c in cols]


_CALL = re.compile(r"^([A-Za-z_.][A-Za-z0-9_.]*)\s*\((.*)\)$", re.S)


def _call(chunk: str):
    """``name(args)`` -> (name, args) when the whole chunk is one call, else None."""
    m = _CALL.match(chunk.strip())
    if m is None or _outer_parens(chunk.strip()[len(m.group(1)):].strip()) is None:
        return None
    return m.group(1), m.group(2).strip()


def _response_side(lhs: str, formula: str):
    """Split the left-hand side into (response, trials, weights)."""
    trials = weights = None
    parts = _split_top(lhs, "|")
    if len(parts) > 2:
        raise ValueError(f"Malformed formula {formula!r}: more than one '|' on the left of '~'.")
    if len(parts) == 2:
        lhs = parts[0].strip()
        for term in _split_top(parts[1], "+"):
            c = _call(term)
            if c is None or c[0] not in ("trials", "weights") or not c[1]:
                raise ValueError(
                    f"Malformed formula {formula!r}: after '|' on the left of '~' expected trials(n) and/or "
                    f"weights(w), got {term.strip()!r}."
                )
            if c[0] == "trials":
                trials = c[1]
            else:
                weights = c[1]
        if not lhs:
            raise ValueError(f"Malformed formula {formula!r}: no response before '|' on the left of '~'.")
    c = _call(lhs)
    if c is not None and c[0] == "cbind":
        args = [a.strip() for a in _split_top(c[1], ",")]
        if len(args) != 2 or not all(args):
            raise ValueError(
                f"Malformed formula {formula!r}: cbind() takes two arguments, successes and failures; got {lhs!r}."
            )
        if trials is not None:
            raise ValueError(f"Malformed formula {formula!r}: give the trials by cbind() or by trials(), not both.")
        lhs, trials = args[0], f"({args[0]}) + ({args[1]})"
    return lhs, trials, weights, (args[1] if c is not None and c[0] == "cbind" else None)


def parse_formula(formula: str) -> FormulaSpec:
    """Split an lme4-style formula into response, fixed part and random terms.

    Parameters
    ----------
    formula : str
        For example ``"log(rt) ~ cond + (cond | subj) + (1 | item)"``.

    Returns
    -------
    FormulaSpec
        ``fixed`` is a formulae right-hand side ("1" when only random terms
        are given); each random term is expanded (``||`` to one term per
        column, ``a/b`` to ``a`` and ``a:b``).

    Raises
    ------
    ValueError
        If the formula has no ``~``, no response, unbalanced parentheses or a
        random term without a grouping factor.
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}.")
    if formula.count("~") != 1:
        raise ValueError(f"Malformed formula {formula!r}: it needs exactly one '~' between response and predictors.")
    _check_quoting(formula)
    _check_balanced(formula, formula)
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not lhs:
        raise ValueError(f"Malformed formula {formula!r}: no response on the left of '~'.")
    lhs, trials, weights, failures = _response_side(lhs, formula)
    if not rhs:
        raise ValueError(f"Malformed formula {formula!r}: nothing on the right of '~'.")
    for r_name, fm_name in _R_CONTRASTS.items():
        rhs = rhs.replace(r_name, fm_name)

    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    for chunk in _split_top(rhs, "+"):
        if not chunk.strip():
            raise ValueError(f"Malformed formula {formula!r}: empty term between '+' signs.")
        call = _call(chunk)
        if call is not None and call[0] == "offset":
            if not call[1]:
                raise ValueError(f"Malformed formula {formula!r}: offset() needs an expression.")
            offsets.append(call[1])
            continue
        inner = _outer_parens(chunk)
        bar = _bar_split(inner) if inner is not None else None
        if bar is None:
            if "|" in chunk:
                raise ValueError(
                    f"Malformed formula {formula!r}: random term {chunk.strip()!r} must be wrapped in "
                    "parentheses, like (1 | g)."
                )
            fixed_parts.append(chunk.strip())
            continue
        expr, factor_rhs, correlated = bar
        expr = expr.strip()
        if not expr:
            raise ValueError(f"Malformed formula {formula!r}: random term {chunk.strip()!r} has nothing before '|'.")
        exprs = [expr] if correlated else _split_uncorrelated(expr)
        for factor in _expand_factor(factor_rhs, formula):
            for e in exprs:
                random.append(RandomTerm(expr=e, factor=factor, correlated=correlated))

    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    return FormulaSpec(formula=formula, response=lhs, fixed=fixed, random=tuple(random),
                       trials=trials, weights=weights, offsets=tuple(offsets), failures=failures)
