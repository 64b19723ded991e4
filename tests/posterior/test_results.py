"""Tables are computed from the posterior draws: check every number against ArviZ on the same draws."""

import re
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayeslmm import BayesLMM
from bayeslmm.simulate import simulate_crossed


@pytest.fixture(scope="module")
def fit():
    data, _ = simulate_crossed(n_subj=8, n_item=6, reps=2, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM("y ~ cond + (cond | subj) + (1 | item)", data).fit(
            draws=150, tune=150, chains=2, random_seed=3, marginalize="item", progressbar=False)


def _check_row(row, draws):
    assert row["Estimate"] == pytest.approx(draws.mean())
    assert row["Est.Error"] == pytest.approx(draws.std(ddof=1))
    assert row["l-95% CI"] == pytest.approx(np.quantile(draws, 0.025))
    assert row["u-95% CI"] == pytest.approx(np.quantile(draws, 0.975))
    assert row["Rhat"] == pytest.approx(float(az.rhat(draws)))
    assert row["Bulk_ESS"] == pytest.approx(float(az.ess(draws, method="bulk")))
    assert row["Tail_ESS"] == pytest.approx(float(az.ess(draws, method="tail")))


def test_summary_numbers_match_arviz(fit):
    s = fit.summary()
    post = fit.posterior
    pop = s["Regression Coefficients"]
    for term in ("Intercept", "cond"):
        _check_row(pop.loc[term], np.asarray(post["fixef"].sel(fixef_term=term)))
    _check_row(s["Further Distributional Parameters"].loc["sigma"], np.asarray(post["sigma"]))
    subj = s["~subj (Number of levels: 8)"]
    _check_row(subj.loc["sd(cond)"], np.asarray(post["sd_subj"].sel(subj__effect="cond")))
    _check_row(subj.loc["cor(Intercept,cond)"],
               np.asarray(post["cor_subj"].sel(subj__effect="Intercept", subj__effect_bis="cond")))
    item = s["~item (Number of levels: 6)"]
    _check_row(item.loc["sd(Intercept)"], np.asarray(post["sd_item"].sel(item__effect="Intercept")))
    text = str(s)
    assert "Regression Coefficients" in text and "marginalized item" in text
    assert text.count("Multilevel Hyperparameters:") == 1 and text.count("marginaliz") == 1
    assert list(pop.columns) == ["Estimate", "Est.Error", "l-95% CI", "u-95% CI", "Rhat", "Bulk_ESS", "Tail_ESS"]
    narrow = fit.summary(prob=0.9)["Regression Coefficients"]
    assert narrow.loc["cond", "l-90% CI"] == pytest.approx(
        np.quantile(np.asarray(post["fixef"].sel(fixef_term="cond")), 0.05))
    assert "<table" in s._repr_html_()


def test_diagnostics_run_without_arviz_numba_and_restore_it(monkeypatch):
    from bayeslmm.posterior.results import quiet_diagnostics

    monkeypatch.setattr(az.Numba, "numba_flag", True)
    draws = np.random.default_rng(0).normal(size=(2, 300))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_diagnostics():
            assert az.Numba.numba_flag is False
            warnings.warn("silenced", UserWarning)
            plain = float(az.rhat(draws))
    assert not seen
    assert az.Numba.numba_flag is True
    assert plain == pytest.approx(float(az.rhat(draws)), rel=1e-12)


def test_accessors(fit):
    post = fit.posterior
    fe = fit.fixef()
    assert list(fe.index) == ["Intercept", "cond"] and list(fe.columns) == ["Estimate", "Est.Error", "Q2.5", "Q97.5"]
    r = fit.ranef()
    assert set(r) == {"subj", "item"} and r["subj"].shape == (8, 8)
    assert r["subj"].index.name == "subj" and list(r["subj"].columns.names) == ["effect", "stat"]
    assert list(r["subj"]["cond"].columns) == ["Estimate", "Est.Error", "Q2.5", "Q97.5"]
    draws = np.asarray(post["r_item"].sel(item__effect="Intercept")).reshape(-1, 6)
    tab = r["item"]["Intercept"]
    np.testing.assert_allclose(tab["Estimate"], draws.mean(0))
    np.testing.assert_allclose(tab["Est.Error"], draws.std(0, ddof=1))
    np.testing.assert_allclose(tab["Q2.5"], np.quantile(draws, 0.025, axis=0))
    np.testing.assert_allclose(tab["Q97.5"], np.quantile(draws, 0.975, axis=0))
    assert list(tab.index) == list(np.asarray(post["item__level"]))
    assert fit.ranef(summary=False)["subj"].dims[-2:] == ("subj__level", "subj__effect")
    c = fit.coef()
    expected = (post["r_subj"].sel(subj__effect="cond") + post["fixef"].sel(fixef_term="cond"))
    ex = np.asarray(expected.transpose("chain", "draw", "subj__level")).reshape(-1, 8)
    np.testing.assert_allclose(c["subj"]["cond"]["Estimate"], ex.mean(0))
    np.testing.assert_allclose(c["subj"]["cond"]["Q97.5"], np.quantile(ex, 0.975, axis=0))
    np.testing.assert_allclose(c["item"]["Intercept"]["Estimate"],
                               (draws + np.asarray(post["fixef"].sel(fixef_term="Intercept")).reshape(-1, 1)).mean(0))
    vc = fit.varcorr(layout="long")
    assert vc.loc[("Residual", "sigma"), "Estimate"] == pytest.approx(float(post["sigma"].mean()))
    assert vc.loc[("subj", "cor(Intercept,cond)"), "Estimate"] == pytest.approx(
        float(post["cor_subj"].sel(subj__effect="Intercept", subj__effect_bis="cond").mean()))
    draws = fit.fixef(summary=False)
    assert draws.dims == ("chain", "draw", "fixef_term")


def test_recovered_effects_have_unmarginalized_names(fit):
    assert fit.posterior["r_item"].dims == ("chain", "draw", "item__level", "item__effect")
    assert "L_item" not in fit.posterior


def test_convergence_warnings(fit, monkeypatch):
    from bayeslmm.posterior.results import LMMFit

    # One problem at a time: pytest.warns re-emits the warnings it does not match.
    monkeypatch.setattr(LMMFit, "max_rhat", lambda self: 1.0)
    monkeypatch.setattr(LMMFit, "n_divergences", property(lambda self: 7))
    with pytest.warns(UserWarning, match="There were 7 divergent transitions") as rec:
        fit.check_convergence()
    assert len(rec) == 1 and rec[0].filename == __file__  # raised once, at the caller's line
    monkeypatch.setattr(LMMFit, "n_divergences", property(lambda self: 0))
    monkeypatch.setattr(LMMFit, "max_rhat", lambda self: 1.2)
    with pytest.warns(UserWarning, match="Rhat 1.200 > 1.01") as rec:
        fit.check_convergence()
    assert len(rec) == 1
    with warnings.catch_warnings():  # building a fit object (as load does) warns of nothing
        warnings.simplefilter("error")
        LMMFit(fit.idata, fit.design, fit.priors, fit.plan, fit.model, fit.sampler, fit.timings)


def test_singular_note():
    """An SD whose posterior piles up at 0 gets lme4's 'singular fit' counterpart in the summary."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(40)], 10), "y": rng.normal(size=400)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesLMM("y ~ 1 + (1 | g)", df).fit(draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    assert any("piles up near 0" in n for n in fit.summary().notes)


def test_fitted_and_predict_tables(fit):
    data, _ = simulate_crossed(n_subj=8, n_item=6, reps=2, seed=5)
    new = data.iloc[[3, 0, 7]]
    draws = fit.predict(new, summary=False, kind="mean")
    tab = fit.fitted(new)
    assert list(tab.columns) == ["Estimate", "Est.Error", "Q2.5", "Q97.5"] and len(tab) == draws.shape[1]
    np.testing.assert_allclose(tab["Estimate"], draws.mean(0))
    np.testing.assert_allclose(tab["Est.Error"], draws.std(0, ddof=1))
    np.testing.assert_allclose(tab["Q2.5"], np.quantile(draws, 0.025, axis=0))
    np.testing.assert_allclose(tab["Q97.5"], np.quantile(draws, 0.975, axis=0))
    assert list(tab.index) == list(new.index)
    assert len(fit.fitted()) == len(data)
    np.testing.assert_array_equal(fit.fitted(new, summary=False), draws)
    np.testing.assert_allclose(fit.fitted(new, scale="linear", summary=False),
                               fit.predict(new, summary=False, kind="link"))
    y = fit.predict(new, summary=False, kind="response", random_seed=4)
    pt = fit.predict_table(new, random_seed=4, prob=0.9)
    np.testing.assert_allclose(pt["Q5"], np.quantile(y, 0.05, axis=0))
    with pytest.raises(ValueError, match="scale"):
        fit.fitted(scale="mu")


def test_bayes_R2_by_hand(fit):
    data, _ = simulate_crossed(n_subj=8, n_item=6, reps=2, seed=5)
    y = data["y"].to_numpy()
    for re_formula in (None, "NA"):
        mu = fit.predict(summary=False, re_formula=re_formula, kind="mean")
        vm, ve = np.var(mu, axis=1, ddof=1), np.var(y - mu, axis=1, ddof=1)
        r2 = fit.bayes_R2(re_formula=re_formula, summary=False)
        np.testing.assert_allclose(r2, vm / (vm + ve))
        tab = fit.bayes_R2(re_formula=re_formula)
        assert tab.loc["R2", "Estimate"] == pytest.approx(r2.mean())
        assert tab.loc["R2", "Q97.5"] == pytest.approx(np.quantile(r2, 0.975))
    assert fit.bayes_R2(re_formula="NA")["Estimate"].iloc[0] < fit.bayes_R2()["Estimate"].iloc[0]


def test_html_repr(fit):
    html = fit._repr_html_()
    # the facts table, one per summary section, the priors
    assert html.count("<table") == len(fit.summary().tables) + 2
    assert "Multilevel Hyperparameters" in html and "LMMFit" in html
    colours = re.findall(r"(?:background|color)\s*:\s*([^;'\"]+)", html)
    assert colours and set(c.strip() for c in colours) <= {"inherit", "transparent"}
