"""Hypothesis tests on the parameters, as brms ``hypothesis``.

A hypothesis is ``"left <sign> right"`` with one sign ``=``, ``<`` or ``>``;
it is rewritten as ``(left) - (right) <sign> 0`` and the expression is
evaluated on every posterior draw. Parameter names are brms's, prefixed by
``class_`` (and ``group``): with ``class_="b"`` (the default) ``cond[b]``
means ``b_cond[b]`` (the fixed effect; brms's spelling ``condb`` also
works when it is unambiguous); ``class_="sd", group="subj"`` makes
``Intercept`` mean ``sd_subj__Intercept``; ``class_=None`` takes full
names (``sd_subj__Intercept``, ``cor_subj__Intercept__cond``, ``sigma``).
Expressions may use ``+ - * / ^ **``, numbers, parentheses and ``exp``,
``log``, ``log1p``, ``expm1``, ``sqrt``, ``abs``, ``inv_logit``.

The columns are brms's:

- Estimate, Est.Error: mean and SD of the draws (median and MAD with ``robust=True``);
- CI.Lower, CI.Upper: equal-tailed ``1 - alpha`` interval for ``=``; for
  ``>`` the ``alpha`` quantile and +inf, for ``<`` -inf and the ``1 - alpha``
  quantile (one-sided);
- Evid.Ratio: for ``>`` / ``<``, P(H) / P(not H) from the share of draws on
  each side of 0; for ``=``, the Savage-Dickey density ratio
  p(0 | y) / p(0), the posterior density of the expression at 0 over its
  prior density at 0 (a Bayes factor for the point hypothesis), which needs
  the prior draws kept by ``fit(sample_prior=True)``. Densities are Gaussian
  kernel estimates (``scipy.stats.gaussian_kde``) with R's ``bw.nrd0``
  bandwidth, the default of the ``density()`` that brms calls;
  When 0 lies outside the range of the posterior or of the prior draws
  of the expression, the estimate there is the kernels' tail, an
  extrapolation (a Bayes factor driven by the bandwidth): the value is
  still returned, with one warning naming those hypotheses;
- Post.Prob: P(H) for one-sided hypotheses, Evid.Ratio / (1 + Evid.Ratio)
  for point ones (equal prior odds);
- Star: ``"*"`` when 0 is outside [CI.Lower, CI.Upper].
"""

from __future__ import annotations

import ast
import re
import warnings

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import gaussian_kde

from bayeslmm.model.checks import check_bool, check_probability

from .recover import stack_draws

__all__ = ["hypothesis", "parameter_draws", "density_at", "bw_nrd0"]

FUNCTIONS = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs,
             "inv_logit": expit}
_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
_IDCHAR = re.compile(r"[A-Za-z0-9_.]")


def parameter_draws(design, ds) -> dict:
    """brms name -> flat draws (chain-major) of every parameter in ``ds`` (a posterior or prior Dataset)."""
    out = {}
    if design.fixed_names and "fixef" in ds:
        fe = stack_draws(ds["fixef"])
        terms = list(np.asarray(ds["fixef"]["fixef_term"]))
        for t in design.fixed_names:
            out[f"b_{t}"] = fe[:, terms.index(t)]
    for blk in design.blocks:
        sd = f"sd_{blk.name}"
        if sd in ds:
            a = stack_draws(ds[sd])
            effects = list(np.asarray(ds[sd][f"{blk.name}__effect"]))
            for t in blk.terms:
                out[f"sd_{blk.name}__{t}"] = a[:, effects.index(t)]
        cor = f"cor_{blk.name}"
        if cor in ds:
            a = stack_draws(ds[cor])
            for grp in blk.corr_groups:
                for i in range(len(grp)):
                    for j in range(i + 1, len(grp)):
                        ta, tb = blk.terms[grp[i]], blk.terms[grp[j]]
                        out[f"cor_{blk.name}__{ta}__{tb}"] = a[:, grp[i], grp[j]]
    for a in design.family.aux:
        if a in ds:
            out[a] = stack_draws(ds[a]).reshape(-1)
    return out


