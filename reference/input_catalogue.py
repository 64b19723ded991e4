"""A catalogue of bad and awkward inputs, run against the package without sampling.

Usage::

    PYTHONPATH=<tree> python reference/input_catalogue.py [--json out.json]

Each case holds its expectation: ``refuse`` (the input is wrong, or asks for
something the package cannot do, and must be refused) or ``accept`` (a
legitimate input, perhaps awkward, that must work). Each outcome is one of

- ``clear``: a refused input raised ValueError/TypeError (or FileNotFoundError
  for a missing file) whose message contains the phrase that names the
  problem, before anything was compiled;
- ``worked``: an accepted input went through;
- ``unclear``: any other exception (another type, a message without the
  phrase, an error from an API the tree lacks), or an accepted input that
  was refused;
- ``silent``: a refused input went through to the compile stage (it would
  have been fitted, or failed only after compilation).

Model and data cases construct ``BayesLMM`` and build the PyMC model (a
graph, nothing compiled). ``fit()`` cases stop at the stage that would
compile: the package's ``build_model``/``sample``/``start_compiling`` are
replaced, for the duration of the call, by a function that raises
``_Reached``. Post-fit cases (predict, summary, save/load) share one fit
of 30 draws. The counts are printed; ``--json`` writes every case with its
outcome and message. Cost: one tiny fit plus about 0.1-0.5 s per case.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayeslmm
from bayeslmm import BayesLMM, Prior

CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError)


class _Reached(Exception):
    """Raised by the stand-in for the compiling stages."""


@contextlib.contextmanager
def _stop_before_compiling():
    """Replace every bayeslmm module's build_model/sample/start_compiling by a function raising _Reached."""
    def stop(*args, **kwargs):
        raise _Reached
    saved = []
    for name, mod in list(sys.modules.items()):
        if not name.startswith("bayeslmm") or mod is None:
            continue
        for attr in ("build_model", "sample", "start_compiling"):
            fn = getattr(mod, attr, None)
            if inspect.isfunction(fn):
                saved.append((mod, attr, fn))
                setattr(mod, attr, stop)
    try:
        yield
    finally:
        for mod, attr, fn in saved:
            setattr(mod, attr, fn)


# --------------------------------------------------------------------------- data

def toy(n=24, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(6)], n // 6)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.normal(size=n), "g": g,
                         "f": np.tile(["a", "b", "c"], n // 3), "h": np.tile(["u", "v"], n // 2),
                         "pos": rng.uniform(0.5, 2.0, size=n), "cnt": rng.poisson(3, size=n),
                         "b01": rng.integers(0, 2, size=n), "w": rng.uniform(0.5, 2, size=n)})


D = toy()
N = len(D)


def w(**cols):
    d = toy()
    for k, v in cols.items():
        d[k] = v
    return d


def with_nan(col, value=np.nan):
    d = toy()
    d[col] = d[col].astype(object if isinstance(value, str) or value is None else float)
    d.loc[0, col] = value
    return d


M = BayesLMM  # short name in the table


# --------------------------------------------------------------------------- cases
# (id, area, expectation, call, phrase). Model/data/prior calls return a BayesLMM
# (or a Prior); fit calls take nothing and call .fit(); post calls take (fit, tmp).

R, A = "refuse", "accept"

