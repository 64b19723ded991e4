"""A fit from parquet on a dask.distributed LocalCluster equals the pandas fit of the same rows."""

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("dask.distributed")

import arviz as az  # noqa: E402

from bayeslmm import BayesLMM  # noqa: E402

N = 2_000_000


@pytest.mark.slow
def test_local_cluster_parquet_matches_pandas(tmp_path):
    rng = np.random.default_rng(3)
    subj = rng.integers(0, 40, N)
    item = rng.integers(0, 25, N)
    x = rng.normal(size=N)
    u0, u1, w = rng.normal(0, 0.6, 40), rng.normal(0, 0.2, 40), rng.normal(0, 0.4, 25)
    y = 2.0 + 0.3 * x + u0[subj] + u1[subj] * x + w[item] + rng.normal(0, 1.5, N)
    df = pd.DataFrame({"y": y, "x": x, "subj": subj, "item": item})
    for i, part in enumerate(np.array_split(np.arange(N), 8)):
        df.iloc[part].to_parquet(tmp_path / f"part{i}.parquet")
    f = "y ~ x + (x | subj) + (1 | item)"
    kw = dict(draws=300, tune=300, chains=2, random_seed=5, progressbar=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        fit_d = BayesLMM(f, dd.read_parquet(str(tmp_path))).fit(**kw)
    fit_p = BayesLMM(f, df).fit(marginalize="all", **kw)
    assert fit_d.design.n == N
    for var in ("fixef", "sigma", "sd_subj", "sd_item", "cor_subj"):
        a, b = fit_d.idata.posterior[var], fit_p.idata.posterior[var]
        se = np.hypot(az.mcse(a.to_dataset())[var].values, az.mcse(b.to_dataset())[var].values)
        diff = np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        assert np.all(diff < 5 * se + 1e-12), (var, diff, se)
    ra = fit_d.idata.posterior["r_subj"].mean(("chain", "draw")).values
    rb = fit_p.idata.posterior["r_subj"].mean(("chain", "draw")).values
    np.testing.assert_allclose(ra, rb, atol=0.05)
