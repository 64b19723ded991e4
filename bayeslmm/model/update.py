"""``update_formula``: R's ``update.formula`` dot syntax for refits (brms ``update``).

``". ~ . + x"`` keeps the response and every term and adds ``x``;
``". ~ . - (1 | item)"`` drops a term; ``"log(y) ~ ."`` swaps the
response. Terms are the top-level ``+`` pieces of the right-hand side (a
random term in parentheses is one piece), compared with spaces removed.
A formula without dots replaces the old one as it is.
"""

from __future__ import annotations

__all__ = ["update_formula"]


def _split_top(text: str, seps: str) -> list[tuple[str, str]]:
    """(sign, piece) at paren depth 0, splitting on the characters of ``seps``; the first piece signed '+'."""
    out, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch in seps and depth == 0:
            out.append((sign, text[start:i].strip()))
            sign, start = ch, i + 1
    out.append((sign, text[start:].strip()))
    return [(s, p) for s, p in out if p]


def _key(term: str) -> str:
    return "".join(term.split())


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with ``.`` read as the corresponding side of ``old``.

    Raises ``ValueError`` if either is not a two-sided formula, or if ``new``
    removes a term that ``old`` does not have (naming the term and the
    terms there are). Cost O(len(old) + len(new)).
    """
    if not isinstance(new, str):
        raise TypeError(f"formula must be a string, got {type(new).__name__}: {new!r}.")
    for name, f in (("old", old), ("new", new)):
        if not isinstance(f, str) or f.count("~") != 1 or not f.split("~")[0].strip():
            raise ValueError(f"update needs a two-sided formula 'y ~ terms' (or '. ~ . + x'); the {name} "
                             f"formula is {f!r}.")
    old_lhs, old_rhs = (s.strip() for s in old.split("~"))
    new_lhs, new_rhs = (s.strip() for s in new.split("~"))
    lhs = old_lhs if new_lhs == "." else new_lhs
    pieces = _split_top(new_rhs, "+-")
    if not pieces or pieces[0] != ("+", "."):
        if any(p == "." for _, p in pieces):
            raise ValueError(f"'.' must come first on the right-hand side, as in '. ~ . + x'; got {new!r}.")
        return f"{lhs} ~ {new_rhs}"
    terms = [p for _, p in _split_top(old_rhs, "+")]
    for sign, piece in pieces[1:]:
        keys = [_key(t) for t in terms]
        if sign == "+":
            if _key(piece) not in keys:
                terms.append(piece)
        elif _key(piece) in ("1", "Intercept"):
            terms = [t for t in terms if _key(t) not in ("1", "0")] + ["0"]
        elif _key(piece) in keys:
            del terms[keys.index(_key(piece))]
        else:
            raise ValueError(f"update: cannot remove {piece!r}, which {old!r} does not have; its terms are "
                             f"{terms}.")
    if terms == ["0"] or not terms:
        terms = ["1"] if not terms else terms
    return f"{lhs} ~ {' + '.join(terms)}"
