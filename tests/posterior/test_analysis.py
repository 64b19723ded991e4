"""loo_R2, bayes_R2, varcorr layouts, update and kfold against hand computation on the same draws."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import logsumexp

import bayeslmm
from bayeslmm import BayesLMM
from bayeslmm.model.update import update_formula
from bayeslmm.posterior.kfold import KFold, fold_ids
from bayeslmm.simulate import simulate_crossed

FORMULA = "y ~ cond + (cond | subj) + (1 | item)"
FIT = dict(draws=150, tune=150, chains=2, random_seed=3, progressbar=False)


@pytest.fixture(scope="module")
def data():
    return simulate_crossed(n_subj=6, n_item=4, reps=2, seed=5)[0]


@pytest.fixture(scope="module")
def fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM(FORMULA, data).fit(marginalize="item", **FIT)


def _flat(da):
    return da.stack(s=("chain", "draw")).transpose("s", ...).values


def _mu_by_hand(fit, df, with_groups=True):
    """gaussian E[y]: X beta (+ r_subj[level] . (1, cond) + r_item[level]) through xarray label selection."""
    post = fit.posterior
    fe = _flat(post["fixef"])
    mu = fe[:, [0]] + fe[:, [1]] * df["cond"].to_numpy()
    if with_groups:
        rs = post["r_subj"].sel(subj__level=xr.DataArray(df["subj"].to_numpy(), dims="obs"))
        ri = post["r_item"].sel(item__level=xr.DataArray(df["item"].to_numpy(), dims="obs"))
        mu = mu + _flat(rs.sel(subj__effect="Intercept")) + _flat(rs.sel(subj__effect="cond")) * df["cond"].to_numpy()
        mu = mu + _flat(ri.sel(item__effect="Intercept"))
    return mu


def test_bayes_R2_conditional_and_marginal_by_hand(fit, data):
    y = data["y"].to_numpy()
    for re_formula, groups in ((None, True), ("NA", False)):
        mu = _mu_by_hand(fit, data, groups)
        vm, ve = mu.var(axis=1, ddof=1), (y - mu).var(axis=1, ddof=1)
        np.testing.assert_allclose(fit.bayes_R2(re_formula=re_formula, summary=False), vm / (vm + ve), rtol=1e-10)
        tab = fit.bayes_R2(re_formula=re_formula, prob=0.9)
        assert tab.loc["R2", "Q5"] == pytest.approx(np.quantile(vm / (vm + ve), 0.05))


def test_loo_R2_by_hand(fit, data):
    y = data["y"].to_numpy()
    ll = _flat(fit.log_likelihood())
    S, n = ll.shape
    ess = az.ess(fit.posterior, method="mean")
    reff = np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / S
    lw, _ = az.psislw(-ll.T, reff)
    lw = np.asarray(lw).T
    # The weights are az.loo's: the weighted predictive density is its pointwise elpd.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo_i = np.asarray(az.loo(fit.idata, pointwise=True).loo_i)
    np.testing.assert_allclose(logsumexp(lw + ll, axis=0), loo_i, rtol=1e-10)
    err = (np.exp(lw) * _mu_by_hand(fit, data)).sum(0) - y
    rng = np.random.default_rng(7)
    e = rng.exponential(size=(S, n))
    b = e / e.sum(1, keepdims=True)
    wvar = lambda v: n / (n - 1) * (b @ v ** 2 - (b @ v) ** 2)  # noqa: E731
    expected = np.clip(1 - wvar(err) / wvar(y), -1, 1)
    np.testing.assert_allclose(fit.loo_R2(summary=False, random_seed=7), expected, rtol=1e-10)
    tab = fit.loo_R2(random_seed=7)
    assert tab.loc["R2", "Estimate"] == pytest.approx(expected.mean())
    # Out-of-sample fit is worse than in-sample.
    assert tab.loc["R2", "Estimate"] < fit.bayes_R2().loc["R2", "Estimate"]


def test_varcorr_brms_and_lme4_by_hand(fit):
    post = fit.posterior
    sd = _flat(post["sd_subj"])
    rho = _flat(post["cor_subj"].sel(subj__effect="Intercept", subj__effect_bis="cond"))
    sigma = _flat(post["sigma"])
    vc = fit.varcorr(layout="brms")
    assert set(vc) == {"subj", "item", "residual__"} and set(vc["item"]) == {"sd"}
    assert vc["subj"]["sd"].loc["cond", "Estimate"] == pytest.approx(sd[:, 1].mean())
    assert vc["subj"]["sd"].loc["cond", "Q97.5"] == pytest.approx(np.quantile(sd[:, 1], 0.975))
    cov = vc["subj"]["cov"]
    assert cov.loc["Intercept", ("cond", "Estimate")] == pytest.approx((sd[:, 0] * sd[:, 1] * rho).mean())
    assert cov.loc["cond", ("cond", "Estimate")] == pytest.approx((sd[:, 1] ** 2).mean())
    assert cov.loc["cond", ("Intercept", "Q2.5")] == pytest.approx(np.quantile(sd[:, 0] * sd[:, 1] * rho, 0.025))
    cor = vc["subj"]["cor"].xs("Estimate", axis=1, level="stat")
    assert cor.loc["cond", "Intercept"] == pytest.approx(rho.mean()) and cor.loc["cond", "cond"] == pytest.approx(1)
    assert vc["residual__"]["sd"].loc["sigma", "Est.Error"] == pytest.approx(sigma.std(ddof=1))

    wide = fit.varcorr(layout="lme4")
    assert list(wide.columns) == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert list(wide["Groups"]) == ["subj", "", "item", "Residual"]
    assert list(wide["Name"]) == ["(Intercept)", "cond", "(Intercept)", ""]
    assert wide.loc[1, "Variance"] == pytest.approx((sd[:, 1] ** 2).mean())
    assert wide.loc[1, "Std.Dev."] == pytest.approx(sd[:, 1].mean())
    assert wide.loc[1, "Corr"] == f"{rho.mean():.2f}" and wide.loc[0, "Corr"] == ""
    assert wide.loc[3, "Variance"] == pytest.approx((sigma ** 2).mean())
    with pytest.raises(ValueError, match="layout"):
        fit.varcorr(layout="wide")


def test_varcorr_default_is_brms_and_its_draws(fit):
    post = fit.posterior
    sd = _flat(post["sd_subj"])
    rho = _flat(post["cor_subj"].sel(subj__effect="Intercept", subj__effect_bis="cond"))
    default = fit.varcorr()
    assert set(default) == {"subj", "item", "residual__"}
    pd.testing.assert_frame_equal(default["subj"]["cov"], fit.varcorr(layout="brms")["subj"]["cov"])
    draws = fit.varcorr(summary=False)
    np.testing.assert_allclose(draws["subj"]["sd"], sd)
    np.testing.assert_allclose(draws["subj"]["cor"][:, 1, 0], rho)
    np.testing.assert_allclose(draws["subj"]["cov"][:, 0, 1], sd[:, 0] * sd[:, 1] * rho)
    np.testing.assert_allclose(draws["residual__"]["sd"][:, 0], _flat(post["sigma"]))
    assert draws["item"]["sd"].shape == (sd.shape[0], 1) and set(draws["item"]) == {"sd"}


def test_varcorr_lme4_prints_as_lme4(fit):
    wide = fit.varcorr(layout="lme4")
    lines = str(wide).splitlines()
    assert repr(wide) == str(wide)
    header = lines[0]
    assert header.split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"] and header.startswith(" Groups")
    # columns left-aligned under their names; numbers of a column share their decimals (R's format)
    start = {c: header.index(c) for c in ("Name", "Variance", "Std.Dev.")}
    for line, (_, row) in zip(lines[1:], wide.iterrows()):
        if row["Name"]:
            assert line[start["Name"]:].startswith(row["Name"])
        assert line[start["Variance"]:].split()[0] == line[start["Variance"]:start["Std.Dev."]].strip()
    var_txt = [ln[start["Variance"]:start["Std.Dev."]].strip() for ln in lines[1:]]
    decimals = {len(t.split(".")[1]) for t in var_txt}
    assert len(decimals) == 1
    d = decimals.pop()
    np.testing.assert_allclose([float(t) for t in var_txt], wide["Variance"].round(d), atol=10.0 ** -d)
    assert lines[2].split()[-1] == wide.loc[1, "Corr"] and lines[-1].split()[0] == "Residual"
    rounded = wide.round(2)  # a derived table prints the same way, with its own numbers
    assert type(rounded) is type(wide) and str(rounded).splitlines()[0] == header
    assert float(str(rounded).splitlines()[-1].split()[1]) == pytest.approx(round(wide.iloc[-1]["Variance"], 2))
    assert type(pd.DataFrame(wide)) is pd.DataFrame


def test_r_format_matches_lme4_sleepstudy_print():
    """lme4's sleepstudy print: Variance 612.10 / 35.07 / 654.94, Std.Dev. 24.741 / 5.922 / 25.592."""
    from bayeslmm.posterior.varcorr import _r_format

    sd = np.array([24.7407, 5.9221, 25.5918])
    assert [t.strip() for t in _r_format(sd ** 2, 4)] == ["612.10", "35.07", "654.94"]
    assert [t.strip() for t in _r_format(sd, 4)] == ["24.741", "5.922", "25.592"]