def _strip(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _class_names(names, class_, group) -> dict:
    """Name as written in a hypothesis (whitespace removed) -> full parameter name, for one class."""
    if class_ is None or class_ == "":
        prefix = ""
    else:
        prefix = f"{class_}_" + (f"{group}__" if group else "")
    out = {}
    for full in names:
        if full.startswith(prefix):
            out[_strip(full[len(prefix):])] = full
    # brms spells factor levels without brackets (condb for cond[b]); keep an alias when it is unambiguous
    aliases = {}
    for short, full in out.items():
        alias = short.replace("[", "").replace("]", "")
        if alias != short and alias not in out:
            aliases.setdefault(alias, []).append(full)
    out.update({a: f[0] for a, f in aliases.items() if len(f) == 1})
    return out


def _substitute(expr: str, names: dict) -> tuple[str, dict]:
    """Replace each parameter name by a placeholder identifier, longest match first, at identifier boundaries."""
    by_length = sorted(names, key=len, reverse=True)
    out, used, i = [], {}, 0
    while i < len(expr):
        match = None
        if i == 0 or not _IDCHAR.match(expr[i - 1]):
            for n in by_length:
                end = i + len(n)
                if expr.startswith(n, i) and (end == len(expr) or not _IDCHAR.match(expr[end])):
                    match = n
                    break
        if match is None:
            out.append(expr[i])
            i += 1
            continue
        key = used.setdefault(names[match], f"__p{len(used)}__")
        out.append(key)
        i += len(match)
    return "".join(out), {v: k for k, v in used.items()}


def _compile(expr: str, hyp: str, names: dict, class_, group):
    code, placeholders = _substitute(expr, names)
    code = code.replace("^", "**")
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        raise ValueError(f"hypothesis {hyp!r} is not a valid expression.") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in placeholders and node.id not in FUNCTIONS:
                what = f"class_={class_!r}" + (f", group={group!r}" if group else "")
                raise ValueError(f"hypothesis {hyp!r}: {node.id!r} is not a parameter ({what}); the parameters "
                                 f"are {sorted(names)}.")
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS) or node.keywords:
                raise ValueError(f"hypothesis {hyp!r}: only the functions {sorted(FUNCTIONS)} may be called.")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
                raise ValueError(f"hypothesis {hyp!r}: {node.value!r} is not a number.")
        elif not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load) + _OPS):
            raise ValueError(f"hypothesis {hyp!r}: {type(node).__name__} is not allowed in a hypothesis.")
    if not placeholders:
        raise ValueError(f"hypothesis {hyp!r} names no parameter; the parameters are {sorted(names)}.")
    return compile(tree, "<hypothesis>", "eval"), placeholders


def _evaluate(code, placeholders, draws: dict):
    env = {k: draws[v] for k, v in placeholders.items()}
    with np.errstate(all="ignore"):
        return np.asarray(eval(code, {"__builtins__": {}, **FUNCTIONS}, env), dtype=float)  # noqa: S307 (checked AST)


def _parse(h: str):
    if not isinstance(h, str):
        raise TypeError(f"a hypothesis must be a string such as 'cond[b] > 0', got {h!r}.")
    s = _strip(h)
    signs = re.findall(r"[=<>]", s)
    if len(signs) != 1:
        raise ValueError(f"hypothesis {h!r} must have the form 'left (= or < or >) right', with one sign.")
    lhs, rhs = s.split(signs[0])
    if not lhs or not rhs:
        raise ValueError(f"hypothesis {h!r} has an empty side.")
    expr = f"({lhs})" + (f"-({rhs})" if rhs != "0" else "")
    return expr, signs[0]


def bw_nrd0(x) -> float:
    """R's ``bw.nrd0``: 0.9 min(SD, IQR / 1.34) n^(-1/5), the default bandwidth of ``density()``."""
    x = np.asarray(x, dtype=float)
    sd = np.std(x, ddof=1)
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    lo = min(sd, iqr / 1.34)
    if not lo > 0:
        lo = sd or abs(x[0]) or 1.0
    return 0.9 * lo * x.size ** -0.2


def density_at(x, point: float = 0.0) -> float:
    """Gaussian kernel density estimate of draws ``x`` at ``point``, bandwidth :func:`bw_nrd0`. Cost O(len(x))."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan")
    kde = gaussian_kde(x, bw_method=bw_nrd0(x) / np.std(x, ddof=1))
    return float(kde(np.atleast_1d(point))[0])


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside the bayeslmm package."""
    import os
    import sys

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _outside(x, point=0.0) -> bool:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return x.size > 0 and not (x.min() <= point <= x.max())


