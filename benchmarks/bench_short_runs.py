"""Short runs: a fit's wall time with and without LLVM's optimization of the sampler (``xla.NO_LLVM_OPT``).

For each case (data set of ``bayeslmm.datasets``, ``marginalize``, ``approximation``), fresh processes
fit the data set's documented model, compilation cache off, alternating two arms ``--reps`` times:

- ``auto``: what ``fit`` does, :data:`bayeslmm.sampling.xla.NO_LLVM_OPT` where the run is predicted
  short (:func:`bayeslmm.model.plan.run_seconds` below :data:`~bayeslmm.sampling.xla.SHORT_RUN_S`);
- ``optimized``: the same with that bar at 0, so that XLA's LLVM passes always run (the behaviour
  before the option).

Each process reports the fit's wall time, its sampling part (translation, compilation and NUTS), the
recovery, min bulk ESS over every parameter, max Rhat, the predicted run seconds and the XLA options
the fit used. Writes results/short_runs.json.

    python benchmarks/bench_short_runs.py
    python benchmarks/bench_short_runs.py --cases cbpp:all:laplace,sleepstudy:auto --reps 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _common import print_table, run_child, write_json, write_manifest

HERE = Path(__file__).resolve().parent

DEFAULT_CASES = "cbpp:all:laplace,cbpp:none,sleepstudy:auto,dillonE1:auto,grouseticks_poisson:all:laplace"

CHILD = r"""
import json, sys, time
sys.path.insert(0, {here!r})
from bayeslmm import BayesLMM
from bayeslmm.datasets import dataset_info, load_dataset
from bayeslmm.model.plan import run_seconds
from bayeslmm.sampling import xla
from _common import posterior_metrics
if {arm!r} == "optimized":
    xla.SHORT_RUN_S = 0.0
info = dataset_info({name!r})
m = BayesLMM(info.formula, load_dataset({name!r}), family=info.family, link=info.link)
plan = m.plan({marginalize!r}, {approximation!r})
pred = run_seconds(m.design, plan, {tune}, {draws})
opts = xla.options_for(0 if plan.sufficient else m.design.n, pred)
t0 = time.perf_counter()
fit = m.fit(draws={draws}, tune={tune}, chains={chains}, random_seed={seed}, marginalize={marginalize!r},
            approximation={approximation!r}, progressbar=False, compile_cache=False)
t1 = time.perf_counter()
print("RESULT", json.dumps({{"fit_s": t1 - t0, "sampling_s": fit.timings["sampling"],
      "recover_s": fit.timings["recover"], "plan": plan.label, "predicted_run_s": pred,
      "llvm_opt_off": "xla_backend_optimization_level" in opts, **posterior_metrics(fit)}}))
"""


def child(case, arm, args):
    name, marginalize, approximation = (case.split(":") + [None])[:3]
    code = CHILD.format(here=str(HERE), name=name, marginalize=marginalize, approximation=approximation, arm=arm,
                        draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    return run_child(code, args.timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=DEFAULT_CASES,
                    help="comma-separated name:marginalize[:approximation]")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    rows = []
    for case in args.cases.split(","):
        for rep in range(args.reps):
            for arm in ("optimized", "auto") if rep % 2 == 0 else ("auto", "optimized"):
                row = {"case": case, "arm": arm, "rep": rep, **child(case, arm, args)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = []
    for case in dict.fromkeys(r["case"] for r in rows):
        arms = {a: [r for r in rows if r["case"] == case and r["arm"] == a and "error" not in r]
                for a in ("optimized", "auto")}
        if not all(arms.values()):
            continue
        opt, auto = (float(np.median([r["fit_s"] for r in arms[a]])) for a in ("optimized", "auto"))
        first = {a: arms[a][0] for a in arms}
        summary.append({"case": case, "predicted_run_s": first["auto"]["predicted_run_s"],
                        "llvm_opt_off": first["auto"]["llvm_opt_off"], "fit_s_optimized": opt, "fit_s_auto": auto,
                        "ratio": opt / auto, "min_ess_optimized": first["optimized"]["min_bulk_ess"],
                        "min_ess_auto": first["auto"]["min_bulk_ess"]})
    print()
    print_table(rows, ["case", "arm", "rep", "fit_s", "sampling_s", "recover_s", "min_bulk_ess", "max_rhat",
                       "llvm_opt_off"])
    print()
    print_table(summary, ["case", "predicted_run_s", "llvm_opt_off", "fit_s_optimized", "fit_s_auto", "ratio",
                          "min_ess_optimized", "min_ess_auto"])
    settings = {k: getattr(args, k) for k in ("draws", "tune", "chains", "seed", "reps")}
    path = write_json(rows, "short_runs.json", args.out, summary=summary, settings=settings)
    write_manifest(path.parent, command=" ".join(sys.argv))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
