"""conditional_effects, emmeans and contrasts: every number against a hand computation on the same draws.

The reference for each grid point is the fixed-effects row written by hand
(Intercept, x, cond[b], g[v], cond[b]:g[v]) times the draws of ``fixef``,
plus the subject's drawn effect where group effects are included.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.special import expit  # noqa: E402

MAD = 1.4826


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _beta(fit):
    a = np.asarray(fit.posterior["fixef"])
    return a.reshape(-1, a.shape[-1])


def _row(fit, x, cond="a", g="u"):
    vals = {"Intercept": 1.0, "x": x, "cond[b]": float(cond == "b"), "g[v]": float(g == "v")}
    vals["cond[b]:g[v]"] = vals["cond[b]"] * vals["g[v]"]
    return np.array([vals[n] for n in fit.design.fixed_names])


def _brms_summary(draws):
    med = np.median(draws)
    return med, MAD * np.median(np.abs(draws - med)), np.quantile(draws, 0.025), np.quantile(draws, 0.975)


def _data(fit):
    return fit.design.fixed_matrix.data


# --- conditional_effects ------------------------------------------------------------

def test_numeric_effect_matches_hand_rows(gaussian_fit):
    fit = gaussian_fit
    ce = fit.conditional_effects("x", plot=False, resolution=7)
    df = ce["x"]
    x = _data(fit)["x"]
    assert np.allclose(df["x"], np.linspace(x.min(), x.max(), 7))
    assert (df["cond"] == "a").all() and (df["g"] == "u").all()
    beta = _beta(fit)
    for i in (0, 3, 6):
        draws = beta @ _row(fit, df["x"].iloc[i])
        assert np.allclose(df.loc[i, ["estimate__", "se__", "lower__", "upper__"]].to_numpy(float),
                           _brms_summary(draws))


def test_factor_interaction_holds_x_at_its_mean(gaussian_fit):
    fit = gaussian_fit
    df = fit.conditional_effects("cond:g", plot=False)["cond:g"]
    xbar = _data(fit)["x"].mean()
    assert np.allclose(df["x"], xbar) and len(df) == 4
    beta = _beta(fit)
    for _, r in df.iterrows():
        draws = beta @ _row(fit, xbar, r["cond"], r["g"])
        assert np.allclose([r["estimate__"], r["se__"], r["lower__"], r["upper__"]], _brms_summary(draws))


def test_numeric_by_factor_gives_a_curve_per_level(gaussian_fit):
    fit = gaussian_fit
    ce = fit.conditional_effects("x:cond", resolution=5, robust=False)
    df = ce["x:cond"]
    assert sorted(df["effect2__"].unique()) == ["a", "b"] and len(df) == 10
    beta = _beta(fit)
    r = df.iloc[-1]
    draws = beta @ _row(fit, r["x"], r["cond"])
    assert np.isclose(r["estimate__"], draws.mean()) and np.isclose(r["se__"], draws.std(ddof=1))
    fig = ce.figures["x:cond"]
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "log(rt)"
    assert len(ax.get_lines()) == 2
    assert ax.get_legend().get_title().get_text() == "cond"


def test_int_conditions_set_the_moderator_values(gaussian_fit):
    fit = gaussian_fit
    beta = _beta(fit)
    x = _data(fit)["x"]
    default = fit.conditional_effects("cond:x", plot=False)["cond:x"]
    # brms's default for a numeric moderator: mean - SD, mean, mean + SD
    assert np.allclose(sorted(default["x"].unique()), [x.mean() - x.std(), x.mean(), x.mean() + x.std()])
    ce = fit.conditional_effects(["cond:x", "x:cond"], int_conditions={"x": [-1, 0, 2.5], "cond": ["b"]},
                                 resolution=4)
    df = ce["cond:x"]
    assert sorted(df["x"].unique()) == [-1, 0, 2.5] and len(df) == 6
    for _, r in df.iterrows():
        draws = beta @ _row(fit, r["x"], r["cond"])
        assert np.allclose([r["estimate__"], r["se__"], r["lower__"], r["upper__"]], _brms_summary(draws))
    assert (ce["x:cond"]["cond"] == "b").all() and len(ce["x:cond"]) == 4
    ax = ce.figures["cond:x"].axes[0]
    assert ax.get_xlabel() == "cond" and ax.get_legend().get_title().get_text() == "x"
    # the largest moderator value first, as brms's legend
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2.5", "0", "-1"]
    # the same rows through predict() on the same grid and draws
    grid = df[["x", "cond", "g"]].reset_index(drop=True)
    pred = fit.fitted(grid, re_formula="NA", summary=False)
    assert np.allclose(df["estimate__"].to_numpy(), np.median(pred, axis=0))
    # A function of the training values, as brms applies it.
    q = fit.conditional_effects("cond:x", int_conditions={"x": lambda v: np.quantile(v, [0.1, 0.9])},
                                plot=False)["cond:x"]
    assert np.allclose(sorted(q["x"].unique()), np.quantile(x, [0.1, 0.9]))


def test_spaghetti_keeps_individual_draws(gaussian_fit):
    fit = gaussian_fit
    beta = _beta(fit)
    ce = fit.conditional_effects("x:cond", resolution=5, spaghetti=True, ndraws=7, random_seed=3)
    sp = ce.spaghetti["x:cond"]
    assert len(sp) == 7 * 10 and sp["sample__"].nunique() == 7
    for _, r in sp.sample(6, random_state=0).iterrows():
        assert np.isclose(r["estimate__"], beta[int(r["sample__"])] @ _row(fit, r["x"], r["cond"]))
    ax = ce.figures["x:cond"].axes[0]
    assert len(ax.collections) == 0  # lines of draws instead of bands
    assert len(ax.get_lines()) == 2 * 7 + 2 and ax.get_xlabel() == "x"
    assert not fit.conditional_effects("cond", spaghetti=True, plot=False).spaghetti  # brms: numeric only


def test_numeric_by_numeric_interaction(tmp_path):
    """x:z with z at brms's mean - SD, mean, mean + SD: each curve is fitted() on the same grid and draws."""
    import warnings

    from bayeslmm import BayesLMM

    rng = np.random.default_rng(7)
    n = 120
    df = pd.DataFrame({"x": rng.normal(0, 1, n), "z": rng.normal(2, 0.5, n), "subj": np.arange(n) % 8})
    df["y"] = 1 + 0.5 * df.x - 0.3 * df.z + 0.8 * df.x * df.z + rng.normal(0, 0.5, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes at 150 draws are not under test here
        fit = BayesLMM("y ~ x * z + (1 | subj)", df).fit(chains=1, draws=150, tune=150, random_seed=2,
                                                         progressbar=False)
    ce = fit.conditional_effects("x:z", resolution=9)
    out = ce["x:z"]
    z = df["z"]
    assert np.allclose(sorted(out["z"].unique()), [z.mean() - z.std(), z.mean(), z.mean() + z.std()])
    pred = fit.fitted(out[["x", "z"]].reset_index(drop=True), re_formula="NA", summary=False)
    assert np.allclose(out["estimate__"], np.median(pred, axis=0))
    assert np.allclose(out["lower__"], np.quantile(pred, 0.025, axis=0))
    ax = ce.figures["x:z"].axes[0]
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y" and ax.get_legend().get_title().get_text() == "z"
    assert len(ax.get_lines()) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"{v:.3g}" for v in sorted(out["z"].unique(), reverse=True)]
    path = tmp_path / "ce_xz.png"
    ce.figures["x:z"].savefig(path, dpi=80)
    assert path.stat().st_size > 5000


