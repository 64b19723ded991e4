"""The max Rhat that independent, perfectly mixed draws give over many parameters: the noise floor of a max-Rhat target.

Draws ``chains x draws`` independent standard normals for each of ``n_params`` parameters (no
sampler: every chain is an exact draw from the target) or, with ``--phi``, stationary AR(1)
chains with that autocorrelation (bulk ESS about ``chains draws (1 - phi) / (1 + phi)``), and
reports ArviZ's rank-normalized split Rhat (what the benchmarks report) maximized over the
parameters, over ``--reps`` replicates: its mean, quantiles, and the share of replicates whose
maximum exceeds each threshold.

    python benchmarks/rhat_floor.py [--chains 2] [--draws 1000] [--params 4135] [--reps 20] [--phi 0.0,0.14]

Writes ``rhat_floor.json`` under ``benchmarks/results/`` or ``--out``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import arviz as az
import numpy as np

from _common import RESULTS, print_table, write_json


def max_rhats(chains, draws, n_params, reps, phi, seed=0):
    """``reps`` maxima over ``n_params`` of the rank-normalized split Rhat of stationary AR(1) chains."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        e = rng.standard_normal((chains, draws, n_params))
        x = np.empty_like(e)
        x[:, 0] = e[:, 0]  # stationary start: unit variance for every phi
        s = np.sqrt(1.0 - phi ** 2)
        for t in range(1, draws):
            x[:, t] = phi * x[:, t - 1] + s * e[:, t]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = az.rhat(az.convert_to_dataset({"x": x}))["x"].values
        out.append(float(np.max(r)))
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--params", type=int, default=4135, help="default: lme4's InstEval model, effects included")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--phi", default="0.0,0.14", help="AR(1) autocorrelations (0.14: bulk ESS about 1,500 of 2,000)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for phi in (float(p) for p in args.phi.split(",")):
        m = max_rhats(args.chains, args.draws, args.params, args.reps, phi)
        rows.append({"chains": args.chains, "draws": args.draws, "params": args.params, "phi": phi,
                     "ess_approx": round(args.chains * args.draws * (1 - phi) / (1 + phi)),
                     "mean_max_rhat": float(m.mean()), "q10": float(np.quantile(m, 0.1)),
                     "q90": float(np.quantile(m, 0.9)), "share_above_1.01": float(np.mean(m > 1.01)),
                     "share_above_1.015": float(np.mean(m > 1.015)), "reps": args.reps})
    # Four decimals: the table helper's three significant digits cannot tell 1.006 from 1.014.
    print_table([{k: f"{v:.4f}" if k.startswith(("mean", "q")) else v for k, v in r.items()} for r in rows],
                list(rows[0]))
    print(f"wrote {write_json(rows, 'rhat_floor.json', Path(args.out) if args.out else RESULTS)}")


if __name__ == "__main__":
    main()
