"""Same model, same data, same settings: bayeslmm at two commits, each fit in a fresh process.

    python benchmarks/bench_before_after.py --old-tree DIR [--datasets dillonE1,InstEval]

``DIR`` is a checkout of the earlier commit (``git worktree add DIR <rev>``).
Each fit runs in its own process (first fit, compilation included, as a user
sees it); the rows give wall seconds, min bulk ESS over every parameter
(recovered effects included), min-ESS per second, max Rhat and the process's
peak RSS. Prints a table and writes benchmarks/results/before_after.json.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import registry

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time, warnings
import arviz as az
import pandas as pd
from bayeslmm import BayesLMM
df = pd.read_pickle({data!r})
formula = {formula!r}
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = BayesLMM(formula, df).fit(chains=2, draws={draws}, tune={tune}, random_seed={seed}, progressbar=False)
wall = time.perf_counter() - t0
post = fit.idata.posterior
ess = az.ess(post, method="bulk")
rhat = az.rhat(post)
min_ess = min(float(ess[v].min()) for v in ess.data_vars)
max_rhat = max(float(rhat[v].max()) for v in rhat.data_vars)
print("RESULT" + json.dumps(dict(wall_s=wall, min_bulk_ess=min_ess, ess_per_s=min_ess / wall, max_rhat=max_rhat,
                                 peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def run(tree, data, formula, args):
    # the data set is loaded once by this process (the earlier commit may not ship it) and handed over as a pickle
    code = CHILD.format(data=str(data), formula=formula, draws=args.draws, tune=args.tune, seed=args.seed)
    env = dict(os.environ, PYTHONPATH=str(tree))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=args.timeout)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    return {"error": (p.stderr or p.stdout)[-400:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-tree", required=True)
    ap.add_argument("--new-tree", default=str(HERE.parent))
    ap.add_argument("--datasets", default="dillonE1,InstEval")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    rows = []
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    for name in args.datasets.split(","):
        df, formula, _ = registry.load(name)
        data = out / f"_before_after_{name}.pkl"
        df.to_pickle(data)
        for label, tree in (("before", args.old_tree), ("after", args.new_tree)):
            r = dict(dataset=name, code=label, **run(tree, data, formula, args))
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("\n| data set | code | wall s | min bulk ESS | ESS/s | max Rhat | peak RSS MB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['dataset']} | {r['code']} | failed | | | | |")
        else:
            print(f"| {r['dataset']} | {r['code']} | {r['wall_s']:.1f} | {r['min_bulk_ess']:.0f} | "
                  f"{r['ess_per_s']:.1f} | {r['max_rhat']:.3f} | {r['peak_rss_mb']:.0f} |")
    (out / "before_after.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