@pytest.mark.parametrize("new, expected", [
    (". ~ . + x", "y ~ cond + (cond | subj) + (1 | item) + x"),
    (". ~ . - (1 | item)", "y ~ cond + (cond | subj)"),
    ("log(rt) ~ .", "log(rt) ~ cond + (cond | subj) + (1 | item)"),
    (". ~ . - 1", "y ~ cond + (cond | subj) + (1 | item) + 0"),
    ("z ~ x + (1 | g)", "z ~ x + (1 | g)"),
])
def test_update_formula(new, expected):
    assert update_formula(FORMULA, new) == expected


def test_update_formula_errors():
    with pytest.raises(ValueError, match="cannot remove 'x'"):
        update_formula(FORMULA, ". ~ . - x")
    with pytest.raises(ValueError, match="two-sided"):
        update_formula(FORMULA, "~ x")
    with pytest.raises(TypeError, match="string"):
        update_formula(FORMULA, 3)


@pytest.fixture(scope="module")
def reduced(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit.update(". ~ . - (1 | item)", draws=120)


def test_update_reuses_what_is_not_given(fit, reduced, data):
    assert reduced.design.spec.formula == "y ~ cond + (cond | subj)"
    assert [b.name for b in reduced.design.blocks] == ["subj"]
    assert (reduced.posterior.sizes["chain"], reduced.posterior.sizes["draw"]) == (2, 120)
    assert reduced.origin.fit_args["tune"] == 150 and reduced.origin.model_args["data"] is data
    with pytest.raises(TypeError, match="unknown argument"):
        fit.update(drawz=10)
    loaded_like = bayeslmm.LMMFit(fit.idata, fit.design, fit.priors, fit.plan, None, fit.sampler, fit.timings)
    with pytest.raises(ValueError, match="loaded from a file"):
        loaded_like.update(draws=10)


def test_fold_ids_balanced_and_grouped():
    ids = fold_ids(10, 3, random_seed=1)
    assert sorted(np.bincount(ids)) == [3, 3, 4]
    g = np.repeat(list("abcdef"), 3)
    ids = fold_ids(len(g), 3, g, random_seed=2)
    assert all(len(set(ids[g == lev])) == 1 for lev in "abcdef") and sorted(np.bincount(ids)) == [6, 6, 6]
    with pytest.raises(ValueError, match="at least K groups"):
        fold_ids(6, 4, list("aabbcc"))


@pytest.fixture(scope="module")
def kf(fit):
    return fit.kfold(K=2, random_seed=11, progressbar=False, draws=100, tune=100)


def test_kfold_elpd_by_hand(kf, data, fit):
    assert isinstance(kf, KFold) and kf.K == 2 and len(kf.fits) == 2
    expected = np.empty(len(data))
    for k, fk in enumerate(kf.fits):
        test = np.flatnonzero(kf.folds == k)
        held = data.iloc[test].reset_index(drop=True)
        assert fk.design.n == len(data) - len(test)
        # Every level was seen in training with row-wise folds of this data.
        ll = stats.norm.logpdf(held["y"].to_numpy(), _mu_by_hand(fk, held), _flat(fk.posterior["sigma"])[:, None])
        np.testing.assert_allclose(kf.heldout_ll[k], ll, rtol=1e-10)
        expected[test] = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    np.testing.assert_allclose(kf.pointwise, expected, rtol=1e-10)
    assert kf.elpd_kfold == pytest.approx(expected.sum())
    assert kf.se == pytest.approx(np.sqrt(len(expected) * expected.var()))
    full = _flat(fit.idata.log_likelihood["y"])
    lpd = (logsumexp(full, axis=0) - np.log(full.shape[0])).sum()
    assert kf.p_kfold == pytest.approx(lpd - expected.sum())
    assert "elpd_kfold" in repr(kf) and kf.table().loc["kfoldic", "Estimate"] == pytest.approx(-2 * expected.sum())


def test_kfold_by_group_holds_out_whole_levels(reduced, data):
    kg = reduced.kfold(K=3, group="subj", random_seed=2, progressbar=False, draws=100, tune=100)
    for lev in data["subj"].unique():
        assert len(set(kg.folds[(data["subj"] == lev).to_numpy()])) == 1
    for k, fk in enumerate(kg.fits):
        held = set(data["subj"][kg.folds == k])
        assert held.isdisjoint(fk.design.block("subj").levels)
    assert np.isfinite(kg.pointwise).all()
    for k, ll in enumerate(kg.heldout_ll):
        np.testing.assert_allclose(kg.pointwise[kg.folds == k], logsumexp(ll, axis=0) - np.log(ll.shape[0]))
        # A held-out subject is a new level with its effect drawn from N(0, Sigma_s) per draw (brms
        # sample_new_levels="gaussian"): averaged over that draw, p(y_i | draw s) is the normal density
        # with variance z' Sigma_s z + sigma_s^2, which the mean over draws must match within its Monte Carlo error.
        fk = kg.fits[k]
        held = data[kg.folds == k]
        c = held["cond"].to_numpy()
        fe, sd, sig = _flat(fk.posterior["fixef"]), _flat(fk.posterior["sd_subj"]), _flat(fk.posterior["sigma"])
        rho = _flat(fk.posterior["cor_subj"].sel(subj__effect="Intercept", subj__effect_bis="cond"))
        var = (sd[:, [0]] ** 2 + 2 * rho[:, None] * sd[:, [0]] * sd[:, [1]] * c + sd[:, [1]] ** 2 * c ** 2
               + sig[:, None] ** 2)
        exact = stats.norm.pdf(held["y"].to_numpy(), fe[:, [0]] + fe[:, [1]] * c, np.sqrt(var)).mean(0)
        p = np.exp(ll)
        mc_se = p.std(0, ddof=1) / np.sqrt(p.shape[0])
        assert np.all(np.abs(p.mean(0) - exact) < 5 * mc_se + 1e-12)
    with pytest.raises(ValueError, match="neither a grouping factor"):
        reduced.kfold(K=2, group="nope")
    with pytest.raises(ValueError, match="one fold per row"):
        reduced.kfold(folds=[0, 1])
    with pytest.raises(ValueError, match="K must be at least 2, got 1"):
        reduced.kfold(K=1)
    with pytest.raises(TypeError, match="random_seed"):
        reduced.kfold(K=2, random_seed="x")


def test_compare_kfold_and_loo(kf, reduced, fit):
    other = KFold(kf.elpd_kfold - 3, kf.se, kf.p_kfold, kf.pointwise - 3 / len(kf.pointwise), kf.folds, 2, [], [])
    tab = bayeslmm.compare({"a": kf, "b": other})
    assert list(tab.index) == ["a", "b"] and tab.loc["b", "elpd_diff"] == pytest.approx(3)
    assert tab.loc["b", "dse"] == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="cannot mix"):
        bayeslmm.compare({"a": kf, "b": fit})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo_a = fit.loo(pointwise=True)
        tab = bayeslmm.compare({"a": loo_a, "b": reduced})
    assert set(tab.index) == {"a", "b"}
    assert tab.loc["a", "elpd_loo"] == pytest.approx(loo_a["elpd_loo"])
    with pytest.raises(TypeError, match="expected an LMMFit"):
        bayeslmm.compare({"a": fit, "b": 3})


