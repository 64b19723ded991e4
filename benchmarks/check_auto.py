"""Check marginalize="auto" against measured plans: is its choice the fastest, or within 1.5x?

Reads the per-plan rows written by bench_plans.py (every plan fitted with the
same seed and settings; with several seeds, each plan's median ESS/s over
the seeds is compared), asks the current cost model which plan it would
choose on each data set, and prints the measured min-ESS per second of that
plan against the best measured one. Writes results/auto_check.json.

    python benchmarks/check_auto.py results/plans_small.json results/plans_insteval.json
"""

import json
import statistics
import sys
from pathlib import Path

from _common import RESULTS, datasets, print_table, write_json

from bayeslmm import BayesLMM


def main(paths):
    rows = []
    for path in paths:
        path = Path(path)
        data = json.loads((path if path.exists() else RESULTS / path.name).read_text())["rows"]
        by_ds = {}
        for r in data:
            if "ess_per_s" in r and not r["plan"].startswith("auto"):
                by_ds.setdefault(r["dataset"], {}).setdefault(frozenset(r["plan"].split("+")), []).append(r)
        for name, runs in by_ds.items():
            plans = {k: {"plan": v[0]["plan"], "ess_per_s": statistics.median(r["ess_per_s"] for r in v),
                         "n_seeds": len(v)} for k, v in runs.items()}
            (df, formula), = datasets([name]).values()
            model = BayesLMM(formula, df)
            auto = model.plan("auto")
            key = frozenset(auto.marginalized) if auto.marginalized else frozenset(["none"])
            if len(auto.marginalized) == len(model.design.blocks) and auto.marginalized:
                key = frozenset(["all"]) if frozenset(["all"]) in plans else key
            best = max(plans.values(), key=lambda r: r["ess_per_s"])
            chosen = plans.get(key)
            none = plans.get(frozenset(["none"]))
            rows.append({
                "dataset": name, "auto": auto.label, "auto_ess_per_s": chosen["ess_per_s"] if chosen else None,
                "best_plan": best["plan"], "best_ess_per_s": best["ess_per_s"],
                "best_over_auto": best["ess_per_s"] / chosen["ess_per_s"] if chosen else None,
                "auto_over_none": chosen["ess_per_s"] / none["ess_per_s"] if chosen and none else None,
                "within_1.5x": bool(chosen) and best["ess_per_s"] <= 1.5 * chosen["ess_per_s"],
                "n_seeds": best["n_seeds"],
            })
    print_table(rows, list(rows[0]))
    print("wrote", write_json(rows, "auto_check.json"))


if __name__ == "__main__":
    main(sys.argv[1:] or ["plans_small.json"])