def hypothesis(fit, hypothesis, class_="b", group=None, alpha=0.05, robust=False) -> pd.DataFrame:
    """brms ``hypothesis``: one row per hypothesis with Hypothesis, Estimate, Est.Error, CI.Lower, CI.Upper,
    Evid.Ratio, Post.Prob and Star (see the module docstring for each column).

    ``hypothesis`` is a string or a list of strings. A point hypothesis
    (``=``) needs prior draws (``fit(sample_prior=True)``) for its
    Evid.Ratio; without them Evid.Ratio and Post.Prob are NaN, with a
    warning, as brms; where 0 is outside the range of the posterior or
    prior draws (the kernel density there is an extrapolation) the ratio is
    returned with one warning naming those hypotheses. Raises ``ValueError`` for a malformed hypothesis or an
    unknown parameter, naming the parameters available.
    Cost: O(S) per parameter and hypothesis, plus O(S) kernel sums per point hypothesis.
    """
    alpha = check_probability(alpha, "alpha")
    robust = check_bool(robust, "robust")
    if class_ is not None and not isinstance(class_, str):
        raise TypeError(f"class_ must be a string such as 'b', 'sd', 'cor', or None; got {class_!r}.")
    if group is not None and not isinstance(group, str):
        raise TypeError(f"group must be a grouping factor's name or None; got {group!r}.")
    if group is not None and group not in [b.name for b in fit.design.blocks]:
        raise ValueError(f"group={group!r} is not a grouping factor of the model; they are "
                         f"{[b.name for b in fit.design.blocks]}.")
    hyps = [hypothesis] if isinstance(hypothesis, str) else hypothesis
    if not isinstance(hyps, (list, tuple)) or not hyps:
        raise TypeError(f"hypothesis must be a string or a non-empty list of strings, got {hypothesis!r}.")
    post = parameter_draws(fit.design, fit.posterior)
    names = _class_names(post, class_, group)
    prior_ds = getattr(fit.idata, "prior", None) if "prior" in fit.idata.groups() else None
    prior = parameter_draws(fit.design, prior_ds) if prior_ds is not None else {}
    rows, missing_prior, extrapolated = [], [], []
    for h in hyps:
        expr, sign = _parse(h)
        code, placeholders = _compile(expr, h, names, class_, group)
        x = _evaluate(code, placeholders, post)
        if robust:
            est = float(np.median(x))
            err = 1.4826 * float(np.median(np.abs(x - est)))
        else:
            est, err = float(x.mean()), float(x.std(ddof=1))
        if sign == "=":
            lo, hi = np.quantile(x, [alpha / 2, 1 - alpha / 2])
            if all(v in prior for v in placeholders.values()):
                px = _evaluate(code, placeholders, prior)
                ratio = density_at(x) / density_at(px)
                where = [w for w, d in (("posterior", x), ("prior", px)) if _outside(d)]
                if where:
                    extrapolated.append(f"{h!r} (0 outside the {' and '.join(where)} draws)")
            else:
                ratio = float("nan")
                missing_prior.append(h)
            prob = ratio / (1 + ratio) if np.isfinite(ratio) else (1.0 if ratio == np.inf else float("nan"))
        else:
            lo, hi = (np.quantile(x, alpha), np.inf) if sign == ">" else (-np.inf, np.quantile(x, 1 - alpha))
            n_h = int(np.sum(x > 0)) if sign == ">" else int(np.sum(x < 0))
            ratio = n_h / (x.size - n_h) if n_h < x.size else float("inf")
            prob = n_h / x.size
        star = "*" if not (lo <= 0 <= hi) else ""
        rows.append({"Hypothesis": f"{expr} {sign} 0", "Estimate": est, "Est.Error": err, "CI.Lower": float(lo),
                     "CI.Upper": float(hi), "Evid.Ratio": float(ratio), "Post.Prob": float(prob), "Star": star})
    if missing_prior:
        warnings.warn(f"Evid.Ratio of the point hypotheses {missing_prior} is NaN: the Savage-Dickey ratio needs "
                      "prior draws of their parameters; fit with sample_prior=True.", UserWarning,
                      stacklevel=_user_stacklevel())
    if extrapolated:
        warnings.warn(f"Evid.Ratio of the point hypotheses {', '.join(extrapolated)} extrapolates a kernel density "
                      "beyond the range of the draws, where it is unreliable; more draws, or a hypothesis nearer "
                      "the posterior, give a usable Savage-Dickey ratio.", UserWarning, stacklevel=_user_stacklevel())
    return pd.DataFrame(rows)
