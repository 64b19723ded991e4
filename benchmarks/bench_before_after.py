"""Same model, same data, same settings: bayeslmm at two commits, each fit in a fresh process.

    python benchmarks/bench_before_after.py --old-tree DIR [--cases dillonE1:auto,cbpp:all:laplace] [--reps 2]

``DIR`` is a checkout of the earlier commit (``git worktree add DIR <rev>``). A case is
``name:marginalize[:approximation]`` for a set of ``registry.py`` (its documented formula and family).
Each fit runs in its own process (a user's first fit: compilation included, the persistent compilation
cache off), the two checkouts alternated ``--reps`` times (before first in even repetitions, after
first in odd ones, so that a drift of the machine's load favours neither). The rows give the fit's wall
seconds, its sampling and recovery parts, min bulk ESS over every parameter (recovered effects
included), min-ESS per second, max Rhat and the process's peak RSS; the summary, per case, the median
wall seconds of each checkout and their ratio. Prints both tables and writes
``benchmarks/results/before_after.json`` (or ``--name``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import registry
from _common import print_table, write_json, write_manifest

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time, warnings
import pandas as pd
import bayeslmm
from bayeslmm import BayesLMM
sys.path.append({here!r})
from _common import posterior_metrics
df = pd.read_pickle({data!r})
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = BayesLMM({formula!r}, df, family={family!r}, link={link!r}).fit(
        chains={chains}, draws={draws}, tune={tune}, random_seed={seed}, marginalize={marginalize!r},
        approximation={approximation!r}, progressbar=False)
wall = time.perf_counter() - t0
m = posterior_metrics(fit)
print("RESULT " + json.dumps(dict(wall_s=wall, sampling_s=fit.timings["sampling"], recover_s=fit.timings["recover"],
                                  ess_per_s=m["min_bulk_ess"] / wall, **m,
                                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                  package=bayeslmm.__file__)))
"""


def run(tree, data, model, marginalize, approximation, args):
    """One fit of ``model`` (formula, family, link) with the checkout ``tree`` first on the path.

    Returns the child's result, or ``{"error": ...}``.
    """
    formula, family, link = model
    code = CHILD.format(here=str(HERE), data=str(data), formula=formula, family=family,
                        link=link, marginalize=marginalize, approximation=approximation, draws=args.draws, tune=args.tune,
                        chains=args.chains, seed=args.seed)
    env = dict(os.environ, PYTHONPATH=str(tree), BAYESLMM_JAX_CACHE="off")
    # Run in the checkout: ``python -c`` puts the working folder first on the path, ahead of PYTHONPATH.
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tree), capture_output=True, text=True,
                       timeout=args.timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    out = json.loads(lines[-1][7:])
    if not Path(out["package"]).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"the fit for {tree} imported bayeslmm from {out['package']}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-tree", required=True)
    ap.add_argument("--new-tree", default=str(HERE.parent))
    ap.add_argument("--cases", default="dillonE1:auto,InstEval:auto",
                    help="comma-separated name:marginalize[:approximation]")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--name", default="before_after")
    args = ap.parse_args()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    trees = {"before": args.old_tree, "after": args.new_tree}
    rows = []
    for case in args.cases.split(","):
        name, marginalize, approximation = (case.split(":") + [None])[:3]
        # Loaded once here (the earlier commit may not ship the set) and handed over as a pickle.
        data = out / f"_before_after_{name}.pkl"
        df, formula, _ = registry.load(name)
        df.to_pickle(data)
        model = (formula, registry.family(name), registry.dataset_info(name).link if name in registry.GLMM else None)
        for rep in range(args.reps):
            for code in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                r = {"case": case, "code": code, "rep": rep,
                     **run(trees[code], data, model, marginalize, approximation, args)}
                rows.append(r)
                print(json.dumps(r), flush=True)
    summary = []
    for case in dict.fromkeys(r["case"] for r in rows):
        ok = {c: [r for r in rows if r["case"] == case and r["code"] == c and "error" not in r]
              for c in ("before", "after")}
        if all(ok.values()):
            before, after = (float(np.median([r["wall_s"] for r in ok[c]])) for c in ("before", "after"))
            summary.append({"case": case, "wall_s_before": before, "wall_s_after": after, "ratio": before / after,
                            "min_ess_before": ok["before"][0]["min_bulk_ess"],
                            "min_ess_after": ok["after"][0]["min_bulk_ess"]})
    print()
    print_table(rows, ["case", "code", "rep", "wall_s", "sampling_s", "recover_s", "min_bulk_ess", "ess_per_s",
                       "max_rhat", "peak_rss_mb", "error"])
    print()
    print_table(summary, ["case", "wall_s_before", "wall_s_after", "ratio", "min_ess_before", "min_ess_after"])
    settings = {k: getattr(args, k) for k in ("old_tree", "new_tree", "draws", "tune", "chains", "seed", "reps")}
    path = write_json(rows, f"{args.name}.json", out, summary=summary, settings=settings)
    write_manifest(path.parent, command=" ".join(sys.argv))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
