"""Simulated data with a known truth, for the demo, tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["simulate_crossed", "simulate_insteval_shaped", "simulate_nested"]


def _corr_chol(sd, rho):
    sd = np.asarray(sd, dtype=float)
    d = sd.size
    C = np.full((d, d), rho) + (1 - rho) * np.eye(d)
    return np.diag(sd) @ np.linalg.cholesky(C)


def simulate_crossed(n_subj=30, n_item=20, reps=1, beta=(6.0, 0.1), sd_subj=(0.3, 0.1), sd_item=(0.2, 0.05),
                     rho=0.3, sigma=0.5, n_rows=None, seed=0):
    """Crossed subjects x items data: ``y ~ cond + (cond | subj) + (cond | item)``.

    ``cond`` is +-0.5 (a centred two-level contrast). Every subject sees every
    item ``reps`` times, unless ``n_rows`` is given, in which case rows draw
    subject and item at random. Returns (DataFrame, truth dict).
    """
    rng = np.random.default_rng(seed)
    if n_rows is None:
        subj = np.repeat(np.arange(n_subj), n_item * reps)
        item = np.tile(np.repeat(np.arange(n_item), reps), n_subj)
    else:
        subj = rng.integers(n_subj, size=n_rows)
        item = rng.integers(n_item, size=n_rows)
    n = subj.size
    cond = rng.choice([-0.5, 0.5], size=n)
    Z = np.column_stack([np.ones(n), cond])
    u_s = rng.standard_normal((n_subj, 2)) @ _corr_chol(sd_subj, rho).T
    u_i = rng.standard_normal((n_item, 2)) @ _corr_chol(sd_item, rho).T
    mu = beta[0] + beta[1] * cond + (Z * u_s[subj]).sum(1) + (Z * u_i[item]).sum(1)
    y = mu + sigma * rng.standard_normal(n)
    df = pd.DataFrame({"y": y, "cond": cond, "subj": [f"s{i:03d}" for i in subj],
                       "item": [f"i{i:03d}" for i in item]})
    truth = {"fixef": {"Intercept": beta[0], "cond": beta[1]}, "sd_subj": sd_subj, "sd_item": sd_item,
             "rho": rho, "sigma": sigma, "r_subj": u_s, "r_item": u_i}
    return df, truth


def simulate_insteval_shaped(n_rows=73_421, n_students=2_972, n_lecturers=1_128, n_depts=14,
                             sd=(0.3, 0.4, 0.1), beta=3.2, sigma=1.2, seed=0):
    """Data shaped like lme4's InstEval: ``y ~ 1 + (1|s) + (1|d) + (1|dept)``.

    Lecturers are nested in departments; each row is a random student-lecturer
    pair. Returns (DataFrame, truth dict).
    """
    rng = np.random.default_rng(seed)
    s = rng.integers(n_students, size=n_rows)
    d = rng.integers(n_lecturers, size=n_rows)
    dept_of = rng.integers(n_depts, size=n_lecturers)
    dept = dept_of[d]
    u = [rng.normal(0, sd[0], n_students), rng.normal(0, sd[1], n_lecturers), rng.normal(0, sd[2], n_depts)]
    y = beta + u[0][s] + u[1][d] + u[2][dept] + rng.normal(0, sigma, n_rows)
    df = pd.DataFrame({"y": y, "s": s, "d": d, "dept": dept})
    truth = {"fixef": {"Intercept": beta}, "sd": sd, "sigma": sigma}
    return df, truth


def simulate_nested(n_outer=10, n_inner=3, reps=2, beta=60.0, sd_outer=1.3, sd_inner=2.9, sigma=0.8, seed=0):
    """Two-level nested data shaped like lme4's Pastes: ``y ~ 1 + (1 | outer/inner)``.

    ``n_inner`` levels of ``inner`` within each of ``n_outer`` levels of
    ``outer``, ``reps`` rows each; the defaults are Pastes' shape (10 batches
    x 3 casks x 2 samples) and lme4's estimates on it. Inner labels repeat
    across outer levels ("a", "b", ...), as in Pastes, so only
    ``outer/inner`` (not ``(1 | inner)``) names the nested factor.
    Returns (DataFrame, truth dict).
    """
    rng = np.random.default_rng(seed)
    outer = np.repeat(np.arange(n_outer), n_inner * reps)
    inner = np.tile(np.repeat(np.arange(n_inner), reps), n_outer)
    u_o = rng.normal(0.0, sd_outer, n_outer)
    u_i = rng.normal(0.0, sd_inner, (n_outer, n_inner))
    y = beta + u_o[outer] + u_i[outer, inner] + rng.normal(0.0, sigma, outer.size)
    df = pd.DataFrame({"y": y, "outer": [f"o{i:03d}" for i in outer], "inner": [f"c{i:03d}" for i in inner]})
    truth = {"fixef": {"Intercept": beta}, "sd_outer": sd_outer, "sd_inner": sd_inner, "sigma": sigma,
             "r_outer": u_o, "r_inner": u_i.ravel()}
    return df, truth
