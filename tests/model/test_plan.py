"""marginalize= resolution and the cost model behind "auto" (no sampling)."""

import pytest

from bayeslmm import BayesLMM
from bayeslmm.model.plan import GRAD_CONSTANTS, grad_seconds, grad_seconds_terms, grads_per_draw_factor
from bayeslmm.simulate import simulate_crossed, simulate_insteval_shaped


@pytest.fixture(scope="module")
def crossed():
    return BayesLMM("y ~ cond + (cond | subj) + (1 | item)", simulate_crossed(20, 10, seed=0)[0])


def test_named_plans(crossed):
    assert crossed.plan("none").marginalized == () and crossed.plan("none").label == "none"
    all_ = crossed.plan("all")
    assert set(all_.marginalized) == {"subj", "item"} and all_.sufficient and all_.label == "all"
    one = crossed.plan("item")
    assert one.marginalized == ("item",) and one.sampled == ("subj",) and not one.sufficient
    assert set(crossed.plan(["item", "subj"]).marginalized) == {"subj", "item"}
    assert "marginalized" in one.describe() and "O(N)" in one.describe()


def test_auto_marginalizes_everything_when_levels_are_well_informed():
    """100 and 200 rows per level: sampling either factor would mix badly, and 'all' costs O(1) in N."""
    m = BayesLMM("y ~ cond + (cond | subj) + (1 | item)", simulate_crossed(20, 10, reps=10, seed=0)[0])
    plan = m.plan("auto")
    assert plan.sufficient and plan.reason.startswith("auto:")


def test_auto_avoids_a_huge_schur_complement():
    """InstEval shape: marginalizing students and lecturers together needs a 1,128+ dense block per gradient."""
    m = BayesLMM("y ~ 1 + (1 | s) + (1 | d) + (1 | dept)", simulate_insteval_shaped(seed=0)[0])
    plan = m.plan("auto")
    assert not {"s", "d"} <= set(plan.marginalized)
    assert "dept" in plan.marginalized   # 5,000 rows per level: the worst factor to sample
    assert grad_seconds(m.design, ("s", "d", "dept")) > 50 * grad_seconds(m.design, plan.marginalized)


def test_cost_model_properties(crossed):
    d = crossed.design
    # sufficient statistics: the all-factor plan's gradient cost does not grow with N
    big = BayesLMM("y ~ cond + (cond | subj) + (1 | item)", simulate_crossed(20, 10, reps=50, seed=0)[0]).design
    assert grad_seconds(big, ("subj", "item")) == pytest.approx(grad_seconds(d, ("subj", "item")))
    # rows mode: the part above the fixed overhead grows with N (50x the rows here)
    over = GRAD_CONSTANTS[0]
    assert grad_seconds(big, ()) - over == pytest.approx(big.n / d.n * (grad_seconds(d, ()) - over))
    assert big.n > 10 * d.n
    # every sampled factor makes mixing worse
    assert grads_per_draw_factor(d, ("subj", "item")) == 1.0
    assert grads_per_draw_factor(d, ()) > grads_per_draw_factor(d, ("item",)) > 1.0


def test_cost_terms_count_rows_and_flops_by_hand(crossed):
    """subj: 20 levels x 2 effects, item: 10 x 1; 2 fixed effects; the terms written out for three plans."""
    d = crossed.design
    n = d.n
    assert grad_seconds_terms(d, ()) == (1.0, n * (2 + 1 + 3), 0.0, 0.0)
    # item sampled: rows mode; block 1 is subj (40 > 10), no dense part
    assert grad_seconds_terms(d, ("subj",)) == (1.0, n * 6, 6 * 20 * 8, 0.0)
    # both: sufficient statistics (40 + 10 effects x (p + 1)), D2 = 10 for item
    assert grad_seconds_terms(d, ("subj", "item")) == pytest.approx(
        (1.0, 50 * 3, 6 * (20 * 8 + 40 * 100 + 1000 / 3), 10.0))
    for plan in [(), ("item",), ("subj", "item")]:
        assert grad_seconds(d, plan) == pytest.approx(
            sum(t * c for t, c in zip(grad_seconds_terms(d, plan), GRAD_CONSTANTS)), rel=1e-12)


def test_a_sampled_factor_costs_something_even_without_information():
    """A factor with no between-level variance still adds M d coordinates: never a free ride."""
    df = simulate_crossed(20, 10, reps=2, sd_item=(0.0, 0.0), seed=1)[0]
    m = BayesLMM("y ~ cond + (1 | subj) + (1 | item)", df)
    from bayeslmm.model.plan import level_information

    assert level_information(m.design)["item"] < 0.5
    assert grads_per_draw_factor(m.design, ("subj",)) >= 2.0
