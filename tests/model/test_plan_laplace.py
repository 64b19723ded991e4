"""approximation="laplace" in plan resolution: which families, the errors, and "auto"'s cost model (no sampling)."""

import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM
from bayeslmm.model.plan import grad_seconds, laplace_grad_seconds


def _data(n_levels=20, per=5, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_levels), per)
    h = np.tile(np.arange(per), n_levels)
    x = rng.normal(size=g.size)
    u = rng.normal(0, 0.8, n_levels)
    eta = 0.3 + 0.4 * x + u[g]
    return pd.DataFrame(dict(g=g, h=h, x=x, yc=rng.poisson(np.exp(eta)), yb=rng.binomial(1, 1 / (1 + np.exp(-eta))),
                             yg=eta + rng.normal(size=g.size), w=rng.uniform(1, 2, g.size)))


@pytest.mark.parametrize("family, y", [("poisson", "yc"), ("bernoulli", "yb"), ("negbinomial", "yc"),
                                       ("gaussian", "yg")])
def test_laplace_plans_for_each_family(family, y):
    m = BayesLMM(f"{y} ~ x + (1 | g) + (1 | h)", _data(), family=family)
    plan = m.plan("g", approximation="laplace")
    assert plan.marginalized == ("g",) and plan.sampled == ("h",) and plan.approximation == "laplace"
    assert not plan.sufficient and "Laplace approximation" in plan.describe()
    full = m.plan("all", approximation="laplace")
    assert set(full.marginalized) == {"g", "h"} and not full.sufficient


def test_student_refuses_laplace_and_names_the_alternative():
    m = BayesLMM("yg ~ x + (1 | g)", _data(), family="student")
    for plan in ("all", "auto", "none"):
        with pytest.raises(ValueError, match="family='student'.*log-concave.*marginalize='none'"):
            m.plan(plan, approximation="laplace")


def test_bad_approximation_and_weights():
    m = BayesLMM("yc ~ x + (1 | g)", _data(), family="poisson")
    with pytest.raises(ValueError, match="approximation='quadrature' is not an option.*'laplace'"):
        m.plan("all", approximation="quadrature")
    mw = BayesLMM("yc ~ x + (1 | g)", _data(), family="poisson", weights="w")
    with pytest.raises(ValueError, match="does not take weights"):
        mw.plan("all", approximation="laplace")


def test_without_the_approximation_a_non_gaussian_plan_names_the_option():
    m = BayesLMM("yb ~ x + (1 | g)", _data(), family="bernoulli")
    with pytest.raises(ValueError, match="approximation='laplace'"):
        m.plan("g")
    assert m.plan("auto").marginalized == () and m.plan("auto").approximation is None


def test_auto_laplace_uses_the_cost_model():
    """Well-informed levels (200 obs per level): sampling them mixes badly, Laplace on them wins.
    A factor whose levels have one row each and a large Gram cost is not worth a Newton solve per gradient."""
    rich = BayesLMM("yc ~ x + (1 | g)", _data(n_levels=10, per=200), family="poisson")
    plan = rich.plan("auto", approximation="laplace")
    assert plan.marginalized == ("g",) and plan.reason.startswith("auto (laplace)")
    d = rich.design
    # Beyond the fixed overhead, a Newton solve costs K + 1 row passes of the "none" plan or more.
    from bayeslmm.model.plan import _NEWTON_STEPS, _OVERHEAD_S
    extra = laplace_grad_seconds(d, ("g",)) - _OVERHEAD_S
    assert extra >= (_NEWTON_STEPS + 1) * (grad_seconds(d, ()) - _OVERHEAD_S) > 0
    assert laplace_grad_seconds(d, ()) == grad_seconds(d, ())


def test_auto_laplace_can_choose_none():
    """Pure noise between levels: no information per level, so no plan beats "none" by enough."""
    df = _data(n_levels=40, per=2)
    df["yc"] = np.random.default_rng(3).poisson(1.0, len(df))
    m = BayesLMM("yc ~ x + (1 | g)", df, family="poisson")
    from bayeslmm.model.plan import grads_per_draw_factor, level_information
    info = level_information(m.design)
    d = m.design
    want = min([(), ("g",)], key=lambda o: (laplace_grad_seconds(d, o) if o else grad_seconds(d, ()))
               * grads_per_draw_factor(d, o, info))
    assert m.plan("auto", approximation="laplace").marginalized == want


@pytest.mark.parametrize("family, y, formula, per, flagged", [
    ("bernoulli", "yb", "(1 | g)", 20, None),
    ("bernoulli", "yb", "(1 | g)", 12, "'g' (median 12 trials per level)"),
    ("bernoulli", "yb", "(1 + x | g)", 20, "'g' (median 20 trials per level, 2 effects)"),
    ("bernoulli", "yb", "(1 + x | g)", 40, None),
    ("poisson", "yc", "(1 + x | g)", 12, None),
    ("poisson", "yc", "(1 | g)", 5, "'g' (median 5 observations per level)"),
])
def test_laplace_accuracy_warning_counts_per_level_and_effect(family, y, formula, per, flagged):
    from bayeslmm.model.plan import laplace_accuracy_warning

    m = BayesLMM(f"{y} ~ x + {formula}", _data(n_levels=20, per=per), family=family)
    note = laplace_accuracy_warning(m.design, m.plan("all", approximation="laplace"))
    if flagged is None:
        assert note is None, note
    else:
        assert flagged in note and "marginalize='none'" in note, note
    assert laplace_accuracy_warning(m.design, m.plan("none")) is None


def test_run_seconds_counts_gradients_of_the_plans_cost():
    """iterations x steps per iteration x gradients-per-draw factor x the plan's (Laplace or exact) gradient time."""
    from bayeslmm.model.plan import _MIN_PREDICTED_TUNE, _STEPS_PER_ITERATION, grads_per_draw_factor, run_seconds
    m = BayesLMM("yc ~ x + (1 | g) + (1 | h)", _data(), family="poisson")
    d = m.design
    lap, none = m.plan("g", approximation="laplace"), m.plan("none")
    assert run_seconds(d, lap, 1000, 1000) == pytest.approx(2 * run_seconds(d, lap, 500, 500))
    assert run_seconds(d, lap, 300, 200) == pytest.approx(
        500 * _STEPS_PER_ITERATION * grads_per_draw_factor(d, ("g",)) * laplace_grad_seconds(d, ("g",)))
    assert run_seconds(d, none, 300, 200) == pytest.approx(
        500 * _STEPS_PER_ITERATION * grads_per_draw_factor(d, ()) * grad_seconds(d, ()))
    g = BayesLMM("yg ~ x + (1 | g)", _data())
    every = g.plan("all")
    assert run_seconds(g.design, every, 300, 200) == pytest.approx(
        500 * _STEPS_PER_ITERATION * grad_seconds(g.design, ("g",)))
    # A short warm-up's unadapted iterations are not predicted.
    assert run_seconds(g.design, every, _MIN_PREDICTED_TUNE - 1, 10_000) is None
