"""Every plot runs headless (Agg) and returns its matplotlib Figure, axes labelled with the user's names."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bayeslmm import BayesLMM  # noqa: E402
from bayeslmm.posterior.plots import ess_per_second, plot_ess_per_second, sampled_parameters  # noqa: E402
from bayeslmm.simulate import simulate_crossed  # noqa: E402


@pytest.fixture(scope="module")
def fit():
    df = simulate_crossed(n_subj=8, n_item=6)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM("y ~ cond + (cond | subj) + (1 | item)", df).fit(
            draws=100, tune=100, chains=2, marginalize="all", random_seed=4, progressbar=False)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _axes(out):
    assert isinstance(out, Figure), type(out)
    axes = [a for a in out.axes if a.get_visible()]
    assert axes and all(isinstance(a, Axes) for a in axes)
    return np.array(axes, dtype=object)


def _ax(out):
    """The single panel of a one-panel figure."""
    axes = _axes(out)
    assert len(axes) == 1
    return axes[0]


def test_sampled_parameters_are_brms_named(fit):
    ds = sampled_parameters(fit)
    assert list(ds.data_vars) == ["b_Intercept", "b_cond", "sd_subj__Intercept", "sd_subj__cond",
                                  "cor_subj__Intercept__cond", "sd_item__Intercept", "sigma"]
    assert all(v.dims == ("chain", "draw") for v in ds.data_vars.values())


@pytest.mark.parametrize("name", ["plot_trace", "plot_rank", "plot_fixef", "plot_ppc"])
def test_plot_methods(fit, name):
    _axes(getattr(fit, name)())


def test_trace_has_one_row_per_parameter(fit):
    assert _axes(fit.plot_trace()).size == 2 * 7


def test_fixef_subset(fit):
    _axes(fit.plot_fixef(terms=["cond"], prob=0.9))


def test_caterpillar(fit):
    ax = _ax(fit.plot_caterpillar("subj", "cond"))
    assert len(ax.get_yticklabels()) == 8 and ax.get_ylabel() == "subj"
    assert ax.get_xlabel().startswith("cond deviation by subj")
    with pytest.raises(ValueError, match="has effects"):
        fit.plot_caterpillar("subj", "nope")
    with pytest.raises(ValueError, match="No grouping factor 'nope'"):
        fit.plot_caterpillar("nope")


def test_ess_per_second(fit):
    tab = ess_per_second({"a": fit, "b": fit})
    assert list(tab.index) == ["a", "b"] and (tab["ess_per_second"] > 0).all()
    assert tab.loc["a", "ess_per_second"] == pytest.approx(tab.loc["a", "min_bulk_ess"] / fit.timings["total"])
    ax = _ax(plot_ess_per_second({"a": fit, "b": fit}))
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]


def _flat(da):
    return np.asarray(da).reshape(-1)


def test_fixef_labels_and_equal_tailed_intervals(fit):
    ax = _ax(fit.plot_fixef(terms=["cond"], prob=0.9))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cond"]
    assert "equal-tailed" in ax.get_xlabel() and ax.get_title().endswith(" y")
    draws = _flat(fit.posterior["fixef"].sel(fixef_term="cond"))
    (x0, _), (x1, _) = ax.collections[0].get_segments()[0]
    np.testing.assert_allclose([x0, x1], np.quantile(draws, [0.05, 0.95]))
    ax = _ax(fit.plot_fixef())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Intercept", "cond"]
    with pytest.raises(ValueError, match="not population-level"):
        fit.plot_fixef(terms=["nope"])


def test_caterpillar_subset_of_many_levels(fit):
    ax = _ax(fit.plot_caterpillar("subj", max_levels=4, n_extreme=1))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    r = fit.posterior["r_subj"].sel(subj__effect="Intercept").mean(("chain", "draw"))
    order = list(np.asarray(r["subj__level"])[np.argsort(np.asarray(r))])
    assert len(labels) == 4 and labels[0] == order[0] and labels[-1] == order[-1]
    assert "4 of 8 levels shown" in ax.get_title() and "1 lowest, 1 highest" in ax.get_title()
    assert ax.get_xlabel().startswith("Intercept deviation by subj")


def test_trace_titles_do_not_overlap(fit):
    fig = fit.plot_trace()
    axes = _axes(fig)
    fig.canvas.draw()
    boxes = [a.title.get_window_extent() for a in axes] + [a.get_xaxis().get_tightbbox() for a in axes]
    for i in range(len(axes)):
        for j in range(len(axes)):
            if i != j:  # a panel's title against every other panel's title and tick labels
                assert not boxes[i].overlaps(boxes[j]) and not boxes[i].overlaps(boxes[len(axes) + j])


def test_pp_check_kinds(fit):
    y = np.asarray(fit.design.y_original)
    ax = _ax(fit.pp_check(kind="dens_overlay", ndraws=7, random_seed=1))
    drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    assert len(drawn) == 8 and ax.get_xlabel() == "y" and ax.get_ylabel() == "density"
    yrep = np.asarray(fit.idata.posterior_predictive["y"]).reshape(-1, len(y))
    axes = _axes(fit.pp_check(kind="hist", ndraws=5))
    assert len(axes) == 6 and axes[0].get_title() == "y" and axes[-1].get_xlabel() == "y"
    assert sum(p.get_height() for p in axes[0].patches) == len(y)
    ax = _ax(fit.pp_check(kind="stat", stat="sd"))
    assert ax.get_xlabel() == "sd(y)" and len(ax.patches) == 30
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(y.std(ddof=1))
    assert sum(p.get_height() for p in ax.patches) == yrep.shape[0]
    axes = _axes(fit.pp_check(kind="stat_grouped", group="subj"))
    blk = fit.design.block("subj")
    assert len(axes) == blk.n_levels
    for lev, a in enumerate(axes):
        assert a.get_title() == f"subj = {blk.levels[lev]}"
        assert a.get_lines()[0].get_xdata()[0] == pytest.approx(y[blk.group_index == lev].mean())
    ax = _ax(fit.pp_check(kind="intervals", prob=0.8))
    pts = ax.get_lines()[0]
    np.testing.assert_allclose(pts.get_ydata(), y)
    seg = ax.collections[0].get_segments()
    np.testing.assert_allclose([seg[3][0][1], seg[3][1][1]], np.quantile(yrep[:, 3], [0.1, 0.9]))
    assert ax.get_ylabel() == "y"
    ax = _ax(fit.pp_check(kind="intervals", max_obs=10))
    assert len(ax.get_lines()[0].get_xdata()) == 10 and "10 of" in ax.get_xlabel()
    with pytest.raises(ValueError, match="kind must be"):
        fit.pp_check(kind="violin")
    with pytest.raises(ValueError, match="needs group"):
        fit.pp_check(kind="stat_grouped")
    with pytest.raises(ValueError, match="stat must be"):
        fit.pp_check(kind="stat", stat="iqr")


def test_ppc_label_is_the_response_as_written(toy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = BayesLMM("log(rt) ~ cond + (1 | subj)", toy).fit(draws=60, tune=60, chains=1, random_seed=1,
                                                             progressbar=False, marginalize="all")
    assert _ax(f.plot_ppc()).get_xlabel() == "log(rt)"
    assert _ax(f.plot_fixef()).get_title() == "Population-level effects on log(rt)"
    assert _ax(f.pp_check(kind="stat", stat="mean")).get_xlabel() == "mean(log(rt))"


def test_given_ax_returns_its_figure(fit):
    fig, axes = plt.subplots(1, 3)
    assert fit.plot_caterpillar("subj", ax=axes[0]) is fig
    assert fit.plot_fixef(ax=axes[1]) is fig
    assert fit.pp_check(kind="stat", ax=axes[2]) is fig
    assert [t.get_text() for t in axes[1].get_yticklabels()] == ["Intercept", "cond"]
    assert axes[0].get_ylabel() == "subj" and axes[2].get_xlabel() == "mean(y)"


def test_rank_titles_are_the_parameter_names(fit):
    axes = _axes(fit.plot_rank())
    titles = {a.get_title() for a in axes}
    assert set(sampled_parameters(fit).data_vars) <= titles
    assert all(a.xaxis.label.get_fontsize() <= a.title.get_fontsize() for a in axes)
