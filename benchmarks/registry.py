"""The one data-set registry of the benchmark scripts.

Every script asks ``load(name)`` for ``(data, formula, truth)``; ``truth`` maps
canonical names (``b[x]``, ``sd[g,x]``, ``sigma``) to the values a simulated set
was drawn from, or is None for real data. Real sets come from
``bayeslmm.datasets`` (shipped with the package); simulated ones are drawn here
with fixed seeds so that every script and every run sees the same rows.

``BAYESLMM_BENCH_DATA`` names a folder (for example ``../shared/data``) whose
``df_NAME.csv`` or ``NAME.csv`` replaces the shipped copy of a real set ``NAME``:
benchmarks that want a bigger or newer copy read it from there. Tests never do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bayeslmm.datasets import dataset_info, load_dataset  # noqa: E402
from bayeslmm.simulate import simulate_crossed  # noqa: E402

ENV_DATA = "BAYESLMM_BENCH_DATA"

# The real (Gaussian) sets of bayeslmm.datasets that the benchmark tables report. InstEval is fitted
# with lme4's documented model (service fixed, dept:service as the third factor), see its DatasetInfo.
REAL = ["dillonE1", "english", "dutch", "pupil", "stroop", "eeg", "grouseticks", "InstEval"]
SIMULATED = ["crossed_small", "crossed_50x40", "crossed_334x80", "large_n"]
ALL = REAL + SIMULATED
# GLMM sets (bayeslmm.datasets, with the family and link there): binomial with trials, poisson with two
# crossed factors, and a crossed bernoulli set with correlated subject slopes. Not in ALL: the Gaussian
# scripts (plans, design) loop over ALL.
GLMM = ["cbpp", "grouseticks_poisson", "sim_bernoulli"]

CROSSED = "y ~ cond + (cond | subj) + (cond | item)"


def _crossed_truth(t):
    return {"b[Intercept]": t["fixef"]["Intercept"], "b[cond]": t["fixef"]["cond"],
            "sd[subj,Intercept]": t["sd_subj"][0], "sd[subj,cond]": t["sd_subj"][1],
            "sd[item,Intercept]": t["sd_item"][0], "sd[item,cond]": t["sd_item"][1], "sigma": t["sigma"]}


def simulate_single_factor(n_subj=100, n_rows=200_000, beta=(2.0, 0.5), sd=(0.5, 0.2), rho=0.3, sigma=1.0,
                           seed=5):
    """Large-N, one grouping factor: ``y ~ x + (x | subj)``, x ~ N(0, 1), rows draw subjects at random."""
    rng = np.random.default_rng(seed)
    subj = rng.integers(n_subj, size=n_rows)
    x = rng.standard_normal(n_rows)
    C = np.array([[1.0, rho], [rho, 1.0]])
    L = np.diag(sd) @ np.linalg.cholesky(C)
    u = rng.standard_normal((n_subj, 2)) @ L.T
    y = beta[0] + beta[1] * x + u[subj, 0] + u[subj, 1] * x + sigma * rng.standard_normal(n_rows)
    df = pd.DataFrame({"y": y, "x": x, "subj": [f"s{i:03d}" for i in subj]})
    truth = {"b[Intercept]": beta[0], "b[x]": beta[1], "sd[subj,Intercept]": sd[0], "sd[subj,x]": sd[1],
             "sigma": sigma}
    return df, truth


def _real(name: str) -> pd.DataFrame:
    folder = os.environ.get(ENV_DATA)
    if folder:
        for fname in (f"df_{name}.csv", f"{name}.csv"):
            path = Path(folder) / fname
            if path.is_file():
                # the shipped loader derives columns (centred contrasts, factors); apply it to the override too
                info = dataset_info(name)
                df = pd.read_csv(path)
                if info.derive is not None:
                    info.derive(df)
                return df
    return load_dataset(name)


def family(name: str) -> str:
    """The response family a set is fitted with: its DatasetInfo's for GLMM sets, else "gaussian"."""
    return dataset_info(name).family if name in GLMM else "gaussian"


def _glmm_truth(t):
    """DatasetInfo.truth of a simulated GLMM set -> canonical names (correlations left out)."""
    out = {}
    for k, v in t.items():
        if k.startswith("sd_"):
            group, term = k[3:].split("_", 1)
            out[f"sd[{group},{term}]"] = v
        elif not k.startswith("cor_"):
            out[f"b[{k}]"] = v
    return out


def load(name: str):
    """name -> (data, formula, truth or None)."""
    if name in REAL:
        return _real(name), dataset_info(name).formula, None
    if name in GLMM:
        info = dataset_info(name)
        return load_dataset(name), info.formula, _glmm_truth(info.truth) if info.truth else None
    if name == "crossed_small":
        df, t = simulate_crossed(20, 12, reps=2, seed=3)
        return df, CROSSED, _crossed_truth(t)
    if name == "crossed_50x40":
        df, t = simulate_crossed(50, 40, n_rows=5000, seed=3)
        return df, CROSSED, _crossed_truth(t)
    if name == "crossed_334x80":
        # fully crossed: every one of 334 subjects sees every one of 80 items once (26,720 rows)
        df, t = simulate_crossed(334, 80, reps=1, seed=3)
        return df, CROSSED, _crossed_truth(t)
    if name == "large_n":
        df, truth = simulate_single_factor()
        return df, "y ~ x + (x | subj)", truth
    raise SystemExit(f"unknown data set {name!r}; known: {', '.join(ALL + GLMM)}")


def datasets(names):
    """name -> (data, formula) for several names."""
    return {n: load(n)[:2] for n in names}
