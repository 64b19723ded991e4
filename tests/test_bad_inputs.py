"""Bad inputs, one table: each raises a clear ValueError/TypeError naming the problem, before compilation.

Model-level cases run with the builder and the sampler replaced by spies
that fail the test if reached, so an error raised late (during compilation
or sampling) counts as a failure. Post-fit cases (predict, summary, save
and load) share one tiny fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayeslmm
import bayeslmm.api as api
from bayeslmm import BayesLMM, Prior


def _toy(n=24, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(6)], n // 6)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "g": g,
                         "f": np.tile(["a", "b", "c"], n // 3), "h": np.tile(["u", "v"], n // 2)})


def _with(**cols):
    d = _toy()
    for k, v in cols.items():
        d[k] = v
    return d


D = _toy()
N = len(D)

# (id, callable taking no arguments, exception type, phrase in the message)
MODEL_CASES = [
    # formulas
    ("no-tilde", lambda: BayesLMM("y x + (1|g)", D), ValueError, "~"),
    ("missing-col", lambda: BayesLMM("y ~ z + (1|g)", D), ValueError, "'z'"),
    ("missing-group", lambda: BayesLMM("y ~ x + (1|zz)", D), ValueError, "'zz'"),
    ("missing-response", lambda: BayesLMM("yy ~ x + (1|g)", D), ValueError, "'yy'"),
    ("formula-not-str", lambda: BayesLMM(3, D), TypeError, "formula"),
    ("one-level-group", lambda: BayesLMM("y ~ x + (1|one)", _with(one="a")), ValueError, "level"),
    ("one-level-fixed-factor", lambda: BayesLMM("y ~ one + (1|g)", _with(one="a")), ValueError,
     "contrasts can be applied only to factors with 2 or more levels"),
    ("one-level-fixed-factor-interaction", lambda: BayesLMM("y ~ x*one + (1|g)", _with(one="a")), ValueError,
     "2 or more levels"),
    ("levels-equal-rows", lambda: BayesLMM("y ~ x + (1|id)", _with(id=np.arange(N))), ValueError,
     "number of levels of each grouping factor must be < number of observations"),
    ("nested-identifies-rows", lambda: BayesLMM("y ~ x + (1|g/r)", _with(r=np.tile(np.arange(4), 6))), ValueError,
     "number of observations"),
    ("levels-equal-rows-lognormal", lambda: BayesLMM("y ~ x + (1|id)", _with(id=np.arange(N), y=np.exp(D.y)),
                                                     family="lognormal"), ValueError, "number of observations"),
    ("rank-deficient", lambda: BayesLMM("y ~ x + x2 + (1|g)", _with(x2=2 * D.x)), ValueError, "x2"),
    ("unknown-family", lambda: BayesLMM("y ~ x + (1|g)", D, family="gauss"), ValueError, "gauss"),
    ("bad-na-action", lambda: BayesLMM("y ~ x + (1|g)", D, na_action="omit"), ValueError, "na_action"),
    # data
    ("data-list", lambda: BayesLMM("y ~ x + (1|g)", [1, 2]), TypeError, "DataFrame"),
    ("data-dict", lambda: BayesLMM("y ~ x + (1|g)", {"y": [1]}), TypeError, "DataFrame"),
    ("data-ndarray", lambda: BayesLMM("y ~ x + (1|g)", np.zeros((3, 3))), TypeError, "DataFrame"),
    ("data-empty", lambda: BayesLMM("y ~ x + (1|g)", D.iloc[:0]), ValueError, "empty"),
    ("data-one-row", lambda: BayesLMM("y ~ x + (1|g)", D.iloc[:1]), ValueError, ""),
    ("nan-response", lambda: BayesLMM("y ~ x + (1|g)", _with(y=np.r_[np.nan, D.y[1:]])), ValueError, "'y'"),
    ("inf-predictor", lambda: BayesLMM("y ~ x + (1|g)", _with(x=np.r_[np.inf, D.x[1:]])), ValueError, "'x'"),
    ("nan-group", lambda: BayesLMM("y ~ x + (1|g)", _with(g=[None] + list(D.g[1:]))), ValueError, "'g'"),
    ("all-nan-drop", lambda: BayesLMM("y ~ x + (1|g)", _with(y=np.nan), na_action="drop"), ValueError, "All"),
    ("string-response", lambda: BayesLMM("f ~ x + (1|g)", D), TypeError, "numeric"),
    ("constant-response", lambda: BayesLMM("y ~ x + (1|g)", _with(y=1.0)), ValueError, "constant"),
    ("duplicate-columns", lambda: BayesLMM("y ~ x + (1|g)", pd.concat([D, D[["x"]]], axis=1)), ValueError,
     "duplicate column"),
    ("mixed-type-group", lambda: BayesLMM("y ~ x + (1|m)", _with(m=[1, "1"] * (N // 2))), TypeError, "'m'"),
    ("mixed-type-factor", lambda: BayesLMM("y ~ m + (1|g)", _with(m=[1, "1", 2] * (N // 3))), TypeError,
     "mixes value types"),
    ("datetime-predictor", lambda: BayesLMM("y ~ t + (1|g)", _with(t=pd.date_range("2020", periods=N))), TypeError,
     "datetime"),
    ("huge-predictor", lambda: BayesLMM("y ~ x + (1|g)", _with(x=D.x * 1e300)), ValueError, "magnitude"),
    ("tiny-predictor", lambda: BayesLMM("y ~ x + (1|g)", _with(x=D.x * 1e-300)), ValueError, "magnitude"),
    ("huge-response", lambda: BayesLMM("y ~ x + (1|g)", _with(y=D.y * 1e300)), ValueError, "magnitude"),
    ("complex-predictor", lambda: BayesLMM("y ~ c + (1|g)", _with(c=D.x + 1j)), TypeError, "complex"),
    ("weights-strings", lambda: BayesLMM("y ~ x + (1|g)", D, weights=np.array(["a"] * N)), TypeError, "weights"),
    ("weights-dict", lambda: BayesLMM("y ~ x + (1|g)", D, weights={"a": 1}), TypeError, "weights"),
    ("log-nonpositive", lambda: BayesLMM("log(y) ~ x + (1|g)", D), ValueError, "non-finite"),
    ("nan-in-C-named-column", lambda: BayesLMM("y ~ C + (1|g)", _with(C=np.r_[np.nan, D.x[1:]])), ValueError, "'C'"),
    ("nan-in-I-named-column", lambda: BayesLMM("y ~ I + (1|g)", _with(I=np.r_[np.nan, D.x[1:]])), ValueError, "'I'"),
    ("nan-in-T-named-column", lambda: BayesLMM("y ~ T + (1|g)", _with(T=np.r_[np.nan, D.x[1:]])), ValueError, "'T'"),
    # priors
    ("prior-unparseable", lambda: Prior("normal 0 1"), ValueError, "normal 0 1"),
    ("prior-dist-not-str", lambda: Prior(3), TypeError, "prior dist"),
    ("prior-unknown-dist", lambda: Prior("gaussian(0, 1)"), ValueError, "gaussian"),
    ("prior-unknown-class", lambda: Prior("normal(0, 1)", cls="beta"), ValueError, "beta"),
    ("prior-wrong-arity", lambda: Prior("normal(0)"), ValueError, "2 argument"),
    ("prior-non-numeric", lambda: Prior("normal(a, 1)"), ValueError, "numeric"),
    ("prior-negative-sd", lambda: Prior("normal(0, -1)"), ValueError, "normal(0, -1)"),
    ("prior-zero-sd", lambda: Prior("normal(0, 0)"), ValueError, "positive"),
    ("prior-negative-rate", lambda: Prior("exponential(-1)", cls="sigma"), ValueError, "exponential(-1)"),
    ("prior-negative-half-normal", lambda: Prior("half_normal(-2)", cls="sd"), ValueError, "half_normal(-2)"),
    ("prior-gamma-zero-shape", lambda: Prior("gamma(0, 1)", cls="sigma"), ValueError, "gamma(0, 1)"),
    ("prior-inf", lambda: Prior("normal(0, inf)"), ValueError, "non-finite"),
    ("prior-nan", lambda: Prior("normal(nan, 1)"), ValueError, "non-finite"),
    ("prior-student-df-zero", lambda: Prior("student_t(0, 0, 1)"), ValueError, "positive"),
    ("prior-lkj-zero", lambda: Prior("lkj(0)", cls="cor"), ValueError, "positive"),
    ("prior-no-target", lambda: BayesLMM("y ~ x + (1|g)", D, priors=Prior("normal(0, 1)", coef="zz")), ValueError,
     "matches no parameter"),
    ("prior-duplicate", lambda: BayesLMM("y ~ x + (1|g)", D, priors=[Prior("normal(0, 1)", coef="x"),
                                                                      Prior("normal(0, 2)", coef="x")]),
     ValueError, "Duplicated prior"),
    ("prior-not-prior", lambda: BayesLMM("y ~ x + (1|g)", D, priors=["normal(0,1)"]), TypeError, "Prior"),
    ("prior-positive-on-b", lambda: BayesLMM("y ~ x + (1|g)", D, priors=Prior("exponential(1)")), ValueError,
     "positive"),
    ("prior-lkj-on-b", lambda: BayesLMM("y ~ x + (1|g)", D, priors=Prior("lkj(2)")), ValueError, "lkj"),
    ("prior-flat-on-sd", lambda: BayesLMM("y ~ x + (1|g)", D, priors=Prior("flat()", cls="sd")), ValueError, "flat"),
]


def _fit_kw(**kw):
    return lambda: BayesLMM("y ~ x + (1|g)", D).fit(**kw)


FIT_CASES = [
    ("draws-str", dict(draws="100"), TypeError, "draws"),
    ("draws-zero", dict(draws=0), ValueError, "draws"),
    ("draws-negative", dict(draws=-5), ValueError, "draws"),
    ("draws-float", dict(draws=10.5), TypeError, "draws"),
    ("draws-bool", dict(draws=True), TypeError, "draws"),
    ("tune-negative", dict(tune=-1), ValueError, "tune"),
    ("tune-str", dict(tune="10"), TypeError, "tune"),
    ("chains-zero", dict(chains=0), ValueError, "chains"),
    ("chains-float", dict(chains=2.0), TypeError, "chains"),
    ("chains-none", dict(chains=None), TypeError, "chains"),
    ("target-accept-str", dict(target_accept="0.9"), TypeError, "target_accept"),
    ("target-accept-one", dict(target_accept=1.0), ValueError, "target_accept"),
    ("target-accept-zero", dict(target_accept=0), ValueError, "target_accept"),
    ("target-accept-big", dict(target_accept=80), ValueError, "target_accept"),
    ("target-accept-nan", dict(target_accept=float("nan")), ValueError, "target_accept"),
    ("target-accept-bool", dict(target_accept=True), TypeError, "target_accept"),
    ("seed-str", dict(random_seed="x"), TypeError, "random_seed"),
    ("seed-negative", dict(random_seed=-1), ValueError, "random_seed"),
    ("seed-float", dict(random_seed=1.5), TypeError, "random_seed"),
    ("seed-bool", dict(random_seed=True), TypeError, "random_seed"),
    ("sampler-unknown", dict(sampler="stan"), ValueError, "stan"),
    ("sampler-none", dict(sampler=None), ValueError, "sampler"),
    ("progressbar-str", dict(progressbar="False"), TypeError, "progressbar"),
    ("progressbar-int", dict(progressbar=0), TypeError, "progressbar"),
    ("low-memory-str", dict(low_memory="yes"), TypeError, "low_memory"),
    ("low-memory-pymc", dict(low_memory=True, sampler="pymc"), ValueError, "low_memory"),
    ("marginalize-unknown", dict(marginalize="zz"), ValueError, "zz"),
    ("marginalize-int", dict(marginalize=3), (ValueError, TypeError), "marginalize"),
    ("approximation-unknown", dict(approximation="laplace2"), ValueError, "approximation"),
]
MODEL_CASES += [(f"fit-{cid}", _fit_kw(**kw), exc, phrase) for cid, kw, exc, phrase in FIT_CASES]


class Reached(AssertionError):
    pass


@pytest.fixture
def no_compile(monkeypatch):
    """Replace the stages that compile or sample: reaching them fails the test."""
    def spy(*args, **kwargs):
        raise Reached("an input error was not caught before the model was built")
    monkeypatch.setattr(api, "build_model", spy)
    monkeypatch.setattr(api, "sample", spy)
    monkeypatch.setattr(api, "start_compiling", spy)


@pytest.mark.parametrize("call, exc, phrase", [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_bad_model_input(no_compile, call, exc, phrase):
    with pytest.raises(exc) as info:
        call()
    assert not isinstance(info.value, Reached)
    assert phrase.lower() in str(info.value).lower()


def test_caller_data_not_mutated(no_compile):
    d = _with(one="a")
    before = d.copy()
    with pytest.raises(ValueError):
        BayesLMM("y ~ one + (1|g)", d)
    pd.testing.assert_frame_equal(d, before)


@pytest.fixture(scope="module")
def tiny_fit():
    return BayesLMM("y ~ x + (1|g)", D).fit(draws=30, tune=30, chains=1, random_seed=1, progressbar=False)


def _post_cases(tmp):
    garbage = tmp / "garbage.nc"
    garbage.write_bytes(b"not a netcdf file at all")
    empty = tmp / "empty.nc"
    empty.write_bytes(b"")
    return [
        ("predict-nan-newdata", lambda f: f.predict(newdata=D.assign(x=np.nan)), ValueError, "'x'"),
        ("predict-empty-newdata", lambda f: f.predict(newdata=D.iloc[:0]), ValueError, "empty"),
        ("predict-list-newdata", lambda f: f.predict(newdata=[1, 2]), TypeError, "DataFrame"),
        ("predict-missing-column", lambda f: f.predict(newdata=D.drop(columns="x")), ValueError, "x"),
        ("predict-new-level", lambda f: f.predict(newdata=D.assign(g="new")), ValueError, "new"),
        ("predict-allow-new-str", lambda f: f.predict(newdata=D, allow_new_levels="False"), TypeError,
         "allow_new_levels"),
        ("predict-bad-kind", lambda f: f.predict(kind="median"), ValueError, "median"),
        ("predict-bad-re-formula", lambda f: f.predict(re_formula="~ (1|zz)"), ValueError, "zz"),
        ("predict-seed-str", lambda f: f.predict(kind="response", random_seed="x"), TypeError, "random_seed"),
        ("predict-mixed-type-group", lambda f: f.predict(newdata=D.assign(g=[1, "g1"] * (N // 2)),
                                                         allow_new_levels=True), TypeError, "'g'"),
        ("predict-re-formula-unparseable", lambda f: f.predict(re_formula="~ (1|"), ValueError, "re_formula"),
        ("fixef-prob-big", lambda f: f.fixef(prob=2), ValueError, "prob"),
        ("caterpillar-unknown-factor", lambda f: f.plot_caterpillar("zz"), ValueError, "zz"),
        ("load-not-a-path", lambda f: bayeslmm.load(3), TypeError, "path"),
        ("load-directory", lambda f: bayeslmm.load(tmp), ValueError, "directory"),
        ("summary-prob-big", lambda f: f.summary(prob=1.5), ValueError, "prob"),
        ("summary-prob-zero", lambda f: f.summary(prob=0), ValueError, "prob"),
        ("summary-prob-str", lambda f: f.summary(prob="0.9"), TypeError, "prob"),
        ("load-garbage", lambda f: bayeslmm.load(garbage), ValueError, "garbage.nc"),
        ("load-empty", lambda f: bayeslmm.load(empty), ValueError, "empty.nc"),
        ("load-missing", lambda f: bayeslmm.load(tmp / "nope.nc"), (FileNotFoundError, ValueError), "nope.nc"),
    ]




def test_bad_post_fit_inputs(tiny_fit, tmp_path):
    failures = []
    cases = _post_cases(tmp_path)
    for cid, call, exc, phrase in cases:
        try:
            call(tiny_fit)
        except exc as err:
            if phrase.lower() not in str(err).lower():
                failures.append(f"{cid}: message {str(err)!r} lacks {phrase!r}")
        except Exception as err:  # noqa: BLE001 - the point is to report the wrong type
            failures.append(f"{cid}: {type(err).__name__}: {err}")
        else:
            failures.append(f"{cid}: no error")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 14


def test_case_count():
    assert len(MODEL_CASES) + 14 >= 80


@pytest.mark.parametrize("na_action", ["error", "drop"])
def test_nan_in_weights_array_named_as_the_argument(no_compile, na_action):
    w = np.r_[np.nan, np.ones(N - 1)]
    if na_action == "error":
        with pytest.raises(ValueError) as info:
            BayesLMM("y ~ x + (1|g)", D, weights=w)
        assert "'weights': 1" in str(info.value) and "__weights__" not in str(info.value)
    else:
        with pytest.warns(UserWarning, match="Dropped 1 rows"):
            m = BayesLMM("y ~ x + (1|g)", D, weights=w, na_action="drop")
        # The row with the NaN weight goes, with its weight: the rest keep theirs.
        assert m.design.n == N - 1
        np.testing.assert_array_equal(m.design.weights, np.ones(N - 1))


def test_log_of_nonpositive_response_raises_without_a_numpy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="non-finite"):
            BayesLMM("log(y) ~ x + (1|g)", D)