MODEL = [
    # formulas that must be refused
    ("no-tilde", "formula", R, lambda: M("y x + (1|g)", D), "~"),
    ("missing-col", "formula", R, lambda: M("y ~ q + (1|g)", D), "'q'"),
    ("missing-group", "formula", R, lambda: M("y ~ x + (1|zz)", D), "'zz'"),
    ("missing-response", "formula", R, lambda: M("yy ~ x + (1|g)", D), "'yy'"),
    ("formula-int", "formula", R, lambda: M(3, D), "formula"),
    ("formula-none", "formula", R, lambda: M(None, D), "formula"),
    ("formula-empty", "formula", R, lambda: M("", D), "formula"),
    ("formula-no-response", "formula", R, lambda: M("~ x + (1|g)", D), "response"),
    ("formula-no-rhs", "formula", R, lambda: M("y ~", D), "~"),
    ("formula-trailing-plus", "formula", R, lambda: M("y ~ x +", D), "y ~ x +"),
    ("formula-unbalanced-paren", "formula", R, lambda: M("y ~ x + (1|g", D), "("),
    ("formula-empty-lhs-bar", "formula", R, lambda: M("y ~ x + (|g)", D), "|"),
    ("formula-empty-group", "formula", R, lambda: M("y ~ x + (1|)", D), "|"),
    ("formula-same-effect-twice", "formula", R, lambda: M("y ~ x + (x|g) + (0 + x|g)", D), "more than one random term"),
    ("formula-same-term-twice", "formula", R, lambda: M("y ~ x + (1|g) + (1|g)", D), "more than one random term"),
    ("formula-missing-in-interaction-group", "formula", R, lambda: M("y ~ x + (1|g:zz)", D), "'zz'"),
    ("formula-missing-in-nested-group", "formula", R, lambda: M("y ~ x + (1|g/zz)", D), "'zz'"),
    ("formula-unknown-function", "formula", R, lambda: M("y ~ nofun(x) + (1|g)", D), "nofun"),
    ("formula-two-tildes", "formula", R, lambda: M("y ~ x ~ z + (1|g)", D), "~"),
    ("formula-gr-term", "formula", R, lambda: M("y ~ x + (1|gr(g))", D), "gr"),
    ("formula-smooth", "formula", R, lambda: M("y ~ s(x) + (1|g)", D), "s"),
    ("formula-numeric-group-identifies-rows", "formula", R, lambda: M("y ~ x + (1|x)", D), "number of observations"),
    ("one-level-group", "formula", R, lambda: M("y ~ x + (1|one)", w(one="a")), "level"),
    ("one-level-fixed-factor", "formula", R, lambda: M("y ~ one + (1|g)", w(one="a")), "2 or more levels"),
    ("one-level-fixed-factor-interaction", "formula", R, lambda: M("y ~ x*one + (1|g)", w(one="a")),
     "2 or more levels"),
    ("levels-equal-rows", "formula", R, lambda: M("y ~ x + (1|id)", w(id=np.arange(N))), "number of observations"),
    ("nested-identifies-rows", "formula", R, lambda: M("y ~ x + (1|g/r)", w(r=np.tile(np.arange(4), 6))),
     "number of observations"),
    ("levels-equal-rows-lognormal", "formula", R,
     lambda: M("pos ~ x + (1|id)", w(id=np.arange(N)), family="lognormal"), "number of observations"),
    ("rank-deficient", "formula", R, lambda: M("y ~ x + x2 + (1|g)", w(x2=2 * D.x)), "x2"),
    ("rank-deficient-constant-predictor", "formula", R, lambda: M("y ~ x + k + (1|g)", w(k=3.0)), "k"),
    ("unknown-family", "formula", R, lambda: M("y ~ x + (1|g)", D, family="gauss"), "gauss"),
    ("family-int", "formula", R, lambda: M("y ~ x + (1|g)", D, family=3), "family"),
    ("bad-link-gaussian", "formula", R, lambda: M("y ~ x + (1|g)", D, link="log"), "link"),
    ("bad-link-bernoulli", "formula", R, lambda: M("b01 ~ x + (1|g)", D, family="bernoulli", link="cloglog"),
     "cloglog"),
    ("bad-na-action", "formula", R, lambda: M("y ~ x + (1|g)", D, na_action="omit"), "na_action"),
    ("na-action-none", "formula", R, lambda: M("y ~ x + (1|g)", D, na_action=None), "na_action"),
    # formulas that must work
    ("intercept-only", "formula", A, lambda: M("y ~ 1 + (1|g)", D), ""),
    ("no-fixed-intercept-implicit", "formula", A, lambda: M("y ~ (1|g)", D), ""),
    ("slope", "formula", A, lambda: M("y ~ x + (x|g)", D), ""),
    ("uncorrelated", "formula", A, lambda: M("y ~ x + (x||g)", D), ""),
    ("slope-only", "formula", A, lambda: M("y ~ x + (0 + x|g)", D), ""),
    ("slope-only-minus-one", "formula", A, lambda: M("y ~ x + (x - 1|g)", D), ""),
    ("nested", "formula", A, lambda: M("y ~ x + (1|g/h)", D), ""),
    ("interaction-group", "formula", A, lambda: M("y ~ x + (1|g:h)", D), ""),
    ("crossed", "formula", A, lambda: M("y ~ x + (1|g) + (1|f)", D), ""),
    ("two-terms-one-factor", "formula", A, lambda: M("y ~ x + (1 + x|g) + (0 + z|g)", D), ""),
    ("fixed-interaction", "formula", A, lambda: M("y ~ x*f + (1|g)", D), ""),
    ("fixed-colon", "formula", A, lambda: M("y ~ x + x:z + (1|g)", D), ""),
    ("no-intercept-zero", "formula", A, lambda: M("y ~ 0 + x + (1|g)", D), ""),
    ("no-intercept-minus", "formula", A, lambda: M("y ~ x - 1 + (1|g)", D), ""),
    ("categorical", "formula", A, lambda: M("y ~ f + (1|g)", D), ""),
    ("sum-coding", "formula", A, lambda: M("y ~ C(f, Sum) + (1|g)", D), ""),
    ("sum-coding-r", "formula", A, lambda: M("y ~ C(f, contr.sum) + (1|g)", D), ""),
    ("log-response", "formula", A, lambda: M("log(pos) ~ x + (1|g)", D), ""),
    ("exp-predictor", "formula", A, lambda: M("y ~ exp(x) + (1|g)", D), ""),
    ("sqrt-predictor", "formula", A, lambda: M("y ~ sqrt(pos) + (1|g)", D), ""),
    ("log1p-predictor", "formula", A, lambda: M("y ~ log1p(pos) + (1|g)", D), ""),
    ("np-log", "formula", A, lambda: M("y ~ np.log(pos) + (1|g)", D), ""),
    ("center", "formula", A, lambda: M("y ~ center(x) + (1|g)", D), ""),
    ("scale", "formula", A, lambda: M("y ~ scale(x) + (1|g)", D), ""),
    ("I-square", "formula", A, lambda: M("y ~ x + I(x**2) + (1|g)", D), ""),
    ("brace-square", "formula", A, lambda: M("y ~ x + {x**2} + (1|g)", D), ""),
    ("factor-slope", "formula", A, lambda: M("y ~ h + (h|g)", D), ""),
    ("factor-slope-uncorrelated", "formula", A, lambda: M("y ~ h + (h||g)", D), ""),
    ("slope-in-group-and-scale", "formula", A, lambda: M("y ~ scale(x) + (scale(x)|g)", D), ""),
    ("no-spaces", "formula", A, lambda: M("y~x+(1|g)", D), ""),
    ("newline-in-formula", "formula", A, lambda: M("y ~ x +\n (1 | g)", D), ""),
    ("offset", "formula", A, lambda: M("y ~ x + offset(z) + (1|g)", D), ""),
    ("weights-column", "formula", A, lambda: M("y ~ x + (1|g)", D, weights="w"), ""),
    ("weights-array", "formula", A, lambda: M("y ~ x + (1|g)", D, weights=D.w.to_numpy()), ""),
    ("weights-in-formula", "formula", A, lambda: M("y | weights(w) ~ x + (1|g)", D), ""),
    ("backtick-predictor", "formula", A, lambda: M("y ~ `my x` + (1|g)", w(**{"my x": D.x})), ""),
    ("backtick-response", "formula", A, lambda: M("`my y` ~ x + (1|g)", w(**{"my y": D.y})), ""),
    ("backtick-group", "formula", A, lambda: M("y ~ x + (1|`my g`)", w(**{"my g": D.g})), ""),
    ("backtick-slope", "formula", A, lambda: M("y ~ `my x` + (`my x`|g)", w(**{"my x": D.x})), ""),
    # families
    ("lognormal", "family", A, lambda: M("pos ~ x + (1|g)", D, family="lognormal"), ""),
    ("student", "family", A, lambda: M("y ~ x + (1|g)", D, family="student"), ""),
    ("bernoulli", "family", A, lambda: M("b01 ~ x + (1|g)", D, family="bernoulli"), ""),
    ("bernoulli-probit", "family", A, lambda: M("b01 ~ x + (1|g)", D, family="bernoulli", link="probit"), ""),
    ("bernoulli-bool", "family", A, lambda: M("bb ~ x + (1|g)", w(bb=D.b01.astype(bool)), family="bernoulli"), ""),
    ("binomial-cbind", "family", A,
     lambda: M("cbind(s, fl) ~ x + (1|g)", w(s=D.cnt, fl=5), family="binomial"), ""),
    ("binomial-trials", "family", A,
     lambda: M("s | trials(n) ~ x + (1|g)", w(s=D.cnt, n=D.cnt + 3), family="binomial"), ""),
    ("poisson", "family", A, lambda: M("cnt ~ x + (1|g)", D, family="poisson"), ""),
    ("negbinomial", "family", A, lambda: M("cnt ~ x + (1|g)", D, family="negbinomial"), ""),
    ("poisson-offset", "family", A, lambda: M("cnt ~ x + offset(np.log(pos)) + (1|g)", D, family="poisson"), ""),
    ("lognormal-nonpositive", "family", R, lambda: M("y ~ x + (1|g)", D, family="lognormal"), "positive"),
    ("bernoulli-two", "family", R, lambda: M("cnt ~ x + (1|g)", D, family="bernoulli"), "0"),
    ("bernoulli-fraction", "family", R, lambda: M("pos ~ x + (1|g)", D, family="bernoulli"), "0"),
    ("poisson-negative", "family", R, lambda: M("y ~ x + (1|g)", D, family="poisson"), "negative"),
    ("poisson-fraction", "family", R, lambda: M("pos ~ x + (1|g)", D, family="poisson"), "integer"),
    ("binomial-success-above-trials", "family", R,
     lambda: M("s | trials(n) ~ x + (1|g)", w(s=D.cnt + 5, n=D.cnt), family="binomial"), "trials"),
    ("binomial-negative", "family", R,
     lambda: M("cbind(s, fl) ~ x + (1|g)", w(s=-D.cnt - 1, fl=5), family="binomial"), "negative"),
    ("binomial-no-trials", "family", R, lambda: M("cnt ~ x + (1|g)", D, family="binomial"), "trials"),
    ("constant-response-lognormal", "family", R, lambda: M("k ~ x + (1|g)", w(k=2.0), family="lognormal"),
     "constant"),
    # data that must be refused
    ("data-list", "data", R, lambda: M("y ~ x + (1|g)", [1, 2]), "DataFrame"),
    ("data-dict", "data", R, lambda: M("y ~ x + (1|g)", {"y": [1]}), "DataFrame"),
    ("data-ndarray", "data", R, lambda: M("y ~ x + (1|g)", np.zeros((3, 3))), "DataFrame"),
    ("data-none", "data", R, lambda: M("y ~ x + (1|g)", None), "DataFrame"),
    ("data-series", "data", R, lambda: M("y ~ x + (1|g)", D.y), "DataFrame"),
    ("data-empty", "data", R, lambda: M("y ~ x + (1|g)", D.iloc[:0]), "empty"),
    ("data-one-row", "data", R, lambda: M("y ~ x + (1|g)", D.iloc[:1]), "one row"),
    ("nan-response", "data", R, lambda: M("y ~ x + (1|g)", with_nan("y")), "'y'"),
    ("inf-predictor", "data", R, lambda: M("y ~ x + (1|g)", with_nan("x", np.inf)), "'x'"),
    ("nan-group", "data", R, lambda: M("y ~ x + (1|g)", with_nan("g", None)), "'g'"),
    ("nan-fixed-factor", "data", R, lambda: M("y ~ f + (1|g)", with_nan("f", None)), "'f'"),
    ("nan-nested-inner", "data", R, lambda: M("y ~ x + (1|g/h)", with_nan("h", None)), "'h'"),
    ("nan-slope", "data", R, lambda: M("y ~ 1 + (z|g)", with_nan("z")), "'z'"),
    ("nan-offset", "data", R, lambda: M("y ~ x + offset(z) + (1|g)", with_nan("z")), "'z'"),
    ("pd-NA-int", "data", R, lambda: M("y ~ k + (1|g)", w(k=pd.array([pd.NA] + [1, 2] * 11 + [3], "Int64"))),
     "'k'"),
    ("all-nan-drop", "data", R, lambda: M("y ~ x + (1|g)", w(y=np.nan), na_action="drop"), "All"),
    ("string-response", "data", R, lambda: M("f ~ x + (1|g)", D), "numeric"),
    ("constant-response", "data", R, lambda: M("y ~ x + (1|g)", w(y=1.0)), "constant"),
    ("duplicate-columns", "data", R, lambda: M("y ~ x + (1|g)", pd.concat([D, D[["x"]]], axis=1)),
     "duplicate column"),
    ("mixed-type-group", "data", R, lambda: M("y ~ x + (1|m)", w(m=[1, "1"] * (N // 2))), "'m'"),
    ("mixed-type-factor", "data", R, lambda: M("y ~ m + (1|g)", w(m=[1, "1", 2] * (N // 3))), "mixes value types"),
    ("datetime-predictor", "data", R, lambda: M("y ~ t + (1|g)", w(t=pd.date_range("2020", periods=N))),
     "datetime"),
    ("timedelta-predictor", "data", R, lambda: M("y ~ t + (1|g)", w(t=pd.to_timedelta(np.arange(N), "D"))), "t"),
    ("complex-predictor", "data", R, lambda: M("y ~ c + (1|g)", w(c=D.x + 1j)), "c"),
    ("huge-predictor", "data", R, lambda: M("y ~ x + (1|g)", w(x=D.x * 1e300)), "magnitude"),
    ("underflowing-predictor", "data", R, lambda: M("y ~ x + (1|g)", w(x=D.x * 1e-300)), "x"),
    ("huge-response", "data", R, lambda: M("y ~ x + (1|g)", w(y=D.y * 1e300)), "y"),
    ("log-nonpositive", "data", R, lambda: M("log(y) ~ x + (1|g)", D), "non-finite"),
    ("nan-in-C-named-column", "data", R, lambda: M("y ~ C + (1|g)", w(C=np.r_[np.nan, D.x[1:]])), "'C'"),
    ("nan-in-I-named-column", "data", R, lambda: M("y ~ I + (1|g)", w(I=np.r_[np.nan, D.x[1:]])), "'I'"),
    ("nan-in-T-named-column", "data", R, lambda: M("y ~ T + (1|g)", w(T=np.r_[np.nan, D.x[1:]])), "'T'"),
    ("nan-weights-column", "data", R, lambda: M("y ~ x + (1|g)", with_nan("w"), weights="w"), "'w'"),
    ("nan-weights-array", "data", R, lambda: M("y ~ x + (1|g)", D, weights=np.r_[np.nan, D.w[1:]]), "weights"),
    ("negative-weights", "data", R, lambda: M("y ~ x + (1|g)", D, weights=-D.w.to_numpy()), "weights"),
    ("zero-weights", "data", R, lambda: M("y ~ x + (1|g)", D, weights=np.zeros(N)), "weights"),
    ("weights-wrong-length", "data", R, lambda: M("y ~ x + (1|g)", D, weights=np.ones(N - 1)), "weights"),
    ("weights-string-column", "data", R, lambda: M("y ~ x + (1|g)", D, weights="f"), "'f'"),
    ("weights-missing-column", "data", R, lambda: M("y ~ x + (1|g)", D, weights="ww"), "'ww'"),
    ("weights-strings-array", "data", R, lambda: M("y ~ x + (1|g)", D, weights=np.array(["a"] * N)), "weights"),
    ("weights-dict", "data", R, lambda: M("y ~ x + (1|g)", D, weights={"a": 1}), "weights"),
    ("column-needs-quoting-unquoted", "data", R, lambda: M("y ~ my x + (1|g)", w(**{"my x": D.x})), "my"),
    ("multiindex-columns", "data", R,
     lambda: M("y ~ x + (1|g)", pd.DataFrame(D.values, columns=pd.MultiIndex.from_product([["a"], D.columns]))),
     "column"),
    # data that must work
    ("na-action-drop", "data", A, lambda: M("y ~ x + (1|g)", with_nan("y"), na_action="drop"), ""),
    ("na-action-drop-unused-column", "data", A, lambda: M("y ~ x + (1|g)", with_nan("z")), ""),
    ("non-default-index", "data", A, lambda: M("y ~ x + (1|g)", D.set_index(D.index * 7 + 3)), ""),
    ("duplicate-index", "data", A, lambda: M("y ~ x + (1|g)", D.set_index(np.zeros(N, int))), ""),
    ("shuffled-rows", "data", A, lambda: M("y ~ x + (1|g)", D.sample(frac=1, random_state=1)), ""),
    ("string-index", "data", A, lambda: M("y ~ x + (1|g)", D.set_index(D.index.astype(str))), ""),
    ("large-response", "data", A, lambda: M("y ~ x + (1|g)", w(y=D.y * 1e6 + 1e7)), ""),
    ("tiny-predictor", "data", A, lambda: M("y ~ x + (1|g)", w(x=D.x * 1e-6)), ""),
    ("large-predictor", "data", A, lambda: M("y ~ x + (1|g)", w(x=D.x * 1e8)), ""),
    ("unbalanced-groups", "data", A, lambda: M("y ~ x + (1|u)", w(u=["a"] * 15 + ["b"] * 5 + ["c"] * 4)), ""),
    ("two-level-group", "data", A, lambda: M("y ~ x + (1|h)", D), ""),
    ("int-group", "data", A, lambda: M("y ~ x + (1|gi)", w(gi=np.repeat(np.arange(6), 4))), ""),
    ("float-group", "data", A, lambda: M("y ~ x + (1|gf)", w(gf=np.repeat(np.arange(6) * 1.5, 4))), ""),
    ("categorical-group", "data", A, lambda: M("y ~ x + (1|g)", w(g=D.g.astype("category"))), ""),
    ("categorical-group-unused-level", "data", A,
     lambda: M("y ~ x + (1|g)", w(g=pd.Categorical(D.g, categories=sorted(set(D.g)) + ["unused"]))), ""),
    ("categorical-factor-unused-level", "data", A,
     lambda: M("y ~ f + (1|g)", w(f=pd.Categorical(D.f, categories=["a", "b", "c", "d"]))), ""),
    ("ordered-categorical-factor", "data", A,
     lambda: M("y ~ f + (1|g)", w(f=pd.Categorical(D.f, categories=["c", "b", "a"], ordered=True))), ""),
    ("bool-predictor", "data", A, lambda: M("y ~ bb + (1|g)", w(bb=D.b01.astype(bool))), ""),
    ("int-predictor", "data", A, lambda: M("y ~ cnt + (1|g)", D), ""),
    ("nullable-int-predictor", "data", A, lambda: M("y ~ k + (1|g)", w(k=pd.array(D.cnt, "Int64"))), ""),
    ("float32-columns", "data", A, lambda: M("y ~ x + (1|g)", D.astype({"y": "float32", "x": "float32"})), ""),
    ("unicode-column", "data", A, lambda: M("y ~ größe + (1|g)", w(größe=D.x)), ""),
    ("C-named-column", "data", A, lambda: M("y ~ C + (1|g)", w(C=D.x)), ""),
    ("I-named-column", "data", A, lambda: M("y ~ I + (1|g)", w(I=D.x)), ""),
    ("string-dtype-group", "data", A, lambda: M("y ~ x + (1|g)", w(g=D.g.astype("string"))), ""),
    ("extra-object-column", "data", A, lambda: M("y ~ x + (1|g)", w(junk=[object()] * N)), ""),
    ("int-response", "data", A, lambda: M("cnt ~ x + (1|g)", D), ""),
]

PRIOR = [
    ("prior-unparseable", R, lambda: Prior("normal 0 1"), "normal 0 1"),
    ("prior-unknown-dist", R, lambda: Prior("gaussian(0, 1)"), "gaussian"),
    ("prior-unknown-class", R, lambda: Prior("normal(0, 1)", cls="beta"), "beta"),
    ("prior-wrong-arity", R, lambda: Prior("normal(0)"), "argument"),
    ("prior-non-numeric", R, lambda: Prior("normal(a, 1)"), "numeric"),
    ("prior-negative-sd", R, lambda: Prior("normal(0, -1)"), "normal(0, -1)"),
    ("prior-zero-sd", R, lambda: Prior("normal(0, 0)"), "positive"),
    ("prior-negative-rate", R, lambda: Prior("exponential(-1)", cls="sigma"), "exponential(-1)"),
    ("prior-zero-rate", R, lambda: Prior("exponential(0)", cls="sigma"), "exponential(0)"),
    ("prior-negative-half-normal", R, lambda: Prior("half_normal(-2)", cls="sd"), "half_normal(-2)"),
    ("prior-negative-half-cauchy", R, lambda: Prior("half_cauchy(-1)", cls="sd"), "half_cauchy(-1)"),
    ("prior-negative-cauchy-scale", R, lambda: Prior("cauchy(0, -1)"), "cauchy(0, -1)"),
    ("prior-student-negative-scale", R, lambda: Prior("student_t(3, 0, -1)"), "student_t(3, 0, -1)"),
    ("prior-gamma-zero-shape", R, lambda: Prior("gamma(0, 1)", cls="sigma"), "gamma(0, 1)"),
    ("prior-inf", R, lambda: Prior("normal(0, inf)"), "non-finite"),
    ("prior-overflow", R, lambda: Prior("normal(0, 1e400)"), "non-finite"),
    ("prior-nan", R, lambda: Prior("normal(nan, 1)"), "non-finite"),
    ("prior-student-df-zero", R, lambda: Prior("student_t(0, 0, 1)"), "positive"),
    ("prior-lkj-zero", R, lambda: Prior("lkj(0)", cls="cor"), "positive"),
    ("prior-lkj-negative", R, lambda: Prior("lkj(-1)", cls="cor"), "positive"),
    ("prior-dist-int", R, lambda: Prior(3), "prior"),
    ("prior-cls-int", R, lambda: Prior("normal(0, 1)", cls=3), "3"),
    ("prior-no-target", R, lambda: M("y ~ x + (1|g)", D, priors=Prior("normal(0, 1)", coef="zz")),
     "matches no parameter"),
    ("prior-no-group", R, lambda: M("y ~ x + (1|g)", D, priors=Prior("half_normal(1)", cls="sd", group="zz")),
     "zz"),
    ("prior-cor-without-correlation", R, lambda: M("y ~ x + (1|g)", D, priors=Prior("lkj(2)", cls="cor")), "cor"),
    ("prior-sigma-on-bernoulli", R,
     lambda: M("b01 ~ x + (1|g)", D, family="bernoulli", priors=Prior("exponential(1)", cls="sigma")), "sigma"),
    ("prior-duplicate", R, lambda: M("y ~ x + (1|g)", D, priors=[Prior("normal(0, 1)", coef="x"),
                                                                  Prior("normal(0, 2)", coef="x")]),
     "Duplicated prior"),
    ("prior-duplicate-class", R, lambda: M("y ~ x + (1|g)", D, priors=[Prior("normal(0, 1)"), Prior("normal(0, 3)")]),
     "Duplicated prior"),
    ("prior-not-prior", R, lambda: M("y ~ x + (1|g)", D, priors=["normal(0,1)"]), "Prior"),
    ("prior-string", R, lambda: M("y ~ x + (1|g)", D, priors="normal(0,1)"), "Prior"),
    ("prior-dict", R, lambda: M("y ~ x + (1|g)", D, priors={"b": "normal(0,1)"}), "Prior"),
    ("prior-positive-on-b", R, lambda: M("y ~ x + (1|g)", D, priors=Prior("exponential(1)")), "positive"),
    ("prior-lkj-on-b", R, lambda: M("y ~ x + (1|g)", D, priors=Prior("lkj(2)")), "lkj"),
    ("prior-flat-on-sd", R, lambda: M("y ~ x + (1|g)", D, priors=Prior("flat()", cls="sd")), "flat"),
    ("prior-normal-on-cor", R, lambda: M("y ~ x + (x|g)", D, priors=Prior("normal(0, 1)", cls="cor")), "cor"),
    ("prior-b", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("normal(0, 1)")), ""),
    ("prior-b-coef", A, lambda: M("y ~ x + z + (1|g)", D, priors=Prior("normal(0, 1)", coef="x")), ""),
    ("prior-b-student", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("student_t(3, 0, 2.5)")), ""),
    ("prior-b-cauchy", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("cauchy(0, 1)")), ""),
    ("prior-b-flat", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("flat()")), ""),
    ("prior-intercept", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("normal(0, 5)", cls="Intercept")), ""),
    ("prior-sd-half-normal", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("half_normal(1)", cls="sd")), ""),
    ("prior-sd-normal-as-half", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("normal(0, 1)", cls="sd")), ""),
    ("prior-sd-exponential", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("exponential(2)", cls="sd")), ""),
    ("prior-sd-group", A, lambda: M("y ~ x + (1|g) + (1|f)", D,
                                    priors=Prior("half_normal(1)", cls="sd", group="g")), ""),
    ("prior-sd-group-coef", A, lambda: M("y ~ x + (x|g)", D,
                                         priors=Prior("half_normal(1)", cls="sd", group="g", coef="x")), ""),
    ("prior-sigma", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("exponential(1)", cls="sigma")), ""),
    ("prior-sigma-gamma", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("gamma(2, 1)", cls="sigma")), ""),
    ("prior-sigma-lognormal", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("lognormal(0, 1)", cls="sigma")), ""),
    ("prior-cor", A, lambda: M("y ~ x + (x|g)", D, priors=Prior("lkj(2)", cls="cor")), ""),
    ("prior-several", A, lambda: M("y ~ x + (x|g)", D, priors=[Prior("normal(0, 1)"), Prior("lkj(2)", cls="cor"),
                                                               Prior("half_normal(1)", cls="sd")]), ""),
    ("prior-general-and-specific", A, lambda: M("y ~ x + z + (1|g)", D, priors=[
        Prior("normal(0, 1)"), Prior("normal(0, 2)", coef="x")]), ""),
    ("prior-empty-list", A, lambda: M("y ~ x + (1|g)", D, priors=[]), ""),
    ("prior-tuple", A, lambda: M("y ~ x + (1|g)", D, priors=(Prior("normal(0, 1)"),)), ""),
    ("prior-spaces", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("  normal( 0 ,1 ) ")), ""),
    ("prior-upper-case", A, lambda: M("y ~ x + (1|g)", D, priors=Prior("Normal(0, 1)")), ""),
    ("prior-factor-level-coef", A, lambda: M("y ~ f + (1|g)", D, priors=Prior("normal(0, 1)", coef="f[b]")), ""),
]

