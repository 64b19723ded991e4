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
"""

import argparse
import time
import warnings

from _common import datasets, grad_time, posterior_metrics, print_table, write_json

from bayeslmm import BayesLMM
from bayeslmm.builder import build_model

ALL = ["dillonE1", "english", "dutch", "pupil", "stroop", "eeg", "grouseticks", "crossed_50x40", "insteval_shaped"]


def plans_for(model):
    """none, every non-empty proper subset of factors, all (auto reuses the row of the plan it picks)."""
    from itertools import combinations

    names = [b.name for b in model.design.blocks]
    subsets = [list(c) for k in range(1, len(names)) for c in combinations(names, k)]
    return ["none"] + subsets + ["all"]


def _label(plan):
    return plan if isinstance(plan, str) else "+".join(plan)


def run(name, data, formula, args):
    model = BayesLMM(formula, data)
    rows = []
    plans = [p.split("+") if "+" in p else p for p in args.plans.split(",")] if args.plans else plans_for(model)
    skip = set(args.skip.split(",")) if args.skip else set()
    by_set = {}
    for plan in plans:
        resolved = model.plan(plan)
        g = grad_time(build_model(model.design, model.priors, resolved), repeat=20 if model.design.n > 20000 else 200)
        row = {"dataset": name, "plan": _label(plan), "grads_per_s": 1.0 / g}
        if f"{name}:{_label(plan)}" in skip:
            row["note"] = "not fitted (--skip)"
            rows.append(row)
            print_table([row], COLS)
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit(draws=args.draws, tune=args.tune or args.draws, chains=args.chains,
                            random_seed=args.seed, marginalize=plan, progressbar=False)
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


COLS = ["dataset", "plan", "wall_s", "min_bulk_ess", "ess_per_s", "max_rhat", "divergences", "grads_per_s",
        "ess_per_grad", "note"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(ALL))
    ap.add_argument("--plans", default=None, help="comma-separated plans (default: all of them)")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", default=None, help="dataset:plan pairs to time per gradient but not fit")
    ap.add_argument("--quick", action="store_true", help="dillonE1, stroop, grouseticks with 300 draws")
    ap.add_argument("--out", default=None)
    ap.add_argument("--name", default="plans.json")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.draws = "dillonE1,stroop,grouseticks", 300
    rows = []
    for name, (data, formula) in datasets(args.datasets.split(",")).items():
        rows += run(name, data, formula, args)
    print()
    print_table(rows, COLS + ["best_plan", "best_over_auto"])
    print("wrote", write_json(rows, args.name, args.out))


if __name__ == "__main__":
    main()
