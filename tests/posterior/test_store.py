"""save/load round trip: tables, priors, plan, predictions on new data, extra idata groups."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayeslmm
from bayeslmm import BayesLMM, Prior
from bayeslmm.simulate import simulate_crossed

# A categorical fixed predictor and a stateful transform: the loaded fit must encode newdata as in training.
FORMULA = "y ~ f + center(cond) + (cond | subj) + (1 | item)"

# Loading re-runs the convergence checks of a deliberately short fit.
pytestmark = pytest.mark.filterwarnings("ignore:Parts of the model have not converged", "ignore:There were")


@pytest.fixture(scope="module")
def data():
    df = simulate_crossed(n_subj=8, n_item=6)[0]
    df["f"] = pd.Categorical(np.array(["lo", "hi", "mid"])[np.arange(len(df)) % 3], categories=["lo", "mid", "hi"])
    return df


@pytest.fixture(scope="module")
def fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesLMM(FORMULA, data, priors=[Prior("normal(0, 0.7)", "b")]).fit(
            draws=100, tune=100, chains=2, marginalize="subj", random_seed=3, progressbar=False)
    fit.log_likelihood()
    return fit


@pytest.fixture(scope="module")
def path(fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "fit.nc"
    assert fit.save(path) == path
    return path


@pytest.fixture(scope="module")
def loaded(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)        # no "rebuilt matrix differs" warning
        warnings.filterwarnings("ignore", message=".*(Rhat|divergent).*")
        return bayeslmm.load(path)


def test_tables_equal(fit, loaded):
    a, b = fit.summary(), loaded.summary()
    assert str(a) == str(b)
    for key in a.tables:
        pd.testing.assert_frame_equal(a[key], b[key])
    pd.testing.assert_frame_equal(fit.fixef(), loaded.fixef())
    pd.testing.assert_frame_equal(fit.varcorr(layout="long"), loaded.varcorr(layout="long"))
    for k, v in fit.ranef().items():
        pd.testing.assert_frame_equal(v, loaded.ranef()[k])
    for k, v in fit.coef().items():
        pd.testing.assert_frame_equal(v, loaded.coef()[k])


def test_specification_restored(fit, loaded):
    assert loaded.priors == fit.priors                 # exact arguments, sources included
    assert loaded.plan.marginalized == fit.plan.marginalized and loaded.plan.sampled == fit.plan.sampled
    assert loaded.plan.describe() == fit.plan.describe()
    assert loaded.sampler == fit.sampler and loaded.timings == pytest.approx(fit.timings)
    assert loaded.design.spec == fit.design.spec and loaded.design.family == fit.design.family
    np.testing.assert_array_equal(loaded.design.X, fit.design.X)
    for b0, b1 in zip(fit.design.blocks, loaded.design.blocks):
        assert (b0.name, b0.levels, b0.terms, b0.corr_groups) == (b1.name, b1.levels, b1.terms, b1.corr_groups)
        np.testing.assert_array_equal(b0.group_index, b1.group_index)
    assert loaded.model is None


def test_predictions_equal(fit, loaded, data):
    new = data.sample(9, random_state=0).reset_index(drop=True)
    new.loc[0, "subj"] = "unseen"
    new["f"] = new["f"].astype(str)      # plain strings map to the training categories
    kw = dict(newdata=new, allow_new_levels=True, kind="response", random_seed=7)
    np.testing.assert_array_equal(fit.predict(summary=False, **kw), loaded.predict(summary=False, **kw))
    np.testing.assert_array_equal(fit.predict(summary=False, kind="mean"), loaded.predict(summary=False, kind="mean"))


def test_idata_groups_round_trip(fit, loaded, path, tmp_path):
    np.testing.assert_array_equal(loaded.idata.log_likelihood["y"].values, fit.idata.log_likelihood["y"].values)
    assert set(loaded.idata.groups()) == set(fit.idata.groups())
    # The file stays an ordinary ArviZ netCDF.
    assert {"posterior", "sample_stats", "log_likelihood"} <= set(az.from_netcdf(path).groups())
    other = tmp_path / "plain.nc"
    fit.idata.to_netcdf(str(other))
    with pytest.raises(ValueError, match="not written by bayeslmm.save"):
        bayeslmm.load(other)


def test_resave_overwrites(loaded, tmp_path):
    path = tmp_path / "again.nc"
    loaded.save(path)
    loaded.save(path)
    again = bayeslmm.load(path)
    pd.testing.assert_frame_equal(again.fixef(), loaded.fixef())


def test_interrupt_swallowed_during_save_stops_it_and_keeps_the_old_file(fit, tmp_path, monkeypatch):
    """A SIGINT whose KeyboardInterrupt a callback swallowed (as h5py's finalizers do) still ends the save."""
    import signal

    from bayeslmm.posterior import store

    target = tmp_path / "fit.nc"
    fit.save(target)
    before = target.read_bytes()
    real = store._design_dataset

    def swallowing(f):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return real(f)

    monkeypatch.setattr(store, "_design_dataset", swallowing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal session
    try:
        with pytest.raises(KeyboardInterrupt):
            fit.save(target)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]
