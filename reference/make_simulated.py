"""Writes the two simulated data sets shipped in bayeslmm/datasets/.

Run from the repository root: ``python reference/make_simulated.py``. The
output is deterministic (fixed seeds, gzip without a timestamp), and
tests/test_datasets.py checks that the shipped files still equal what these
functions return.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "bayeslmm" / "datasets"


def simulate_bernoulli(n_subj=300, n_item=30, items_per_subj=20, seed=20240601):
    """Crossed binary responses: ``correct ~ 1 + cond + (1 + cond | subj) + (1 | item)``, logit link.

    Each subject sees ``items_per_subj`` of the ``n_item`` items, drawn at
    random, half of them with cond = +0.5 and half with -0.5. Returns
    (DataFrame, truth).
    """
    truth = {"Intercept": 0.5, "cond": 0.6, "sd_subj_Intercept": 0.8, "sd_subj_cond": 0.4,
             "cor_subj": 0.3, "sd_item_Intercept": 0.6}
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), items_per_subj)
    item = np.concatenate([rng.choice(n_item, items_per_subj, replace=False) for _ in range(n_subj)])
    half = np.repeat([-0.5, 0.5], items_per_subj // 2)
    cond = np.concatenate([rng.permutation(half) for _ in range(n_subj)])
    sd, rho = np.array([truth["sd_subj_Intercept"], truth["sd_subj_cond"]]), truth["cor_subj"]
    L = np.diag(sd) @ np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]]))
    u_subj = rng.standard_normal((n_subj, 2)) @ L.T
    u_item = truth["sd_item_Intercept"] * rng.standard_normal(n_item)
    eta = (truth["Intercept"] + u_subj[subj, 0] + u_item[item]
           + (truth["cond"] + u_subj[subj, 1]) * cond)
    correct = (rng.random(subj.size) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    df = pd.DataFrame({"subj": [f"s{i + 1:03d}" for i in subj], "item": [f"i{i + 1:02d}" for i in item],
                       "cond": cond, "correct": correct})
    return df, truth


def simulate_student(n_subj=40, n_trial=40, seed=20240602):
    """Heavy-tailed reaction times: ``rt ~ 1 + cond + (1 | subj)`` with Student-t(4) noise.

    cond alternates -0.5/+0.5 over each subject's trials; rt is in ms,
    rounded to 0.01. Returns (DataFrame, truth).
    """
    truth = {"Intercept": 600.0, "cond": 40.0, "sd_subj_Intercept": 80.0, "sigma": 50.0, "nu": 4.0}
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subj), n_trial)
    trial = np.tile(np.arange(1, n_trial + 1), n_subj)
    cond = np.where(trial % 2 == 1, -0.5, 0.5)
    u = truth["sd_subj_Intercept"] * rng.standard_normal(n_subj)
    noise = truth["sigma"] * rng.standard_t(truth["nu"], size=subj.size)
    rt = truth["Intercept"] + truth["cond"] * cond + u[subj] + noise
    df = pd.DataFrame({"subj": [f"s{i + 1:02d}" for i in subj], "trial": trial, "cond": cond,
                       "rt": np.round(rt, 2)})
    return df, truth


SIMULATED = {"sim_bernoulli": simulate_bernoulli, "sim_student": simulate_student}


def main():
    for name, make in SIMULATED.items():
        df, _ = make()
        path = OUT / f"{name}.csv.gz"
        df.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
        print(f"{name:14s} {len(df):6d} rows -> {path}")


if __name__ == "__main__":
    main()
