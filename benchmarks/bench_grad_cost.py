"""One log-density + gradient under every plan, measured, against the cost model's prediction; its constants refitted.

``marginalize="auto"`` ranks plans by ``grad_seconds`` (seconds per gradient) times
``grads_per_draw_factor``. ``grad_seconds`` is a sum of four counts
(``bayeslmm.model.plan.grad_seconds_terms``: 1, row operations, flops of the blocked
factorization, rows of its dense part), each times a constant (``GRAD_CONSTANTS``). For every
Gaussian registry data set and every plan (none, every proper subset of factors, all) this times one
jitted log-density + gradient at the model's initial point (``_common.grad_time``: the sampler's own
JAX translation, priors included, one JAX device; median of ``--rounds`` rounds), prints it beside the
prediction, and refits the four constants by non-negative least squares on the relative error
(every row counts alike). The table gives both predictions; the constants in the package are not
changed by this script.

    python benchmarks/bench_grad_cost.py
    python benchmarks/bench_grad_cost.py --datasets dillonE1,crossed_334x80 --rounds 3

Writes ``grad_cost.json`` (and its manifest entry) under ``benchmarks/results/`` or ``--out``.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from scipy.optimize import nnls

from _common import RESULTS, add_to_manifest, grad_time, print_table, write_json
from bench_plans import plans_for
from registry import ALL, load

COLS = ["dataset", "plan", "measured_ms", "predicted_ms", "over", "refit_ms", "refit_over"]
NAMES = ["overhead_s", "row_s", "flop_s", "dense_row_s"]


def measure(name, rounds):
    from bayeslmm import BayesLMM, build_model
    from bayeslmm.model.plan import grad_seconds, grad_seconds_terms

    data, formula, _ = load(name)
    m = BayesLMM(formula, data)
    rows = []
    for spec in plans_for(m):
        plan = m.plan(spec)
        model = build_model(m.design, m.priors, plan)
        predicted = grad_seconds(m.design, plan.marginalized)
        # About 0.2 s per round, at least 3 evaluations: InstEval's "all" takes about half a second each.
        repeat = int(min(200, max(3, 0.2 / predicted)))
        secs = statistics.median(grad_time(model, repeat=repeat) for _ in range(rounds))
        rows.append({"dataset": name, "plan": plan.label, "terms": list(grad_seconds_terms(m.design, plan.marginalized)),
                     "measured_ms": 1e3 * secs, "predicted_ms": 1e3 * predicted, "over": predicted / secs})
        print_table([rows[-1]], COLS[:5])
    return rows


def refit(rows):
    """Non-negative constants minimising the sum of squared relative errors of the prediction."""
    A = np.array([r["terms"] for r in rows], dtype=float)
    t = np.array([r["measured_ms"] for r in rows]) / 1e3
    scale = A.max(axis=0)  # columns of similar size for the solver
    coef, _ = nnls(A / t[:, None] / scale, np.ones(len(t)))
    return coef / scale


def main():
    from bayeslmm.model.plan import GRAD_CONSTANTS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(ALL))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = [r for name in args.datasets.split(",") for r in measure(name, args.rounds)]
    coef = refit(rows)
    for r in rows:
        r["refit_ms"] = 1e3 * float(np.dot(r["terms"], coef))
        r["refit_over"] = r["refit_ms"] / r["measured_ms"]
    print_table(rows, COLS)
    for label, c in (("current", GRAD_CONSTANTS), ("refit", coef)):
        over = np.array([float(np.dot(r["terms"], c)) * 1e3 / r["measured_ms"] for r in rows])
        worst = np.max(np.maximum(over, 1 / over))
        print(f"{label}: " + ", ".join(f"{n} {v:.3g}" for n, v in zip(NAMES, c))
              + f"; prediction / measured {over.min():.2f}-{over.max():.2f}, worst factor {worst:.2f}")
    out = args.out or RESULTS
    path = write_json(rows, "grad_cost.json", out, rounds=args.rounds,
                      current=dict(zip(NAMES, map(float, GRAD_CONSTANTS))), refit=dict(zip(NAMES, map(float, coef))))
    add_to_manifest(out, [path.name])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
