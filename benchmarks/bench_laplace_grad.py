"""Cost of one Laplace log-density + gradient, and its Newton work, against the exact "none" gradient.

For cbpp (binomial), grouseticks (poisson, two crossed factors) and
sim_bernoulli (6,000 rows, 300 x 30 crossed), at three kinds of points:

- ``init``: the PyMC model's initial point (the kernel inputs it maps to),
- ``lme4``: lme4's Laplace estimates (bayeslmm/datasets/lme4_reference.json),
- ``jitter``: 5 points around them, ``beta ~ N(hat, se)``, ``log sd ~ N(log hat, 0.2)``
  (a posterior-like spread), reported as the mean.

Columns: microseconds per jitted kernel value + gradient
(:func:`bayeslmm.ops.laplace.laplace_logp` under ``jax.value_and_grad``),
Newton steps and step halvings (:func:`bayeslmm.ops.laplace.laplace_newton_info`),
and, at the initial point only, microseconds per model-level gradient of both
plans (``_common.grad_time``: the whole PyMC log-density, priors included).
The exact plan's cost does not depend on the point (no iterations). Writes
results/bench_laplace_grad.json.

    python benchmarks/bench_laplace_grad.py [--datasets cbpp,grouseticks,sim_bernoulli] [--repeat 50]
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import grad_time, print_table, write_json
from threadpoolctl import threadpool_limits

from bayeslmm import BayesLMM, build_model
from bayeslmm.datasets import load_dataset
from bayeslmm.ops.laplace import laplace_logp, laplace_newton_info
from bayeslmm.ops.laplace_op import LaplaceLogp
from bayeslmm.pymc_model.builder import marginal_data
from bayeslmm.pymc_model.laplace import laplace_data, laplace_offset

SETS = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "cbpp"),
    "grouseticks": ("TICKS ~ C(YEAR) + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "poisson", "grouseticks_poisson"),
    "sim_bernoulli": ("correct ~ 1 + cond + (1 + cond | subj) + (1 | item)", "bernoulli", "sim_bernoulli"),
}
REF = Path(__file__).resolve().parents[1] / "bayeslmm" / "datasets" / "lme4_reference.json"


def lme4_point(design, md, ref):
    """(beta, Ls in md.names order, beta se) from lme4's estimates; fixed effects matched by position."""
    beta = np.array(list(ref["fixef"].values()))
    se = np.array(list(ref["fixef_se"].values()))
    if beta.size != len(design.fixed_names):
        raise ValueError(f"lme4 has {beta.size} fixed effects, the design {len(design.fixed_names)}")
    Ls = []
    for name in md.names:
        blk = design.block(name)
        rows = [r for r in ref["varcorr"] if r["grp"] == name]
        lme4_terms = ["(Intercept)" if t == "Intercept" else t for t in blk.terms]
        cov = np.zeros((blk.dim, blk.dim))
        for r in rows:
            i = lme4_terms.index(r["var1"])
            j = lme4_terms.index(r.get("var2") or r["var1"])
            cov[i, j] = cov[j, i] = r["vcov"]
        Ls.append(np.linalg.cholesky(cov + 1e-12 * np.eye(blk.dim)))
    return beta, Ls, se


def init_point(model):
    """The Laplace Op's (beta, Ls, offset) at the model's initial point."""
    import pytensor.graph.basic as gb

    node = next(v.owner for v in gb.ancestors([model.logp()])
                if v.owner is not None and isinstance(v.owner.op, LaplaceLogp))
    vals = model.compile_fn(node.inputs, point_fn=True)(model.initial_point())
    k = len(node.inputs) - 2
    return np.asarray(vals[0]), [np.asarray(v) for v in vals[1:1 + k]], np.asarray(vals[1 + k])


def time_kernel(f, args, repeat):
    with threadpool_limits(1, "blas"):
        jax.block_until_ready(f(*args))
        t0 = time.perf_counter()
        for _ in range(repeat):
            jax.block_until_ready(f(*args))
    return (time.perf_counter() - t0) / repeat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(SETS))
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--out", default="bench_laplace_grad.json")
    args = ap.parse_args()
    refs = json.loads(REF.read_text())
    rows = []
    with jax.enable_x64(True):
        for name in args.datasets.split(","):
            formula, family, refname = SETS[name]
            m = BayesLMM(formula, load_dataset(name), family=family)
            plan_l = m.plan(marginalize="all", approximation="laplace")
            plan_n = m.plan(marginalize="none")
            model_l = build_model(m.design, m.priors, plan_l)
            t_model_l = grad_time(model_l, repeat=args.repeat)
            t_model_n = grad_time(build_model(m.design, m.priors, plan_n), repeat=args.repeat)
            md = marginal_data(m.design, plan_l)
            ld = laplace_data(m.design, md)
            base = laplace_offset(m.design)

            def lp(beta, Ls, offset):
                return laplace_logp(md, ld.family, beta, Ls, offset, ld.trials, None, ld.max_steps, ld.tol)

            f = jax.jit(jax.value_and_grad(lp, argnums=(0, 1)))
            beta, Ls, se = lme4_point(m.design, md, refs[refname])
            rng = np.random.default_rng(0)
            pts = {"init": [init_point(model_l)], "lme4": [(beta, Ls, base)],
                   "jitter": [(beta + se * rng.normal(size=beta.size),
                               [L * np.exp(0.2 * rng.normal()) for L in Ls], base) for _ in range(5)]}
            for label, plist in pts.items():
                secs, steps, halv = [], [], []
                for b, L, o in plist:
                    b, L, o = jnp.asarray(b), [jnp.asarray(x) for x in L], jnp.asarray(o)
                    secs.append(time_kernel(f, (b, L, o), args.repeat))
                    info = laplace_newton_info(md, ld.family, b, L, o, ld.trials, None, ld.max_steps, ld.tol)
                    steps.append(info["steps"])
                    halv.append(info["halvings"])
                row = {"dataset": name, "n": m.design.n, "point": label,
                       "laplace_kernel_us": 1e6 * float(np.mean(secs)), "newton_steps": float(np.mean(steps)),
                       "halvings": float(np.mean(halv))}
                if label == "init":
                    row.update(laplace_model_us=1e6 * t_model_l, none_model_us=1e6 * t_model_n)
                rows.append(row)
                print_table([row], list(row))
    cols = ["dataset", "n", "point", "laplace_kernel_us", "newton_steps", "halvings", "laplace_model_us",
            "none_model_us"]
    print_table(rows, cols)
    load = [round(x, 2) for x in os.getloadavg()]
    print("load average", load)
    write_json(rows, args.out, repeat=args.repeat, load_average=load)


if __name__ == "__main__":
    main()