FIT = [
    ("draws-str", R, dict(draws="100"), "draws"),
    ("draws-zero", R, dict(draws=0), "draws"),
    ("draws-negative", R, dict(draws=-5), "draws"),
    ("draws-float", R, dict(draws=10.5), "draws"),
    ("draws-nan", R, dict(draws=float("nan")), "draws"),
    ("draws-bool", R, dict(draws=True), "draws"),
    ("tune-negative", R, dict(tune=-1), "tune"),
    ("tune-str", R, dict(tune="10"), "tune"),
    ("tune-float", R, dict(tune=1.5), "tune"),
    ("chains-zero", R, dict(chains=0), "chains"),
    ("chains-negative", R, dict(chains=-1), "chains"),
    ("chains-float", R, dict(chains=2.0), "chains"),
    ("chains-none", R, dict(chains=None), "chains"),
    ("target-accept-str", R, dict(target_accept="0.9"), "target_accept"),
    ("target-accept-one", R, dict(target_accept=1.0), "target_accept"),
    ("target-accept-zero", R, dict(target_accept=0), "target_accept"),
    ("target-accept-big", R, dict(target_accept=80), "target_accept"),
    ("target-accept-nan", R, dict(target_accept=float("nan")), "target_accept"),
    ("target-accept-bool", R, dict(target_accept=True), "target_accept"),
    ("seed-str", R, dict(random_seed="x"), "random_seed"),
    ("seed-negative", R, dict(random_seed=-1), "random_seed"),
    ("seed-float", R, dict(random_seed=1.5), "random_seed"),
    ("seed-bool", R, dict(random_seed=True), "random_seed"),
    ("sampler-unknown", R, dict(sampler="stan"), "stan"),
    ("sampler-none", R, dict(sampler=None), "sampler"),
    ("sampler-upper", R, dict(sampler="NumPyro"), "NumPyro"),
    ("progressbar-str", R, dict(progressbar="False"), "progressbar"),
    ("progressbar-no", R, dict(progressbar="no"), "progressbar"),
    ("progressbar-int", R, dict(progressbar=0), "progressbar"),
    ("low-memory-str", R, dict(low_memory="yes"), "low_memory"),
    ("low-memory-int", R, dict(low_memory=1), "low_memory"),
    ("low-memory-pymc", R, dict(low_memory=True, sampler="pymc"), "low_memory"),
    ("marginalize-unknown", R, dict(marginalize="zz"), "zz"),
    ("marginalize-int", R, dict(marginalize=3), "marginalize"),
    ("marginalize-list-unknown", R, dict(marginalize=["zz"]), "zz"),
    ("marginalize-empty-str", R, dict(marginalize=""), "marginalize"),
    ("approximation-unknown", R, dict(approximation="laplace2"), "approximation"),
    ("compile-cache-int", R, dict(compile_cache=3), "compile_cache"),
    ("unknown-keyword", R, dict(n_draws=10), "unexpected keyword argument 'n_draws'"),
    ("defaults", A, dict(), ""),
    ("draws-numpy-int", A, dict(draws=np.int64(10), tune=np.int32(10)), ""),
    ("draws-one", A, dict(draws=1), ""),
    ("seed-zero", A, dict(random_seed=0), ""),
    ("seed-numpy-int", A, dict(random_seed=np.int64(3)), ""),
    ("seed-generator", A, dict(random_seed=np.random.default_rng(1)), ""),
    ("seed-seedsequence", A, dict(random_seed=np.random.SeedSequence(1)), ""),
    ("target-accept-numpy", A, dict(target_accept=np.float64(0.9)), ""),
    ("target-accept-high", A, dict(target_accept=0.99), ""),
    ("marginalize-none", A, dict(marginalize="none"), ""),
    ("marginalize-all", A, dict(marginalize="all"), ""),
    ("marginalize-factor", A, dict(marginalize="g"), ""),
    ("marginalize-list", A, dict(marginalize=["g"]), ""),
    ("sampler-pymc", A, dict(sampler="pymc"), ""),
    ("sampler-blackjax", A, dict(sampler="blackjax"), ""),
    ("sampler-nutpie", A, dict(sampler="nutpie"), ""),
    ("progressbar-false", A, dict(progressbar=False), ""),
    ("low-memory-false", A, dict(low_memory=False), ""),
    ("compile-cache-off", A, dict(compile_cache=False), ""),
    ("compile-cache-path", A, dict(compile_cache=str(Path(tempfile.gettempdir()) / "bayeslmm-catalogue-cache")), ""),
]


