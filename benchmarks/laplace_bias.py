"""Posterior bias of the Laplace plan against exact HMC ("none") on simulated bernoulli and poisson data.

One-factor random-intercept models, 40 levels, intercept SD 1 (bernoulli) or
0.5 (poisson), fixed intercept 0 and slope 0.5; per data set and seed both
plans on the same data and priors. Reports the posterior mean of the SD and
of the intercept under each plan and their difference in units of the
exact posterior SD. Writes results/laplace_bias.json.

    python benchmarks/laplace_bias.py [--seeds 1,2,3] [--draws 600]
"""

import argparse
import warnings

import numpy as np
import pandas as pd
from _common import print_table, write_json

from bayeslmm import BayesLMM


def simulate(family, per, seed, n_levels=40):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_levels), per)
    x = rng.normal(size=g.size)
    sd = 1.0 if family == "bernoulli" else 0.5
    eta = 0.5 * x + rng.normal(0, sd, n_levels)[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))) if family == "bernoulli" else rng.poisson(np.exp(eta))
    return pd.DataFrame(dict(g=g, x=x, y=y))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--draws", type=int, default=600)
    ap.add_argument("--cases", default="bernoulli:5,bernoulli:20,poisson:5")
    args = ap.parse_args()
    rows = []
    for case in args.cases.split(","):
        family, per = case.split(":")
        for seed in map(int, args.seeds.split(",")):
            m = BayesLMM("y ~ x + (1 | g)", simulate(family, int(per), seed), family=family)
            kw = dict(chains=2, draws=args.draws, tune=args.draws, random_seed=seed, progressbar=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits = {"none": m.fit(marginalize="none", **kw),
                        "laplace": m.fit(marginalize="all", approximation="laplace", **kw)}
            row = {"family": family, "obs_per_level": int(per), "seed": seed}
            for key, sel in [("sd", ("sd_g", {})), ("intercept", ("fixef", {"fixef_term": "Intercept"}))]:
                ex = fits["none"].posterior[sel[0]].sel(**sel[1]).values.ravel()
                la = fits["laplace"].posterior[sel[0]].sel(**sel[1]).values.ravel()
                row[f"{key}_none"], row[f"{key}_laplace"] = float(ex.mean()), float(la.mean())
                row[f"{key}_diff_in_post_sd"] = float((la.mean() - ex.mean()) / ex.std())
                row[f"{key}_spread_ratio"] = float(la.std() / ex.std())
            rows.append(row)
            print_table([row], list(row))
    cols = ["family", "obs_per_level", "seed", "sd_none", "sd_laplace", "sd_diff_in_post_sd", "sd_spread_ratio",
            "intercept_diff_in_post_sd"]
    print_table(rows, cols)
    write_json(rows, "laplace_bias.json")


if __name__ == "__main__":
    main()
