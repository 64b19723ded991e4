"""Fit each data set under every marginalization plan and compare speed and mixing.

For each data set: "none", each single factor, "all" and "auto". Columns:
wall time of the fit (compile, sampling and recovery), min bulk ESS over all
parameters including group-level effects, ESS per second, max Rhat,
divergences, and the two factors of ESS/s measured separately: gradients per
second (a jitted log-density + gradient at the initial point) and ESS per
gradient (post-warmup leapfrog steps). Writes results/plans.json.

    python benchmarks/bench_plans.py                     # every data set
    python benchmarks/bench_plans.py --datasets dillonE1 --draws 1000 --chains 2
    python benchmarks/bench_plans.py --quick             # small sets, 300 draws
    python benchmarks/bench_plans.py --seeds 1,2,3 --datasets crossed_50x40,dutch --name plans_seeds.json

With several seeds every plan is fitted once per seed, and a summary per data
set compares plans by their median ESS/s over the seeds: the plan auto chose,
the best plan, best/auto, and auto/none (median over seeds, and per seed).
"""

import argparse
import statistics
import time
import warnings

from _common import datasets, grad_time, posterior_metrics, print_table, write_json

from bayeslmm import BayesLMM
from bayeslmm import build_model
from registry import ALL


def plans_for(model):
    """none, every non-empty proper subset of factors, all (auto reuses the row of the plan it picks)."""
    from itertools import combinations

    names = [b.name for b in model.design.blocks]
    subsets = [list(c) for k in range(1, len(names)) for c in combinations(names, k)]
    return ["none"] + subsets + ["all"]


def _label(plan):
    return plan if isinstance(plan, str) else "+".join(plan)


def run(name, data, formula, args, seed):
    model = BayesLMM(formula, data)
    rows = []
    plans = [p.split("+") if "+" in p else p for p in args.plans.split(",")] if args.plans else plans_for(model)
    skip = set(args.skip.split(",")) if args.skip else set()
    by_set = {}
    for plan in plans:
        resolved = model.plan(plan)
        g = grad_time(build_model(model.design, model.priors, resolved), repeat=20 if model.design.n > 20000 else 200)
        row = {"dataset": name, "seed": seed, "plan": _label(plan), "grads_per_s": 1.0 / g}
        if f"{name}:{_label(plan)}" in skip:
            row["note"] = "not fitted (--skip)"
            rows.append(row)
            print_table([row], COLS)
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit(draws=args.draws, tune=args.tune or args.draws, chains=args.chains,
                            random_seed=seed, marginalize=plan, progressbar=False)
        wall = time.perf_counter() - t0
        m = posterior_metrics(fit)
        row.update({"wall_s": wall, "sampling_s": fit.timings["sampling"], **m,
                    "ess_per_s": m["min_bulk_ess"] / wall})
        by_set[frozenset(resolved.marginalized)] = row
        rows.append(row)
        print_table([row], COLS)
    auto = model.plan("auto")
    chosen = by_set.get(frozenset(auto.marginalized))
    fitted = [r for r in rows if "ess_per_s" in r]
    best = max(fitted, key=lambda r: r["ess_per_s"]) if fitted else None
    if chosen is not None:
        # The auto fit is the chosen plan's fit (same seed, same model): reuse its row.
        row = {**chosen, "plan": f"auto={auto.label}", "best_plan": best["plan"],
               "best_over_auto": best["ess_per_s"] / chosen["ess_per_s"]}
        rows.append(row)
        print_table([row], COLS + ["best_plan", "best_over_auto"])
    return rows


COLS = ["dataset", "seed", "plan", "wall_s", "min_bulk_ess", "ess_per_s", "max_rhat", "divergences", "grads_per_s",
        "ess_per_grad", "note"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(ALL))
    ap.add_argument("--plans", default=None, help="comma-separated plans (default: all of them)")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seeds", default="1", help="comma-separated sampler seeds; every plan is fitted per seed")
    ap.add_argument("--skip", default=None, help="dataset:plan pairs to time per gradient but not fit")
    ap.add_argument("--quick", action="store_true", help="dillonE1, stroop, grouseticks with 300 draws")
    ap.add_argument("--out", default=None)
    ap.add_argument("--name", default="plans.json")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.draws = "dillonE1,stroop,grouseticks", 300
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = []
    for name, (data, formula) in datasets(args.datasets.split(",")).items():
        for seed in seeds:
            rows += run(name, data, formula, args, seed)
    print()
    print_table(rows, COLS + ["best_plan", "best_over_auto"])
    summary = summarize(rows)
    if len(seeds) > 1:
        print(f"\nmedian ESS/s over seeds {seeds}")
        print_table(summary, SUMMARY_COLS)
    print("wrote", write_json(rows, args.name, args.out, summary=summary))


SUMMARY_COLS = ["dataset", "auto", "auto_ess_per_s", "best_plan", "best_ess_per_s", "best_over_auto",
                "auto_over_none", "auto_over_none_per_seed", "max_rhat_auto"]


def summarize(rows):
    """Per data set: median ESS/s of each plan over seeds; auto's plan against the best and against none."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        fitted = [r for r in rows if r["dataset"] == name and "ess_per_s" in r]
        autos = [r for r in fitted if r["plan"].startswith("auto=")]
        if not autos:
            continue
        auto_plan = autos[0]["plan"].split("=", 1)[1]
        med = {p: statistics.median(r["ess_per_s"] for r in fitted if r["plan"] == p)
               for p in dict.fromkeys(r["plan"] for r in fitted if not r["plan"].startswith("auto="))}
        best = max(med, key=med.get)
        row = {"dataset": name, "auto": auto_plan, "auto_ess_per_s": med[auto_plan], "best_plan": best,
               "best_ess_per_s": med[best], "best_over_auto": med[best] / med[auto_plan],
               "max_rhat_auto": max(r["max_rhat"] for r in autos)}
        if "none" in med:
            row["auto_over_none"] = med[auto_plan] / med["none"]
            per_seed = {r["seed"]: r["ess_per_s"] for r in fitted if r["plan"] == "none"}
            row["auto_over_none_per_seed"] = ", ".join(
                f"{a['ess_per_s'] / per_seed[a['seed']]:.3g}" for a in autos if a["seed"] in per_seed)
        out.append(row)
    return out


if __name__ == "__main__":
    main()