def _post(tmp: Path):
    garbage = tmp / "garbage.nc"
    garbage.write_bytes(b"not a netcdf file at all")
    empty = tmp / "empty.nc"
    empty.write_bytes(b"")
    newlev = D.assign(g="new")
    cases = [
        ("predict-nan-newdata", R, lambda f: f.predict(newdata=D.assign(x=np.nan)), "'x'"),
        ("predict-inf-newdata", R, lambda f: f.predict(newdata=D.assign(x=np.inf)), "'x'"),
        ("predict-nan-group-newdata", R, lambda f: f.predict(newdata=D.assign(g=None)), "'g'"),
        ("predict-empty-newdata", R, lambda f: f.predict(newdata=D.iloc[:0]), "empty"),
        ("predict-list-newdata", R, lambda f: f.predict(newdata=[1, 2]), "DataFrame"),
        ("predict-dict-newdata", R, lambda f: f.predict(newdata={"x": [1.0]}), "DataFrame"),
        ("predict-missing-column", R, lambda f: f.predict(newdata=D.drop(columns="x")), "x"),
        ("predict-missing-group-column", R, lambda f: f.predict(newdata=D.drop(columns="g")), "g"),
        ("predict-missing-factor-column", R, lambda f: f.predict(newdata=D.drop(columns="f")), "f"),
        ("predict-new-factor-level", R, lambda f: f.predict(newdata=D.assign(f="zz")), "zz"),
        ("predict-new-level", R, lambda f: f.predict(newdata=newlev), "new"),
        ("predict-allow-new-str", R, lambda f: f.predict(newdata=D, allow_new_levels="False"), "allow_new_levels"),
        ("predict-allow-new-no", R, lambda f: f.predict(newdata=newlev, allow_new_levels="no"), "allow_new_levels"),
        ("predict-bad-kind", R, lambda f: f.predict(kind="median"), "median"),
        ("predict-kind-int", R, lambda f: f.predict(kind=3), "kind"),
        ("predict-bad-re-formula", R, lambda f: f.predict(re_formula="~ (1|zz)"), "zz"),
        ("predict-re-formula-unparseable", R, lambda f: f.predict(re_formula="~ (1|"), "re_formula"),
        ("predict-re-formula-int", R, lambda f: f.predict(re_formula=3), "re_formula"),
        ("predict-mixed-type-group", R, lambda f: f.predict(newdata=D.assign(g=[1, "g1"] * (N // 2)),
                                                             allow_new_levels=True), "'g'"),
        ("predict-string-in-numeric", R, lambda f: f.predict(newdata=D.assign(x="a")), "newdata"),
        ("predict-sample-new-levels", R, lambda f: f.predict(sample_new_levels="uncertainty"), "sample_new_levels"),
        ("predict-seed-str", R, lambda f: f.predict(kind="response", random_seed="x"), "random_seed"),
        ("predict-table-prob-big", R, lambda f: f.predict_table(prob=1.5), "prob"),
        ("summary-prob-big", R, lambda f: f.summary(prob=1.5), "prob"),
        ("summary-prob-zero", R, lambda f: f.summary(prob=0), "prob"),
        ("summary-prob-str", R, lambda f: f.summary(prob="0.9"), "prob"),
        ("summary-prob-nan", R, lambda f: f.summary(prob=float("nan")), "prob"),
        ("fixef-prob-big", R, lambda f: f.fixef(prob=2), "prob"),
        ("ranef-prob-negative", R, lambda f: f.ranef(prob=-0.1), "prob"),
        ("caterpillar-unknown-factor", R, lambda f: f.plot_caterpillar("zz"), "zz"),
        ("bayes-r2-bad-re-formula", R, lambda f: f.bayes_R2(re_formula="~ (1|zz)"), "zz"),
        ("save-missing-folder", R, lambda f: f.save(tmp / "no" / "such" / "dir" / "fit.nc"), "fit.nc"),
        ("load-garbage", R, lambda f: bayeslmm.load(garbage), "garbage.nc"),
        ("load-empty", R, lambda f: bayeslmm.load(empty), "empty.nc"),
        ("load-missing", R, lambda f: bayeslmm.load(tmp / "nope.nc"), "nope.nc"),
        ("load-directory", R, lambda f: bayeslmm.load(tmp), str(tmp.name)),
        ("load-truncated", R, lambda f: bayeslmm.load(_truncated(f, tmp)), "truncated.nc"),
        ("load-no-model-spec", R, lambda f: bayeslmm.load(_bare(f, tmp)), "bare.nc"),
        ("load-int", R, lambda f: bayeslmm.load(3), "3"),
        ("predict-default", A, lambda f: _finite(f.predict()), ""),
        ("predict-subset", A, lambda f: _finite(f.predict(newdata=D.iloc[:3])), ""),
        ("predict-one-row", A, lambda f: _finite(f.predict(newdata=D.iloc[[5]])), ""),
        ("predict-response", A, lambda f: _finite(f.predict(kind="response", random_seed=1)), ""),
        ("predict-link", A, lambda f: _finite(f.predict(kind="link")), ""),
        ("predict-re-formula-NA", A, lambda f: _finite(f.predict(re_formula="NA")), ""),
        ("predict-re-formula-zero", A, lambda f: _finite(f.predict(re_formula="~ 0")), ""),
        ("predict-re-formula-one", A, lambda f: _finite(f.predict(re_formula="~ (1|g)")), ""),
        ("predict-new-level-allowed", A, lambda f: _finite(f.predict(newdata=newlev, allow_new_levels=True)), ""),
        ("predict-new-level-no-re", A, lambda f: _finite(f.predict(newdata=newlev, re_formula="NA")), ""),
        ("predict-extra-columns", A, lambda f: _finite(f.predict(newdata=D.assign(extra="e"))), ""),
        ("predict-reordered-columns", A, lambda f: _finite(f.predict(newdata=D[D.columns[::-1]])), ""),
        ("predict-no-response", A, lambda f: _finite(f.predict(newdata=D.drop(columns="y"))), ""),
        ("predict-factor-subset", A, lambda f: _finite(f.predict(newdata=D[D.f == "b"])), ""),
        ("predict-factor-categorical", A, lambda f: _finite(f.predict(newdata=D.assign(f=D.f.astype("category")))), ""),
        ("predict-non-default-index", A, lambda f: _finite(f.predict(newdata=D.set_index(D.index + 100))), ""),
        ("predict-nan-in-unused-column", A, lambda f: _finite(f.predict(newdata=D.assign(z=np.nan))), ""),
        ("fitted", A, lambda f: f.fitted(), ""),
        ("predict-table", A, lambda f: f.predict_table(prob=0.9), ""),
        ("summary", A, lambda f: str(f.summary(prob=0.9)), ""),
        ("fixef-ranef-coef-varcorr", A, lambda f: (f.fixef(), f.ranef(), f.coef(), f.varcorr()), ""),
        ("bayes-r2", A, lambda f: f.bayes_R2(), ""),
        ("posterior-predictive", A, lambda f: f.posterior_predictive(random_seed=1), ""),
        ("save-load-roundtrip", A, lambda f: _roundtrip(f, tmp), ""),
        ("save-overwrite", A, lambda f: (f.save(tmp / "twice.nc"), f.save(tmp / "twice.nc")), ""),
        ("save-pathlib-and-str", A, lambda f: bayeslmm.load(str(f.save(tmp / "str.nc") or tmp / "str.nc")), ""),
    ]
    return cases


def _finite(a):
    a = np.asarray(a)
    if not np.all(np.isfinite(a)):
        raise AssertionError("non-finite predictions")
    return a


def _roundtrip(fit, tmp):
    path = tmp / "fit.nc"
    fit.save(path)
    back = bayeslmm.load(path)
    a, b = (f.predict(newdata=D.iloc[:4], kind="mean", summary=False) for f in (fit, back))
    if not np.allclose(a, b):
        raise AssertionError("predictions differ after save/load")
    return back


def _truncated(fit, tmp):
    path = tmp / "full.nc"
    fit.save(path)
    cut = tmp / "truncated.nc"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cut


def _bare(fit, tmp):
    path = tmp / "bare.nc"
    fit.idata.to_netcdf(str(path))
    return path


# --------------------------------------------------------------------------- running

def _classify(expect, err, phrase, reached):
    if err is None or reached:
        return "worked" if expect == A else "silent"
    if expect == A:
        return "unclear"
    missing_api = isinstance(err, (AttributeError, ImportError)) or (
        "unexpected keyword argument" in str(err) and "unexpected keyword argument" not in phrase)
    if isinstance(err, CLEAR_TYPES) and not missing_api and phrase.lower() in str(err).lower():
        return "clear"
    return "unclear"


def _run_one(fn):
    """Call fn; return (exception or None, reached the compile stage, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        except _Reached:
            return None, True, caught
        except Exception as err:  # noqa: BLE001 - classifying every exception is the point
            return err, False, caught
    return None, False, caught


def _model_call(make):
    def call():
        obj = make()
        if isinstance(obj, BayesLMM):
            obj.build_model()
    return call


def run():
    results = []

    def record(cid, area, expect, fn, phrase):
        err, reached, caught = _run_one(fn)
        outcome = _classify(expect, err, phrase, reached)
        results.append({"id": cid, "area": area, "expect": expect, "outcome": outcome,
                        "error": None if err is None else f"{type(err).__name__}: {str(err)[:300]}",
                        "warnings": sorted({f"{c.category.__name__}: {str(c.message)[:120]}" for c in caught})})

    for cid, area, expect, make, phrase in MODEL:
        record(cid, area, expect, _model_call(make), phrase)
    for cid, expect, make, phrase in PRIOR:
        record(cid, "prior", expect, _model_call(make), phrase)
    for cid, expect, kw, phrase in FIT:
        def call(kw=kw):
            with _stop_before_compiling():
                M("y ~ x + (1|g)", D).fit(**kw)
        record(f"fit-{cid}", "fit", expect, call, phrase)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            fit = M("y ~ x + f + (1|g)", D).fit(draws=30, tune=30, chains=1, random_seed=1, progressbar=False)
        except Exception as err:  # noqa: BLE001
            fit = None
            fit_error = f"{type(err).__name__}: {err}"
        for cid, expect, call, phrase in _post(tmp):
            if fit is None:
                results.append({"id": cid, "area": "post-fit", "expect": expect, "outcome": "unclear",
                                "error": f"the tiny fit failed: {fit_error}", "warnings": []})
                continue
            record(cid, "post-fit", expect, lambda call=call: call(fit), phrase)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write every case and its outcome here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    results = run()
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("clear", "worked", "unclear", "silent")}
    warned = [r["id"] for r in results if r["outcome"] == "worked" and r["warnings"]]
    print(f"bayeslmm from {Path(bayeslmm.__file__).parent}")
    print(f"{len(results)} cases ({sum(r['expect'] == R for r in results)} to refuse, "
          f"{sum(r['expect'] == A for r in results)} to accept) in {time.perf_counter() - t0:.0f} s")
    for k, v in counts.items():
        print(f"  {k:8s} {v}")
    print(f"  accepted cases that warned: {len(warned)}")
    for r in results:
        if r["outcome"] in ("unclear", "silent"):
            print(f"  [{r['outcome']}] {r['id']}: {r['error']}")
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "warned": warned, "cases": results}, indent=1))
    return counts


if __name__ == "__main__":
    main()
