"""Where the time and memory of one fit go, phase by phase, in a fresh process.

One default fit (``marginalize="auto"``, numpyro, 2 chains x 1000 tune + 1000 draws, seed 1) of a
registry data set (InstEval by default: lme4's model, 73,421 rows). The phases are timed inside the
real ``BayesLMM.fit`` by wrapping bayeslmm's own stage functions (nothing of another library is
touched): import, data, design, plan, PyMC model build, JAX translation, compilation of the sampler,
warm-up + sampling, conversion of the draws to InferenceData, recovery of the marginalized effects,
convergence checks; then, outside the fit, the benchmarks' diagnostics (bulk ESS and Rhat over every
parameter, the group-level effects included). Each phase reports its seconds and the process's
peak RSS at its end (a high-water mark, so a phase's own peak is where it rises).

Then the seconds of one log-density + gradient of every plan listed in ``--plans`` (measured, in this
process, after the fit) against ``bayeslmm.model.plan.grad_seconds``'s prediction, and the gradients the
fit took (post-warm-up leapfrog steps, all chains) times the measured seconds per gradient.

    python benchmarks/bench_phases.py [--dataset InstEval] [--plans auto,s,d,all] [--out DIR]

Writes ``phases_<dataset>.json`` (both tables, the load average before and after) under
``benchmarks/results/`` or ``--out``.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import bayeslmm  # noqa: E402 - first: the import itself is a phase

T_IMPORT = time.perf_counter()
RSS_IMPORT = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import ess_rhat, print_table, write_json  # noqa: E402
from registry import family, load  # noqa: E402

PHASES = []  # (name, seconds, peak RSS MB at the end)
RECORDING = {"on": False}  # only the stages of the fit itself, not the gradient table's model builds
CHUNKS = []  # per XLA execution of the sampler: (chain thread, iterations, seconds, leapfrog steps)


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _record(name, secs):
    PHASES.append({"phase": name, "seconds": secs, "peak_rss_mb": _rss_mb()})


def _timed(module, attr, name):
    """Replace bayeslmm's ``module.attr`` by a wrapper that records each call as phase ``name``."""
    orig = getattr(module, attr)

    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        out = orig(*args, **kwargs)
        if RECORDING["on"]:
            _record(name, time.perf_counter() - t0)
        return out

    setattr(module, attr, wrapped)


def instrument():
    """Wrap the stages a fit runs (bayeslmm's own functions, looked up by name when a fit runs)."""
    import bayeslmm.api as api
    import bayeslmm.sampling.driver as driver
    import bayeslmm.sampling.nuts as nuts
    from bayeslmm.posterior.results import LMMFit

    _timed(api, "marginal_data", "marginal data (sufficient statistics)")
    _timed(api, "build_model", "PyMC model build")
    _timed(api, "start_compiling", "start recovery compilation (thread)")
    _timed(driver, "jax_model", "JAX translation (PyTensor rewrite + jax_funcify)")
    _timed(nuts, "_compile_both", "sampler compilation (init + chunk program)")
    _count_chunks(nuts)
    _timed(nuts, "_run_chains_apart", "warm-up + sampling (chains in threads)")
    _timed(driver, "_posterior", "posterior variables of every draw (vmap)")
    _timed(driver, "_inference_data", "InferenceData (az.from_dict)")
    _timed(api, "recover_effects", "recovery of the marginalized effects")
    _timed(LMMFit, "check_convergence", "convergence checks (Rhat of SDs, fixef, sigma)")


def _count_chunks(nuts):
    """Record every chunk the chains run (seconds, leapfrog steps), warm-up chunks included."""
    import threading

    orig = nuts._run_chains_apart

    def wrapped(init, run, *args):
        import jax

        def counted(state, n):
            t0 = time.perf_counter()
            out = jax.block_until_ready(run(state, n))
            secs = time.perf_counter() - t0
            steps = int(np.asarray(out[1][1]["n_steps"])[:n].sum())
            CHUNKS.append((threading.current_thread().name, n, secs, steps))
            return out

        return orig(init, counted, *args)

    nuts._run_chains_apart = wrapped


def chunk_table(tune):
    """Per chain: warm-up and sampling seconds, leapfrog steps and ms per step inside the sampler."""
    rows = []
    for name in sorted({c[0] for c in CHUNKS}):
        done, acc = 0, {"warm-up": [0.0, 0, 0], "sampling": [0.0, 0, 0]}
        for _, n, secs, steps in (c for c in CHUNKS if c[0] == name):
            part = acc["warm-up" if done < tune else "sampling"]
            part[0] += secs
            part[1] += steps
            part[2] += n
            done += n
        for part, (secs, steps, iters) in acc.items():
            rows.append({"chain": name, "part": part, "iterations": iters, "seconds": secs,
                         "leapfrog_steps": steps, "ms_per_step": 1e3 * secs / max(steps, 1)})
    return rows


