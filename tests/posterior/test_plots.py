"""Every plot runs headless (Agg) and returns matplotlib axes."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

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
    axes = np.ravel(out)
    assert axes.size and all(isinstance(a, Axes) for a in axes)
    return axes


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
    ax = fit.plot_caterpillar("subj", "cond")
    assert isinstance(ax, Axes) and len(ax.get_yticklabels()) == 8
    with pytest.raises(ValueError, match="has effects"):
        fit.plot_caterpillar("subj", "nope")
    with pytest.raises(KeyError):
        fit.plot_caterpillar("nope")


def test_ess_per_second(fit):
    tab = ess_per_second({"a": fit, "b": fit})
    assert list(tab.index) == ["a", "b"] and (tab["ess_per_second"] > 0).all()
    assert tab.loc["a", "ess_per_second"] == pytest.approx(tab.loc["a", "min_bulk_ess"] / fit.timings["total"])
    ax = plot_ess_per_second({"a": fit, "b": fit})
    assert isinstance(ax, Axes) and len(ax.patches) == 2
