"""Exact HMC ("none") against the Laplace plan on GLMM data sets: speed and mixing.

Data: the shipped crossed bernoulli set (sim_bernoulli: 300 subjects x 30
items, 6,000 rows, correlated subject slopes), cbpp (binomial) and
grouseticks (poisson, raw TICKS, two crossed factors). For each, "none"
and marginalize="all", approximation="laplace". Columns: wall time of the
fit (compile, sampling, recovery), min bulk ESS over every parameter
including group-level effects, ESS per second, gradients per second (a
jitted log-density + gradient at the initial point), ESS per gradient
(post-warm-up leapfrog steps), max Rhat, divergences. Writes
results/bench_glmm.json.

    python benchmarks/bench_glmm.py [--datasets cbpp,grouseticks,sim_bernoulli] [--draws 500] [--chains 2]
"""

import argparse
import time
import warnings

from _common import grad_time, posterior_metrics, print_table, write_json

from bayeslmm import BayesLMM, build_model
from bayeslmm.datasets import load_dataset

SETS = {
    "sim_bernoulli": ("correct ~ 1 + cond + (1 + cond | subj) + (1 | item)", "bernoulli"),
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "grouseticks": ("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson"),
}
PLANS = {"none": dict(marginalize="none"), "laplace": dict(marginalize="all", approximation="laplace")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(SETS))
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for name in args.datasets.split(","):
        formula, family = SETS[name]
        m = BayesLMM(formula, load_dataset(name), family=family)
        for label, kw in PLANS.items():
            plan = m.plan(**kw)
            t_grad = grad_time(build_model(m.design, m.priors, plan), repeat=50)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = m.fit(chains=args.chains, draws=args.draws, tune=args.draws, random_seed=args.seed,
                            progressbar=False, **kw)
            wall = time.perf_counter() - t0
            met = posterior_metrics(fit)
            row = {"dataset": name, "plan": label, "n": m.design.n, "wall_s": wall,
                   "ess_per_s": met["min_bulk_ess"] / wall, "grads_per_s": 1.0 / t_grad, **met}
            rows.append(row)
            print_table([row], list(row), )
    cols = ["dataset", "plan", "n", "wall_s", "min_bulk_ess", "ess_per_s", "grads_per_s", "ess_per_grad",
            "max_rhat", "divergences"]
    print_table(rows, cols)
    write_json(rows, "bench_glmm.json", draws=args.draws, chains=args.chains)


if __name__ == "__main__":
    main()
