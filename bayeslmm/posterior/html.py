"""Notebook (Jupyter) HTML for models and fits, readable on light and dark themes.

No colour or background is set anywhere: text, borders and table stripes
inherit the notebook theme's (``color: inherit``, transparent backgrounds),
so JupyterLab's light and dark themes both render it with their own palette.
Every table is a pandas DataFrame rendered with ``DataFrame.to_html``.
"""

from __future__ import annotations

from html import escape

__all__ = ["facts_html", "section_html", "wrap_html"]

_STYLE = ("color: inherit; background: transparent; font-family: inherit; line-height: 1.4;")


def facts_html(title: str, facts: list[tuple[str, str]]) -> str:
    """A bold title and a two-column list of (label, value), both escaped."""
    rows = "".join(f"<tr><th style='text-align:left; padding-right:1em; color: inherit; background: transparent'>"
                   f"{escape(k)}</th><td style='text-align:left; color: inherit; background: transparent'>"
                   f"{escape(v)}</td></tr>" for k, v in facts)
    return f"<div><strong>{escape(title)}</strong></div><table style='{_STYLE} border: none'>{rows}</table>"


def section_html(title: str, df, float_format=None) -> str:
    """A section heading and a DataFrame table."""
    return f"<h4 style='{_STYLE}'>{escape(title)}</h4>" + df.to_html(float_format=float_format, border=0)


def wrap_html(parts: list[str], kind: str) -> str:
    """The parts in one ``<div class="bayeslmm-<kind>">`` with inherited colours."""
    return f"<div class='bayeslmm-{kind}' style='{_STYLE}'>" + "\n".join(parts) + "</div>"
