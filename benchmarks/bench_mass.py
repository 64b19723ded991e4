"""Diagonal against dense mass matrix on the small posterior that is left after marginalizing every factor.

With every factor integrated out (exactly, or by the Laplace approximation
for GLMM sets) NUTS sees only the fixed effects, the SDs, the correlations
and the family parameter: about 5-12 coordinates. A dense inverse mass
matrix (NumPyro's ``dense_mass=True``, :func:`bayeslmm.sampling.nuts.sample_nuts`)
could then take fewer leapfrog steps per draw, if those coordinates are
correlated in the posterior. For each data set and metric, the same model
(``marginalize="all"``), starts and keys are sampled with
``bayeslmm.sample`` (no persistent compilation cache: that is the fit's);
the table gives sampling seconds (compilation included), leapfrog steps
per draw, the adapted step size, min bulk ESS over the sampled parameters
(fixed effects, SDs, correlations, family parameter) and ESS per gradient. The recovered effects are not drawn: both
metrics give them the same way from the same kind of parameter draws.

    python benchmarks/bench_mass.py
    python benchmarks/bench_mass.py --datasets cbpp,dillonE1 --draws 500 --tune 500 --seeds 1,2

Writes ``mass.json`` (and its manifest entry) under ``benchmarks/results/`` or ``--out``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import RESULTS, add_to_manifest, ess_rhat, print_table, write_json
from registry import GLMM, family, load

COLS = ["dataset", "plan", "metric", "seed", "coordinates", "sampling_s", "steps_per_draw", "step_size",
        "min_bulk_ess", "max_rhat", "ess_per_grad", "divergences"]


def sampled_metrics(idata):
    """min bulk ESS and max Rhat over the sampled parameters (``_common.ess_rhat``; no effects are recovered here)."""
    names, ess, rhat = ess_rhat(idata.posterior)
    # A correlation matrix's diagonal is constant 1: no ESS, no Rhat (NaN).
    return (float(np.nanmin([np.nanmin(np.asarray(ess[v])) for v in names])),
            float(np.nanmax([np.nanmax(np.asarray(rhat[v])) for v in names])))


def run(name, dense, seed, args):
    from bayeslmm import BayesLMM, sample
    from bayeslmm.pymc_model import build_model
    from bayeslmm.sampling.xla import options_for

    data, formula, _ = load(name)
    kw = {"family": family(name)} if name in GLMM else {}
    m = BayesLMM(formula, data, **kw)
    plan = m.plan("all", "laplace" if name in GLMM else None)
    model = build_model(m.design, m.priors, plan)
    t0 = time.perf_counter()
    idata, _ = sample(model, draws=args.draws, tune=args.tune, chains=args.chains, random_seed=seed,
                      progressbar=False, compiler_options=options_for(0 if plan.sufficient else m.design.n),
                      dense_mass=dense)
    seconds = time.perf_counter() - t0
    steps = np.asarray(idata.sample_stats["n_steps"])
    min_ess, max_rhat = sampled_metrics(idata)
    return {"dataset": name, "plan": "all" + (" (laplace)" if name in GLMM else ""),
            "metric": "dense" if dense else "diagonal", "seed": seed,
            "coordinates": int(sum(np.size(v) for v in model.initial_point().values())),
            "sampling_s": seconds, "steps_per_draw": float(steps.mean()),
            "step_size": float(np.asarray(idata.sample_stats["step_size"]).mean()),
            "min_bulk_ess": min_ess, "max_rhat": max_rhat, "ess_per_grad": min_ess / float(steps.sum()),
            "divergences": int(np.asarray(idata.sample_stats["diverging"]).sum())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="cbpp,grouseticks_poisson,dillonE1,crossed_334x80")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for name in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for dense in (False, True):
                rows.append(run(name, dense, seed, args))
                print_table(rows[-1:], COLS)
    print()
    print_table(rows, COLS)
    out = args.out or RESULTS
    path = write_json(rows, "mass.json", out, draws=args.draws, tune=args.tune, chains=args.chains)
    add_to_manifest(out, [path.name])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
