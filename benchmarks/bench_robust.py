"""Robustness over seeds: does any chain get stuck, per marginalization plan, data set and seed?

For each data set and seed, fits with ``marginalize="none"`` (every effect
sampled; the parameterization of bayeslmm.pymc_model.centring) and ``"auto"``,
and prints max Rhat, min bulk ESS (group-level effects included), the parameter
where each is reached, divergences and wall seconds. A stuck chain shows as Rhat
well above 1.01 and a min ESS of a few. Writes benchmarks/results/robust.json
(``--out FILE``; an absolute path goes there) after every fit, so an interrupted
run keeps what it finished.

    python benchmarks/bench_robust.py            # chains=2, 1000 + 1000, 5 seeds
    python benchmarks/bench_robust.py --quick    # 300 + 300, 2 seeds, no dillonE1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import ess_rhat, posterior_metrics, print_table, write_json
from registry import datasets

from bayeslmm import BayesLMM
from bayeslmm.datasets import DATASETS, dataset_info, load_dataset
from bayeslmm.simulate import simulate_crossed, simulate_nested

SETS = ["Pastes", "nested_10x3x2", "nested_40x5x3", "crossed_30x20", "dillonE1"]


def data(name):
    if name == "nested_10x3x2":
        return simulate_nested(seed=11)[0], "y ~ 1 + (1 | outer/inner)"
    if name == "nested_40x5x3":
        return simulate_nested(40, 5, 3, seed=12)[0], "y ~ 1 + (1 | outer/inner)"
    if name == "crossed_30x20":
        return simulate_crossed(30, 20, seed=13)[0], "y ~ cond + (cond | subj) + (cond | item)"
    if name in DATASETS:
        return load_dataset(name), dataset_info(name).formula
    return datasets([name])[name]


def worst(fit) -> tuple[str, str]:
    """The parameters (``name[coords]``) with the largest Rhat and the smallest bulk ESS, over the
    same variables as ``posterior_metrics``; one ArviZ pass over the posterior."""
    names, ess, rhat = ess_rhat(fit.posterior)

    def at(ds, pick):
        best = None
        for v in names:
            a = ds[v]
            vals = np.asarray(a)
            if np.all(np.isnan(vals)):  # e.g. the constant diagonal of a correlation matrix
                continue
            i = np.unravel_index(pick(vals), vals.shape)
            if best is None or (vals[i] > best[0] if pick is np.nanargmax else vals[i] < best[0]):
                coords = ",".join(str(a[d].values[k]) for d, k in zip(a.dims, i))
                best = (float(vals[i]), f"{v}[{coords}]" if coords else v)
        return best[1]

    return at(rhat, np.nanargmax), at(ess, np.nanargmin)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 + 300 draws, 2 seeds, no dillonE1")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--plans", nargs="*", default=["none", "auto"])
    ap.add_argument("--out", default="robust.json")
    a = ap.parse_args()
    draws = a.draws or (300 if a.quick else 1000)
    seeds = range(a.seeds or (2 if a.quick else 5))
    names = a.datasets or (SETS[:-1] if a.quick else SETS)
    rows = []
    for name in names:
        df, formula = data(name)
        for plan in a.plans:
            for seed in seeds:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # divergences are counted in the table
                    fit = BayesLMM(formula, df).fit(draws=draws, tune=draws, chains=2, random_seed=seed,
                                                    marginalize=plan, progressbar=False)
                wall = time.perf_counter() - t0
                m = posterior_metrics(fit)
                rhat_at, ess_at = worst(fit)
                row = {"data": name, "plan": plan, "seed": seed, "max_rhat": m["max_rhat"], "max_rhat_at": rhat_at,
                       "min_bulk_ess": m["min_bulk_ess"], "min_ess_at": ess_at, "divergences": m["divergences"],
                       "wall_s": wall}
                rows.append(row)
                print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
                write_json(rows, a.out, draws=draws, tune=draws, chains=2)
    print()
    cols = ["data", "plan", "seed", "max_rhat", "max_rhat_at", "min_bulk_ess", "min_ess_at", "divergences", "wall_s"]
    print_table(rows, cols)
    print(f"\nwrote {write_json(rows, a.out, draws=draws, tune=draws, chains=2)}")


if __name__ == "__main__":
    main()
