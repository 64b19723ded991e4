"""Predictions against hand computation, re_formula, new levels, seeding; posterior and prior predictive."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayeslmm import BayesLMM
from bayeslmm.simulate import simulate_crossed

FORMULA = "y ~ cond + (cond | subj) + (1 | item)"


@pytest.fixture(scope="module")
def data():
    return simulate_crossed(n_subj=8, n_item=6)[0]


@pytest.fixture(scope="module")
def fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM(FORMULA, data).fit(draws=100, tune=100, chains=2, marginalize="none",
                                           random_seed=1, progressbar=False)


def _flat(da):
    """(chain, draw, ...) -> (chain * draw, ...), chain-major like predict."""
    return da.stack(s=("chain", "draw")).transpose("s", ...).values


def _by_hand(fit, df, subj=("Intercept", "cond"), item=("Intercept",)):
    """X beta + gathered r, through xarray label selection (independent of the design's indices)."""
    post = fit.posterior
    fe = _flat(post["fixef"])
    eta = fe[:, [0]] + fe[:, [1]] * df["cond"].to_numpy()
    z = {"Intercept": np.ones(len(df)), "cond": df["cond"].to_numpy()}
    for name, effects in (("subj", subj), ("item", item)):
        r = post[f"r_{name}"].sel({f"{name}__level": xr.DataArray(df[name].to_numpy(), dims="obs")})
        for e in effects:
            eta = eta + _flat(r.sel({f"{name}__effect": e})) * z[e]
    return eta


def test_matches_hand_computation(fit, data):
    link = fit.predict(summary=False, kind="link")
    assert link.shape == (200, len(data))
    np.testing.assert_allclose(link, _by_hand(fit, data), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fit.predict(summary=False, kind="mean"), link)  # gaussian: mean = link
    np.testing.assert_allclose(fit.predict(summary=False, kind="mean", newdata=data.iloc[::-1]), link[:, ::-1])


@pytest.mark.parametrize("re_formula, subj, item", [
    ("NA", (), ()),
    ("~0", (), ()),
    ("~ 1", (), ()),
    (np.nan, (), ()),
    ("~ (1 | subj)", ("Intercept",), ()),
    ("~ (0 + cond | subj)", ("cond",), ()),
    ("~ (cond || subj)", ("Intercept", "cond"), ()),
    ("~ (1 | item)", (), ("Intercept",)),
    ("~ cond + (1 | subj) + (1 | item)", ("Intercept",), ("Intercept",)),
])
def test_re_formula(fit, data, re_formula, subj, item):
    new = data.head(7)
    np.testing.assert_allclose(fit.predict(summary=False, newdata=new, re_formula=re_formula, kind="link"),
                               _by_hand(fit, new, subj, item), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("re_formula, msg", [
    ("~ (1 | nope)", "factor 'nope'"),
    ("~ (x | subj)", r"effect\(s\) \['x'\] of 'subj'"),
    ("(1 | subj)", "start with '~'"),
])
def test_re_formula_errors(fit, re_formula, msg):
    with pytest.raises(ValueError, match=msg):
        fit.predict(summary=False, kind="mean", re_formula=re_formula)


def test_unseen_levels_raise(fit, data):
    new = data.head(3).assign(subj=["s000", "new1", "new2"])
    with pytest.raises(ValueError, match=r"'subj' not seen in training: 'new1', 'new2'"):
        fit.predict(summary=False, kind="mean", newdata=new)
    # Dropping the factor through re_formula makes its levels irrelevant.
    assert fit.predict(summary=False, kind="mean", newdata=new, re_formula="~ (1 | item)").shape == (200, 3)
    with pytest.raises(ValueError, match="lacks grouping column"):
        fit.predict(summary=False, kind="mean", newdata=data.drop(columns="item").head(2))


def test_new_levels_drawn_from_group_distribution(fit, data):
    n_new = 200
    new = pd.DataFrame({"cond": 0.5, "subj": [f"new{i}" for i in range(n_new)], "item": "i000"})
    eta = fit.predict(summary=False, newdata=new, re_formula="~ (cond | subj)", allow_new_levels=True, kind="link",
                      random_seed=5)
    fixed = fit.predict(summary=False, newdata=new, re_formula="NA", kind="link")
    post = fit.posterior
    sd = _flat(post["sd_subj"])
    rho = _flat(post["cor_subj"].sel(subj__effect="Intercept", subj__effect_bis="cond"))
    # u0 + 0.5 u1 ~ N(0, sd0^2 + sd1^2 / 4 + rho sd0 sd1) in each draw.
    scale = np.sqrt(sd[:, 0] ** 2 + 0.25 * sd[:, 1] ** 2 + rho * sd[:, 0] * sd[:, 1])
    z = (eta - fixed) / scale[:, None]
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    # Rows of one new level share its effect; a known level keeps its posterior draws.
    two = pd.DataFrame({"cond": [0.5, 0.5, 0.5], "subj": ["newA", "newA", "s001"], "item": "i000"})
    p = fit.predict(summary=False, newdata=two, allow_new_levels=True, kind="link", random_seed=1)
    np.testing.assert_array_equal(p[:, 0], p[:, 1])
    np.testing.assert_allclose(p[:, 2], _by_hand(fit, two.iloc[[2]])[:, 0])


def _subject_effects(fit, newdata):
    """Per draw, the subject-effect part of eta for ``newdata``: link with subj's effects minus without."""
    kw = dict(summary=False, newdata=newdata, allow_new_levels=True, kind="link", random_seed=4)
    return (fit.predict(re_formula="~ (cond | subj)", **kw) - fit.predict(re_formula="NA", **kw))


def test_new_levels_by_brms_uncertainty_and_old_levels(fit, data):
    """brms's other rules: per draw a trained level's draw ("uncertainty"), or one trained level's draws."""
    levels = sorted(data["subj"].unique())
    trained = _subject_effects(fit, pd.DataFrame({"cond": 0.5, "subj": levels, "item": "i000"}))  # (S, n_levels)
    new = pd.DataFrame({"cond": 0.5, "subj": ["newA", "newB", "newA"], "item": "i000"})
    for rule in ("uncertainty", "old_levels"):
        kw = dict(summary=False, newdata=new, allow_new_levels=True, kind="link", random_seed=4,
                  sample_new_levels=rule)
        u = fit.predict(re_formula="~ (cond | subj)", **kw) - fit.predict(re_formula="NA", **kw)
        np.testing.assert_array_equal(u[:, 0], u[:, 2])              # rows of one new level share its effect
        # Which trained level each draw of each new level copies (exactly one matches).
        match = np.isclose(u[:, :2, None], trained[:, None, :], rtol=0, atol=1e-12)
        assert (match.sum(axis=2) >= 1).all(), rule
        source = match.argmax(axis=2)                                  # (S, 2)
        n_sources = [len(np.unique(source[:, k])) for k in range(2)]
        if rule == "old_levels":
            assert n_sources == [1, 1]
        else:
            assert min(n_sources) > len(levels) // 2                   # a different level from draw to draw
            counts = np.bincount(source[:, 0], minlength=len(levels))
            assert counts.min() > 0.5 * len(source) / len(levels)      # about uniform over the trained levels


def test_seeded_reproducible(fit, data):
    new = data.head(5).assign(subj="brand_new")
    kw = dict(newdata=new, allow_new_levels=True, kind="response")
    a, b = fit.predict(summary=False, random_seed=11, **kw), fit.predict(summary=False, random_seed=11, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, fit.predict(summary=False, random_seed=12, **kw))
    y = fit.predict(summary=False, kind="response", random_seed=3)
    resid = (y - fit.predict(summary=False, kind="link")) / _flat(fit.posterior["sigma"])[:, None]
    assert abs(resid.mean()) < 0.05 and abs(resid.std() - 1) < 0.05


def test_bad_arguments(fit, data):
    with pytest.raises(ValueError, match="kind must be"):
        fit.predict(summary=False, kind="epred")
    with pytest.raises(ValueError, match="sample_new_levels"):
        fit.predict(summary=False, kind="mean", sample_new_levels="random")
    with pytest.raises(TypeError, match="DataFrame"):
        fit.predict(summary=False, kind="mean", newdata=data.to_dict())


def test_posterior_predictive(fit, data):
    idata = fit.posterior_predictive(random_seed=2)
    assert idata.posterior_predictive["y"].dims == ("chain", "draw", "obs")
    assert idata.posterior_predictive["y"].shape == (2, 100, len(data))
    np.testing.assert_allclose(idata.observed_data["y"].values, data["y"].to_numpy())
    first = idata.posterior_predictive["y"].values.copy()
    fit.posterior_predictive(random_seed=2)       # replaces the groups, same seed gives the same draws
    np.testing.assert_array_equal(fit.idata.posterior_predictive["y"].values, first)


def test_prior_predictive(data):
    model = BayesLMM(FORMULA, data)
    a = model.prior_predictive(draws=40, random_seed=4)
    assert {"prior", "prior_predictive"} <= set(a.groups())
    assert a.prior_predictive["y"].dims == ("chain", "draw", "obs")
    assert a.prior_predictive["y"].shape == (1, 40, len(data))
    assert {"fixef", "sd_subj", "cor_subj", "sigma", "r_subj", "r_item"} <= set(a.prior.data_vars)
    b = model.prior_predictive(draws=40, random_seed=4)
    np.testing.assert_array_equal(a.prior_predictive["y"].values, b.prior_predictive["y"].values)
    with pytest.raises(ValueError, match="draws"):
        model.prior_predictive(draws=0)


@pytest.mark.parametrize("formula, column", [("y ~ log(x) + (1 | g)", "log(x)"), ("y ~ 1 + (log(x) | g)", "log(x)")])
def test_newdata_whose_transformation_is_not_finite_is_refused(formula, column):
    from bayeslmm import build_design
    from bayeslmm.posterior.predict import prediction_rows

    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.uniform(1, 3, 40), "g": np.repeat(list("abcd"), 10), "y": rng.normal(size=40)})
    design = build_design(formula, d)
    ok = prediction_rows(design, d.iloc[:3], None, False)
    assert np.isfinite(ok.X).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"not finite on 2 row\(s\) of newdata.*" + re.escape(repr(column))):
            prediction_rows(design, d.iloc[:4].assign(x=[-1.0, 2.0, 0.0, 1.5]), None, False)