def grad_table(model, plans, fit_grads, chains):
    """Measured seconds per log-density + gradient of each plan against grad_seconds's prediction."""
    import jax
    from threadpoolctl import threadpool_limits

    from bayeslmm.model.plan import grad_seconds
    from bayeslmm.pymc_model import build_model, marginal_data
    from bayeslmm.sampling.driver import jax_model

    rows = []
    for spec in plans:
        plan = model.plan(spec if spec in ("auto", "none", "all") else spec.split("+"))
        with jax.enable_x64(True), threadpool_limits(1, "blas"):
            md = marginal_data(model.design, plan) if plan.marginalized else None
            jm = jax_model(build_model(model.design, model.priors, plan, md=md))
            x0 = [np.asarray(a[0]) for a in jm.initial_points(1, 1)]
            f = jax.jit(jax.value_and_grad(jm.logp))
            t0 = time.perf_counter()
            jax.block_until_ready(f(x0))
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            n = 0
            while n < 5 or (time.perf_counter() - t0 < 2.0 and n < 500):
                jax.block_until_ready(f(x0))
                n += 1
            per = (time.perf_counter() - t0) / n
        row = {"plan": plan.label, "spec": spec, "predicted_ms": 1e3 * grad_seconds(model.design, plan.marginalized),
               "measured_ms": 1e3 * per, "repeats": n, "compile_s": compile_s}
        if spec == "auto":
            row["fit_grads"] = fit_grads
            # The chains run side by side, one core each: the wall time of their gradients.
            row["fit_grads_x_measured_s_per_chain"] = fit_grads * per / chains
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="InstEval")
    ap.add_argument("--plans", default="auto,s,d,all", help="comma-separated; '+' joins factors of one plan")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--approximation", default=None, help="'laplace': GLMM sets choose among Laplace plans")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()
    _record_abs("import (bayeslmm, PyMC, JAX)", T_IMPORT - T_START, RSS_IMPORT)

    t0 = time.perf_counter()
    data, formula, _ = load(args.dataset)
    _record("data (registry.load)", time.perf_counter() - t0)
    t0 = time.perf_counter()
    model = bayeslmm.BayesLMM(formula, data, family=family(args.dataset))
    _record("design (formula, BayesLMM(...))", time.perf_counter() - t0)
    t0 = time.perf_counter()
    plan = model.plan("auto", args.approximation)
    _record("plan choice (marginalize='auto')", time.perf_counter() - t0)

    instrument()
    RECORDING["on"] = True
    t_fit = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(chains=args.chains, tune=args.tune, draws=args.draws, random_seed=args.seed,
                        progressbar=False, approximation=args.approximation)
    fit_s = time.perf_counter() - t_fit
    RECORDING["on"] = False
    wall = T_IMPORT - T_START + (time.perf_counter() - T_IMPORT)
    t0 = time.perf_counter()
    names, ess, rhat = ess_rhat(fit.posterior)
    min_ess = float(np.nanmin([np.nanmin(np.asarray(ess[v])) for v in names]))
    max_rhat = float(np.nanmax([np.nanmax(np.asarray(rhat[v])) for v in names]))
    _record("diagnostics (bulk ESS + Rhat, every parameter, benchmarks)", time.perf_counter() - t0)
    n_params = int(sum(np.prod(fit.posterior[v].shape[2:]) for v in names))

    fit_grads = float(np.asarray(fit.idata.sample_stats["n_steps"]).sum())
    print(f"{args.dataset}: plan {plan.label}; fit {fit_s:.1f} s (from process start {wall:.1f} s), "
          f"min bulk ESS {min_ess:.0f} over {n_params} parameters, max Rhat {max_rhat:.4f}, "
          f"warnings {len(caught)}, load average {load_before}")
    accounted = sum(p["seconds"] for p in PHASES if p["phase"] not in ("import (bayeslmm, PyMC, JAX)",))
    print_table(PHASES, ["phase", "seconds", "peak_rss_mb"])
    chunks = chunk_table(args.tune)
    print_table(chunks, ["chain", "part", "iterations", "seconds", "leapfrog_steps", "ms_per_step"])
    grads = grad_table(model, [p for p in args.plans.split(",") if p], fit_grads, args.chains)
    print_table(grads, ["plan", "predicted_ms", "measured_ms", "repeats", "compile_s", "fit_grads",
                        "fit_grads_x_measured_s_per_chain"])
    extra = {"dataset": args.dataset, "plan": plan.label, "fit_s": fit_s, "wall_from_start_s": wall,
             "min_bulk_ess": min_ess, "max_rhat": max_rhat, "n_params": n_params, "fit_grads": fit_grads,
             "timings": fit.timings if hasattr(fit, "timings") else None, "warnings": [str(w.message) for w in caught],
             "phases_sum_s": accounted, "chunks": chunks, "gradients": grads, "load_before": load_before,
             "load_after": os.getloadavg(), "peak_rss_mb": _rss_mb()}
    print("wrote", write_json(PHASES, f"phases_{args.dataset}.json", args.out, **extra))


def _record_abs(name, secs, rss):
    PHASES.append({"phase": name, "seconds": secs, "peak_rss_mb": rss})


if __name__ == "__main__":
    main()
