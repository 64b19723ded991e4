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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FormulaSpec", "RandomTerm", "parse_formula"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
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

    @property
    def factor_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.random:
            seen.setdefault(t.factor_name)
        return tuple(seen)


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
            if not _NAME.match(c):
                raise ValueError(
                    f"Malformed formula {formula!r}: grouping factor {rhs!r} must be column names "
                    "joined by ':' or '/' (got {c!r})."
                )
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
    _check_balanced(formula, formula)
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not lhs:
        raise ValueError(f"Malformed formula {formula!r}: no response on the left of '~'.")
    if not rhs:
        raise ValueError(f"Malformed formula {formula!r}: nothing on the right of '~'.")
    for r_name, fm_name in _R_CONTRASTS.items():
        rhs = rhs.replace(r_name, fm_name)

    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    for chunk in _split_top(rhs, "+"):
        if not chunk.strip():
            raise ValueError(f"Malformed formula {formula!r}: empty term between '+' signs.")
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
    return FormulaSpec(formula=formula, response=lhs, fixed=fixed, random=tuple(random))
