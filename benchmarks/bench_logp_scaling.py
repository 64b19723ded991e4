"""Cost of one marginal log-density + gradient evaluation as the number of rows grows.

Simulated crossed design: 50 subjects x 40 items, intercept and slope for
each (d = 2), N = 1e3 ... 1e6 rows. Two modes of the same density:

- ``all`` (sufficient statistics, every factor marginalized): the
  per-evaluation cost must not depend on N;
- ``rows`` (the residual recomputed per evaluation, as when other effects
  are sampled): O(N).

Times ``jax.jit(jax.value_and_grad(marginal_logp))`` per call (best of
many short batches, the machine may be shared), the first call (tracing and
XLA compilation) and ``MarginalData.build`` (the one-off precomputation).
BLAS runs single-threaded by default (``--blas-threads``): the LAPACK calls
of the dense part are small, and with OpenBLAS threads on a busy 2-core
machine one evaluation was measured 20x slower (7 ms instead of 0.35 ms).
Writes results/logp_scaling.json.

    python benchmarks/bench_logp_scaling.py [--max-n 1000000] [--blas-threads 1]
"""

import argparse
import time

import numpy as np
from _common import print_table, write_json
from threadpoolctl import threadpool_limits

from bayeslmm.model.design import ReBlock
from bayeslmm.ops import MarginalData, marginal_logp


def simulate(n, n_subj=50, n_item=40, seed=0):
    rng = np.random.default_rng(seed)
    subj, item = rng.integers(0, n_subj, n), rng.integers(0, n_item, n)
    x = rng.choice([-0.5, 0.5], n)
    X = np.c_[np.ones(n), x]
    u_s = rng.normal(size=(n_subj, 2)) * [0.3, 0.1]
    u_i = rng.normal(size=(n_item, 2)) * [0.2, 0.05]
    y = 6.0 + 0.05 * x + np.sum(X * (u_s[subj] + u_i[item]), 1) + rng.normal(0, 0.4, n)
    factors = [ReBlock.of(subj, X, n_subj, name="subj"), ReBlock.of(item, X, n_item, name="item")]
    return y, X, factors


def time_calls(f, args, budget_s=1.5, batches=30):
    """Best mean seconds per call over ``batches`` batches of about budget_s / batches each."""
    import jax

    jax.block_until_ready(f(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    n = max(1, int(budget_s / batches / max(time.perf_counter() - t0, 1e-6)))
    best = float("inf")
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            out = f(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main():
    import jax

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-n", type=float, default=1e6)
    ap.add_argument("--blas-threads", type=int, default=1, help="0: leave OpenBLAS as it is")
    args = ap.parse_args()
    if args.blas_threads:
        threadpool_limits(args.blas_threads, user_api="blas")
    Ls = [np.array([[0.3, 0.0], [0.02, 0.1]]), np.array([[0.2, 0.0], [0.01, 0.05]])]
    beta, sigma = np.array([6.0, 0.05]), 0.4
    rows = []
    for n in [10**k for k in range(3, 7) if 10**k <= args.max_n]:
        y, X, factors = simulate(n)
        for mode in ["all", "rows"]:
            t0 = time.perf_counter()
            md = MarginalData.build(y, X, factors, sufficient=mode == "all")
            build_s = time.perf_counter() - t0
            vg = jax.jit(jax.value_and_grad(lambda b, s, L, md=md: marginal_logp(md, b, s, L),
                                            argnums=(0, 1, 2)))
            t0 = time.perf_counter()
            jax.block_until_ready(vg(beta, sigma, Ls))
            first_s = time.perf_counter() - t0
            rows.append({"N": n, "mode": mode, "build_s": build_s, "first_call_s": first_s,
                         "value_grad_us": 1e6 * time_calls(vg, (beta, sigma, Ls)),
                         "blas_threads": args.blas_threads or "default"})
            print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    print("wrote", write_json(rows, "logp_scaling.json"))


if __name__ == "__main__":
    main()