class _Tags(__import__("html.parser").parser.HTMLParser):
    """Checks that every opened tag is closed in order (void tags aside) and collects the text."""

    VOID = {"br", "hr", "img", "meta", "input", "col"}

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        # Only inherited colours and transparent backgrounds keep both Jupyter themes readable.
        for decl in (dict(attrs).get("style") or "").split(";"):
            prop, _, value = (x.strip() for x in decl.partition(":"))
            if prop in ("color", "background", "background-color") and value not in ("inherit", "transparent"):
                self.errors.append(f"hard-coded colour {decl!r}")

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(html):
    p = _Tags()
    p.feed(html)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    return " ".join(p.text)


def test_html_views(fit, data):
    model = BayesLMM(FORMULA, data)
    text = _parse(model._repr_html_())
    for piece in (FORMULA, "gaussian", f"{len(data)} observations", "Factor subj", "6 levels", "marginalized",
                  "Priors", "half_student_t", "lkj(2)"):
        assert piece in text, piece
    text = _parse(fit._repr_html_())
    for piece in (FORMULA, "Regression Coefficients", "Multilevel Hyperparameters", "l-95% CI", "Bulk_ESS",
                  "marginalized item", "Priors", "subj: 6 levels"):
        assert piece in text, piece
    assert "color: inherit" in fit._repr_html_()
