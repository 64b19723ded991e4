"""Dask scale-out: statistics pass and fit on parquet data of 10^7 / 10^8 rows.

Writes the parquet data set in chunks (never the whole frame in memory),
then on a dask.distributed LocalCluster (2 workers, 1 thread each):
wall time of the two statistics passes, of the fit, the driver's peak RSS
(flat in N: the driver holds statistics, not rows), and the time of one
log-density gradient beside the same model on 10^3 rows.

    python benchmarks/bench_dask.py --rows 10000000 [--rows 100000000] [--stats-only]

Prints a table and writes benchmarks/results/bench_dask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

FORMULA = "y ~ x + (x | subj) + (1 | item)"
CHUNK = 1_000_000


def write_parquet(path: Path, n: int, seed=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    need = n * 4 * 8 * 1.2
    free = shutil.disk_usage(path.parent).free
    if need > free:
        raise SystemExit(f"{n} rows need ~{need / 1e9:.1f} GB, {free / 1e9:.1f} GB free on {path.parent}")
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    u0, u1, w = rng.normal(0, 0.6, 200), rng.normal(0, 0.2, 200), rng.normal(0, 0.4, 100)
    for i, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        subj, item, x = rng.integers(0, 200, m), rng.integers(0, 100, m), rng.normal(size=m)
        y = 2.0 + 0.3 * x + u0[subj] + u1[subj] * x + w[item] + rng.normal(0, 1.5, m)
        pd.DataFrame({"y": y, "x": x, "subj": subj, "item": item}).to_parquet(path / f"part{i:04d}.parquet")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grad_time(design, priors, plan, md, reps=200) -> float:
    """Seconds per log-density gradient of the compiled JAX model (``_common.grad_time``)."""
    from _common import grad_time as model_grad_time

    from bayeslmm.pymc_model import build_model
    return model_grad_time(build_model(design, priors, plan, md=md), reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--stats-only", action="store_true")
    ap.add_argument("--dir", default=str(HERE / "results" / "dask_data"))
    ap.add_argument("--keep", action="store_true", help="keep the parquet files")
    args = ap.parse_args()
    import jax
    jax.config.update("jax_enable_x64", True)
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    from bayeslmm import BayesLMM
    from bayeslmm.distributed import dask_design

    rows = args.rows or [10_000_000]
    out = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster):
        for n in rows:
            path = Path(args.dir) / f"n{n}"
            if not path.exists():
                t = time.perf_counter()
                write_parquet(path, n)
                print(f"wrote {n} rows in {time.perf_counter() - t:.1f} s", flush=True)
            ddf = dd.read_parquet(str(path))
            t = time.perf_counter()
            design = dask_design(FORMULA, ddf) if args.stats_only else None
            m = None if args.stats_only else BayesLMM(FORMULA, ddf)  # the same two passes, inside
            rec = {"rows": n, "partitions": ddf.npartitions, "stats_s": time.perf_counter() - t}
            if m is not None:
                design = m.design
                t = time.perf_counter()
                fit = m.fit(draws=500, tune=500, chains=2, random_seed=0, progressbar=False)
                rec["fit_s"] = time.perf_counter() - t
                rec["sampling_s"] = fit.timings["sampling"]
                plan = m.plan("all")
                rec["grad_s"] = grad_time(design, m.priors, plan, design.md)
                sm = BayesLMM(FORMULA, dd.from_pandas(ddf.head(1000), npartitions=1))
                rec["grad_s_1e3_rows"] = grad_time(sm.design, sm.priors, sm.plan("all"), sm.design.md)
            rec["driver_peak_rss_mb"] = peak_rss_mb()
            out.append(rec)
            print(json.dumps(rec), flush=True)
            if not args.keep:
                shutil.rmtree(path)
    print(f"\n{'rows':>12} {'parts':>6} {'stats s':>8} {'fit s':>7} {'grad us':>8} {'grad us 1e3':>11} {'RSS MB':>7}")
    for r in out:
        print(f"{r['rows']:>12} {r['partitions']:>6} {r['stats_s']:>8.1f} {r.get('fit_s', float('nan')):>7.1f} "
              f"{1e6 * r.get('grad_s', float('nan')):>8.1f} {1e6 * r.get('grad_s_1e3_rows', float('nan')):>11.1f} "
              f"{r['driver_peak_rss_mb']:>7.0f}")
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "bench_dask.json").write_text(json.dumps({"formula": FORMULA, "cpus": os.cpu_count(), "runs": out}, indent=1))


if __name__ == "__main__":
    main()