def test_default_effects_are_main_effects_then_interactions(gaussian_fit):
    ce = gaussian_fit.conditional_effects()
    assert list(ce) == ["x", "cond", "g", "cond:g"]
    assert set(ce.figures) == set(ce) and all(isinstance(f, Figure) for f in ce.figures.values())
    ax = ce.figures["cond"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert ax.get_ylabel() == "log(rt)"


def test_group_effects_of_a_given_level(gaussian_fit):
    fit = gaussian_fit
    cond = pd.DataFrame({"subj": ["s3"]})
    df = fit.conditional_effects("cond", conditions=cond, re_formula=None, plot=False)["cond"]
    r = np.asarray(fit.posterior["r_subj"].sel(subj__level="s3", subj__effect="Intercept")).reshape(-1)
    draws = _beta(fit) @ _row(fit, _data(fit)["x"].mean(), "b") + r
    assert np.allclose(df.iloc[1][["estimate__", "lower__", "upper__"]].to_numpy(float),
                       np.array(_brms_summary(draws))[[0, 2, 3]])
    assert (df["cond__"] == "subj = s3").all()


def test_new_level_widens_the_band(gaussian_fit):
    """re_formula=None without a subject: one new subject per draw, so the band includes sd(subj)."""
    fit = gaussian_fit
    no_re = fit.conditional_effects("cond", plot=False)["cond"]
    new = fit.conditional_effects("cond", re_formula=None, plot=False, random_seed=1)["cond"]
    assert (new["upper__"] - new["lower__"] > no_re["upper__"] - no_re["lower__"]).all()
    again = fit.conditional_effects("cond", re_formula=None, plot=False, random_seed=1)["cond"]
    assert np.array_equal(new["estimate__"], again["estimate__"])


def test_conditions_rows_are_panels(gaussian_fit):
    cond = pd.DataFrame({"g": ["u", "v"], "cond__": ["group u", "group v"]})
    ce = gaussian_fit.conditional_effects("x", conditions=cond, resolution=4)
    df = ce["x"]
    assert list(df["cond__"].unique()) == ["group u", "group v"]
    beta = _beta(gaussian_fit)
    r = df[df["cond__"] == "group v"].iloc[0]
    assert np.isclose(r["estimate__"], np.median(beta @ _row(gaussian_fit, r["x"], "a", "v")))
    fig = ce.figures["x"]
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ["group u", "group v"]


def test_posterior_predict_is_wider_than_epred(gaussian_fit):
    fit = gaussian_fit
    epred = fit.conditional_effects("cond", plot=False)["cond"]
    pred = fit.conditional_effects("cond", method="posterior_predict", plot=False, random_seed=2)["cond"]
    sigma = np.median(np.asarray(fit.posterior["sigma"]))
    assert (pred["upper__"] - pred["lower__"] > 2 * 1.9 * sigma).all()
    assert (pred["upper__"] - pred["lower__"] > epred["upper__"] - epred["lower__"]).all()


def test_bernoulli_epred_is_the_inverse_logit(bernoulli_fit):
    fit = bernoulli_fit
    df = fit.conditional_effects("cond", plot=False)["cond"]
    beta = _beta(fit)
    xbar = _data(fit)["x"].mean()
    names = fit.design.fixed_names
    for i, level in enumerate(["a", "b"]):
        row = np.array([{"Intercept": 1.0, "x": xbar, "cond[b]": float(level == "b")}[n] for n in names])
        draws = expit(beta @ row)
        assert np.allclose(df.iloc[i][["estimate__", "se__", "lower__", "upper__"]].to_numpy(float),
                           _brms_summary(draws))
    ce = fit.conditional_effects("x", resolution=20)
    assert ce.figures["x"].axes[0].get_ylabel() == "y"
    assert ((ce["x"]["lower__"] >= 0) & (ce["x"]["upper__"] <= 1)).all()


def test_png_written(gaussian_fit, tmp_path):
    ce = gaussian_fit.conditional_effects("x:cond", resolution=30)
    path = tmp_path / "ce.png"
    ce.figures["x:cond"].savefig(path, dpi=80)
    assert path.stat().st_size > 5000


@pytest.mark.parametrize("kwargs, err, text", [
    ({"effects": "nope"}, ValueError, "'nope'"),
    ({"effects": "x:cond:g"}, ValueError, "3 variables"),
    ({"effects": 3}, TypeError, "effects"),
    ({"conditions": {"g": "u"}}, TypeError, "conditions"),
    ({"method": "fitted"}, ValueError, "'fitted'"),
    ({"prob": 1.5}, ValueError, "prob"),
    ({"re_formula": "~ (1 | item)"}, ValueError, "'item'"),
    ({"int_conditions": {"zz": [1]}}, ValueError, "'zz'"),
    ({"int_conditions": {"cond": ["c"]}}, ValueError, r"\['c'\]"),
    ({"int_conditions": {"x": ["low"]}}, TypeError, "'x'"),
    ({"int_conditions": {"x": []}}, ValueError, "empty"),
    ({"int_conditions": [1, 2]}, TypeError, "int_conditions"),
    ({"ndraws": 0}, ValueError, "ndraws"),
])
def test_bad_arguments(gaussian_fit, kwargs, err, text):
    with pytest.raises(err, match=text):
        gaussian_fit.conditional_effects(plot=False, **kwargs)


# --- emmeans and contrasts ----------------------------------------------------------

def _cells(fit):
    """Per-draw link-scale means of the 2 x 2 cells at mean x: dict (cond, g) -> draws."""
    beta, xbar = _beta(fit), _data(fit)["x"].mean()
    return {(c, g): beta @ _row(fit, xbar, c, g) for c in "ab" for g in "uv"}


def _summary(draws):
    return np.array([draws.mean(), draws.std(ddof=1), np.quantile(draws, 0.025), np.quantile(draws, 0.975)])


def test_emmeans_average_cells_with_equal_weights(gaussian_fit):
    fit = gaussian_fit
    cells = _cells(fit)
    em = fit.emmeans("cond")
    assert list(em.columns) == ["cond", "Estimate", "Est.Error", "Q2.5", "Q97.5"]
    for i, c in enumerate("ab"):
        hand = (cells[(c, "u")] + cells[(c, "v")]) / 2  # equal weights, though the cells are unbalanced
        assert np.allclose(em.iloc[i, 1:].to_numpy(float), _summary(hand))
    by = fit.emmeans("cond", by="g")
    assert list(by["g"]) == ["u", "u", "v", "v"] and list(by["cond"]) == ["a", "b", "a", "b"]
    for _, r in by.iterrows():
        assert np.allclose(r.iloc[2:].to_numpy(float), _summary(cells[(r["cond"], r["g"])]))


def test_contrasts_methods(gaussian_fit):
    fit = gaussian_fit
    cells = _cells(fit)
    a = (cells[("a", "u")] + cells[("a", "v")]) / 2
    b = (cells[("b", "u")] + cells[("b", "v")]) / 2
    pw = fit.contrasts("cond")
    assert list(pw["contrast"]) == ["a - b"]
    assert np.allclose(pw.iloc[0, 1:5].to_numpy(float), _summary(a - b))
    assert np.isclose(pw["Post.Prob"].iloc[0], np.mean(a - b > 0))
    rev = fit.contrasts("cond", method="revpairwise")
    assert list(rev["contrast"]) == ["b - a"] and np.isclose(rev["Estimate"].iloc[0], (b - a).mean())
    assert np.isclose(rev["Post.Prob"].iloc[0], np.mean(b - a > 0))
    custom = fit.contrasts(["cond", "g"], method={"interaction": [1, -1, -1, 1]})
    inter = cells[("a", "u")] - cells[("a", "v")] - cells[("b", "u")] + cells[("b", "v")]
    assert np.allclose(custom.iloc[0, 1:5].to_numpy(float), _summary(inter))
    tvc = fit.contrasts("g", method="trt.vs.ctrl", by="cond")
    assert list(tvc["cond"]) == ["a", "b"] and list(tvc["contrast"]) == ["v - u", "v - u"]
    assert np.isclose(tvc["Estimate"].iloc[1], (cells[("b", "v")] - cells[("b", "u")]).mean())


def test_emmeans_numeric_spec_at_values(gaussian_fit):
    fit = gaussian_fit
    em = fit.emmeans("x", at={"x": [0.0, 2.0]})
    beta = _beta(fit)
    hand = np.mean([beta @ _row(fit, 2.0, c, g) for c in "ab" for g in "uv"], axis=0)
    assert np.allclose(em.iloc[1, 1:].to_numpy(float), _summary(hand))
    sub = fit.emmeans("cond", at={"g": ["v"]})
    assert np.isclose(sub["Estimate"].iloc[0], _cells(fit)[("a", "v")].mean())


def test_bernoulli_emmeans_back_transform(bernoulli_fit):
    fit = bernoulli_fit
    beta, xbar = _beta(fit), _data(fit)["x"].mean()
    names = fit.design.fixed_names
    eta = {c: beta @ np.array([{"Intercept": 1.0, "x": xbar, "cond[b]": float(c == "b")}[n] for n in names])
           for c in "ab"}
    resp = fit.emmeans("cond")
    link = fit.emmeans("cond", type="link")
    assert np.allclose(resp.iloc[1, 1:].to_numpy(float), _summary(expit(eta["b"])))
    assert np.allclose(link.iloc[1, 1:].to_numpy(float), _summary(eta["b"]))
    con = fit.contrasts("cond", method="revpairwise", type="link")
    assert np.isclose(con["Estimate"].iloc[0], (eta["b"] - eta["a"]).mean())


@pytest.mark.parametrize("call, err, text", [
    (lambda f: f.emmeans("subj"), ValueError, "'subj'"),
    (lambda f: f.emmeans("cond", by="cond"), ValueError, "share"),
    (lambda f: f.emmeans("cond", at={"g": ["w"]}), ValueError, "'w'"),
    (lambda f: f.emmeans("cond", type="probability"), ValueError, "'probability'"),
    (lambda f: f.emmeans(["cond", 1]), TypeError, "specs"),
    (lambda f: f.contrasts("cond", method="tukey"), ValueError, "'tukey'"),
    (lambda f: f.contrasts("cond", method={"w": [1, 0, -1]}), ValueError, "3 weights for 2 levels"),
    (lambda f: f.contrasts("x"), ValueError, "at least two levels"),
])
def test_bad_emmeans_arguments(gaussian_fit, call, err, text):
    with pytest.raises(err, match=text):
        call(gaussian_fit)


def test_no_warnings_on_a_correct_fit(gaussian_fit):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gaussian_fit.conditional_effects(resolution=10)
        gaussian_fit.conditional_effects("x", re_formula=None, method="posterior_predict", plot=False)
        gaussian_fit.emmeans("cond", by="g")
        gaussian_fit.contrasts(["cond", "g"])
        # a point inside the posterior's range (0 is not, and would warn that its density is extrapolated)
        x0 = float(np.median(gaussian_fit.posterior["fixef"].sel(fixef_term="x")))
        gaussian_fit.hypothesis(["x > 0", f"x = {x0}"])
        gaussian_fit.conditional_effects("x:cond", int_conditions={"cond": ["b"]}, spaghetti=True, ndraws=5)


def test_grid_rules_without_a_fit():
    """Means, reference levels, C() of a numeric column, trials = 1 and the offset at its mean (brms's rules)."""
    from bayeslmm.model import build_design
    from bayeslmm.posterior.grid import _offset_trials, complete_grid, model_variables

    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"x": rng.normal(3, 1, n), "f": np.tile(["q", "p"], n // 2), "k": np.repeat([2, 1, 2, 1], n // 4),
                       "subj": np.repeat(list("abcd"), n // 4), "expo": rng.uniform(1, 4, n)})
    df["tr"] = 8
    df["s"] = rng.binomial(8, 0.4, n)
    df["cnt"] = rng.poisson(2, n)
    d = build_design("s | trials(tr) ~ x + f + C(k) + (1 | subj)", df, family="binomial")
    v = model_variables(d)
    assert np.isclose(v["x"].mean, df["x"].mean()) and v["f"].levels == ("p", "q") and v["k"].levels == (1, 2)
    grid = complete_grid(d, pd.DataFrame({"x": [0.0, 1.0]}), re_formula="NA")
    assert list(grid["f"]) == ["p", "p"] and list(grid["k"]) == [1, 1] and "subj" not in grid
    offset, trials = _offset_trials(d, grid)
    assert np.array_equal(trials, [1.0, 1.0]) and offset == 0.0
    assert (complete_grid(d, grid, re_formula=None)["subj"] == "__new_level__").all()
    p = build_design("cnt ~ x + offset(log(expo)) + (1 | subj)", df, family="poisson")
    offset, _ = _offset_trials(p, complete_grid(p, pd.DataFrame({"x": [0.0]}), "NA"))
    assert np.isclose(offset, np.log(df["expo"]).mean())
    offset, _ = _offset_trials(p, complete_grid(p, pd.DataFrame({"x": [0.0], "expo": [2.0]}), "NA"))
    assert np.allclose(offset, np.log(2.0))
