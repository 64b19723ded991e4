"""What compilation costs on small data: a first fit against a repeated fit in a new process.

For each data set and sampler, three fresh processes fit the same model with
the same settings: (1) with an empty persistent JAX compilation cache, as a
user's first fit, (2) again with the cache that (1) wrote, (3) with the cache
turned off. Each process reports the wall time of ``BayesLMM(...).fit(...)``,
min bulk ESS over every parameter, max Rhat, peak RSS and the number of
cache files. Writes results/compile.json.

    python benchmarks/bench_compile.py                                  # dillonE1, numpyro
    python benchmarks/bench_compile.py --samplers numpyro,nutpie --draws 1000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import print_table, run_child, write_json, write_manifest

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time, warnings
sys.path.insert(0, {here!r})
t0 = time.perf_counter()
from bayeslmm import BayesLMM
from registry import load
from _common import posterior_metrics
data, formula, _ = load({name!r})
t1 = time.perf_counter()
fit = BayesLMM(formula, data).fit(draws={draws}, tune={tune}, chains={chains}, random_seed=1, sampler={sampler!r},
                                  progressbar=False, compile_cache={cache!r})
t2 = time.perf_counter()
m = posterior_metrics(fit)
print("RESULT", json.dumps({{"fit_s": t2 - t1, "import_s": t1 - t0, "peak_rss_mb":
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **m}}))
"""


def child(name, sampler, cache, args):
    code = CHILD.format(here=str(HERE), name=name, sampler=sampler, cache=cache, draws=args.draws,
                        tune=args.tune, chains=args.chains)
    return run_child(code, args.timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="dillonE1")
    ap.add_argument("--samplers", default="numpyro")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    cols = ["dataset", "sampler", "run", "fit_s", "min_bulk_ess", "ess_per_s", "max_rhat", "peak_rss_mb",
            "cache_files"]
    for name in args.datasets.split(","):
        for sampler in args.samplers.split(","):
            with tempfile.TemporaryDirectory(prefix="bayeslmm-jax-cache-") as cache:
                for run, c in (("first (empty cache)", cache), ("repeat (warm cache)", cache), ("no cache", False)):
                    res = child(name, sampler, c, args)
                    row = {"dataset": name, "sampler": sampler, "run": run, **res,
                           "cache_files": sum(1 for p in Path(cache).rglob("*") if p.is_file())}
                    if "fit_s" in res:
                        row["ess_per_s"] = res["min_bulk_ess"] / res["fit_s"]
                    rows.append(row)
                    print_table([row], cols)
    print()
    print_table(rows, cols)
    path = write_json(rows, "compile.json", args.out, settings=vars(args))
    write_manifest(path.parent, files=[path.name])
    print("wrote", path)


if __name__ == "__main__":
    main()
