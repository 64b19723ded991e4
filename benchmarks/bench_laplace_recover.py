"""The Laplace recovery loop: compile seconds and milliseconds per draw, started at each draw's mode and from 0.

For each GLMM set (``bench_laplace_grad.SETS``), plan ``all`` with the Laplace
approximation: the loop that :func:`bayeslmm.posterior.recover_laplace.recover_laplace_effects`
runs is compiled for one chunk of draws (``laplace_chunking``'s size for
``--draws`` draws, the fit's XLA options), once taking the starts that
bayeslmm's NUTS hands on (each draw's conditional mode, found here by a
vmapped :func:`bayeslmm.ops.laplace.laplace_mode`) and once without (Newton
from ``v = 0``). The draws are lme4's estimates with the fixed effects
jittered (SD 0.05). Run time: the best of ``--repeat`` executions of the
chunk, one thread. Writes results/laplace_recover.json.

    python benchmarks/bench_laplace_recover.py [--datasets cbpp,grouseticks,sim_bernoulli] [--draws 1000]
"""

import argparse
import json
import os
import time

import jax
import numpy as np
from _common import print_table, write_json
from bench_laplace_grad import REF, SETS, lme4_point
from threadpoolctl import threadpool_limits

from bayeslmm import BayesLMM
from bayeslmm.datasets import load_dataset
from bayeslmm.ops.laplace import laplace_mode
from bayeslmm.posterior.recover_laplace import compile_laplace_loop, laplace_chunking
from bayeslmm.pymc_model.builder import marginal_data
from bayeslmm.pymc_model.laplace import laplace_data, laplace_offset
from bayeslmm.sampling.xla import options_for


def measure(name, draws, repeat, refs):
    formula, family, refname = SETS[name]
    m = BayesLMM(formula, load_dataset(name), family=family)
    plan = m.plan(marginalize="all", approximation="laplace")
    md = marginal_data(m.design, plan)
    ld = laplace_data(m.design, md)
    base = laplace_offset(m.design)
    beta, Ls, _ = lme4_point(m.design, md, refs[refname])
    chunk, _ = laplace_chunking(draws, m.design, plan, md)
    rng = np.random.default_rng(0)
    b = np.asarray(beta)[None] + 0.05 * rng.normal(size=(chunk, len(beta)))
    L = [np.broadcast_to(np.asarray(x), (chunk,) + np.shape(x)).copy() for x in Ls]
    off = np.broadcast_to(np.zeros(m.design.n) if base is None else base, (chunk, m.design.n)).copy()
    modes = np.asarray(jax.jit(jax.vmap(lambda bb, LL, oo: laplace_mode(
        ld.md, ld.family, bb, LL, oo, ld.trials, None, ld.max_steps, ld.tol)[0]))(b, L, off))
    key = np.asarray(jax.random.PRNGKey(0))
    rows = []
    for start in ("mode", "zero"):
        t0 = time.perf_counter()
        run = compile_laplace_loop(m.design, plan, md, chunk, options_for(m.design.n), has_starts=start == "mode")
        compile_s = time.perf_counter() - t0
        args = (key, b, L, off, None, modes if start == "mode" else None)
        jax.block_until_ready(run(*args))
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            jax.block_until_ready(run(*args))
            best = min(best, time.perf_counter() - t0)
        rows.append({"dataset": name, "n_rows": m.design.n, "effects": int(sum(md.sizes)), "start": start,
                     "chunk": chunk, "compile_s": compile_s, "ms_per_draw": 1e3 * best / chunk})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="cbpp,grouseticks,sim_bernoulli")
    ap.add_argument("--draws", type=int, default=1000, help="posterior draws whose chunk size is used")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="laplace_recover.json")
    args = ap.parse_args()
    refs = json.loads(REF.read_text())
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    rows = []
    with jax.enable_x64(True), threadpool_limits(1, "blas"):
        for name in args.datasets.split(","):
            rows += measure(name, args.draws, args.repeat, refs)
    load["end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(rows, ["dataset", "n_rows", "effects", "start", "chunk", "compile_s", "ms_per_draw"])
    print(write_json(rows, args.out, draws=args.draws, repeat=args.repeat, load_average=load))


if __name__ == "__main__":
    main()
