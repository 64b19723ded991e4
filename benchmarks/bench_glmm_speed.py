"""sim_bernoulli: bayeslmm's "none" and Laplace plans before and after the issue-19 changes, and Bambi's model.

One process, one machine. Two changes are measured, each against the code
without it (switched off in this process, not an older checkout):

- ``none``: one crossed factor's intercepts centred on the model intercept
  (``bayeslmm.pymc_model.builder._intercept_centred``; "before" is the
  partial centring without it);
- ``none``: the sampled effects' row sums as one 1-D gather per effect
  (``builder._row_effects``; "before" gathers whole rows of ``r``);
- warm-up: the curvature start taken again after 10 and 25 warm-up
  iterations (``bayeslmm.sampling.nuts.RESTART_AT``; "before" is ``()``).

The reference ("bambi") is Bambi's model written by hand in PyMC (Bambi is
not installed here): ``Intercept``, ``b`` under bayeslmm's priors, non-centred
``z ~ N(0, 1)``, ``u = z * sd``, ``Bernoulli(logit_p=eta)``; sampled by
PyMC's ``pymc.sampling.jax.sample_numpyro_nuts`` (NumPyro's NUTS, as Bambi
does) and, for the per-gradient time, compiled the way our sampler compiles
ours (``bayeslmm.sampling.driver.jax_model``). It is the uncorrelated
``(1 + cond || subj)`` model, what Bambi fits.

Table 1, per gradient: microseconds of a jitted log-density + gradient at
5 jittered initial points, models interleaved, minimum over 10 rounds.
Table 2, fits (2 chains, ``--draws`` + ``--draws``, seed ``--seed``): wall
time, its phases (sampling with compilation; warm-up and sampling chunks
of chain 0; recovery), post-warm-up and warm-up gradients (chain 0's
leapfrog steps), min bulk ESS over every parameter including the
group-level effects, ESS per post-warm-up gradient, ESS per second, max Rhat.

    python benchmarks/bench_glmm_speed.py [--draws 500] [--seed 1] [--out bench_glmm_speed.json] [--quick]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings

import numpy as np
from _common import ess_rhat, print_table, write_json

import bayeslmm.pymc_model.builder as builder
import bayeslmm.sampling.nuts as nuts
from bayeslmm import BayesLMM
from bayeslmm.datasets import load_dataset

UNCOR = "correct ~ 1 + cond + (1 + cond || subj) + (1 | item)"
COR = "correct ~ 1 + cond + (1 + cond | subj) + (1 | item)"
_CENTRE = builder._intercept_centred
_ROWS = builder._row_effects
_RESTARTS = nuts.RESTART_AT


def _row_gather(blk, r):
    """The sampled effects' row sums as before: one gather of whole rows of r."""
    return (blk.values * r[blk.group_index]).sum(axis=1)


def configure(after: bool):
    builder._intercept_centred = _CENTRE if after else (lambda design, centring: None)
    builder._row_effects = _ROWS if after else _row_gather
    nuts.RESTART_AT = _RESTARTS if after else ()


def bambi_model(m):
    """Bambi's model of ``(1 + cond || subj) + (1 | item)`` under bayeslmm's resolved priors, written in PyMC."""
    import pymc as pm

    des = m.design
    pri = {(p.cls, p.group, p.coef): p for p in m.priors}
    subj, item = des.block("subj"), des.block("item")
    cond = des.X[:, list(des.fixed_names).index("cond")]
    ic, bc = pri[("Intercept", None, None)], pri[("b", None, "cond")]
    s_i, s_c, s_it = (pri[("sd", "subj", "Intercept")], pri[("sd", "subj", "cond")], pri[("sd", "item", "Intercept")])
    assert ic.dist == "student_t" and bc.dist == "normal" and {s_i.dist, s_c.dist, s_it.dist} == {"half_student_t"}
    with pm.Model(check_bounds=False) as model:
        a = pm.StudentT("Intercept", nu=ic.args[0], mu=ic.args[1], sigma=ic.args[2])
        b = pm.Normal("b", bc.args[0], bc.args[1])
        sd_s = pm.HalfStudentT("sd_subj", nu=s_i.args[0], sigma=np.array([s_i.args[1], s_c.args[1]]), shape=2)
        sd_i = pm.HalfStudentT("sd_item", nu=s_it.args[0], sigma=s_it.args[1])
        zs = pm.Normal("z_subj", 0.0, 1.0, shape=(subj.n_levels, 2))
        zi = pm.Normal("z_item", 0.0, 1.0, shape=item.n_levels)
        us = pm.Deterministic("r_subj", zs * sd_s)
        ui = pm.Deterministic("r_item", zi * sd_i)
        g, h = subj.group_index, item.group_index
        eta = a + b * (cond - cond.mean()) + us[g, 0] + us[g, 1] * cond + ui[h]
        pm.Bernoulli("y", logit_p=eta, observed=des.y_original.astype(int))
    return model


def grad_table(models, rounds=10, repeat=10):
    """label -> microseconds per jitted value + gradient (min over rounds, mean over 5 jittered points)."""
    import jax
    import jax.numpy as jnp
    from threadpoolctl import threadpool_limits

    from bayeslmm.sampling.driver import jax_model

    fns = {}
    with jax.enable_x64(True):
        for label, model in models.items():
            jm = jax_model(model)
            pts = [[jnp.asarray(p[c]) for p in jm.initial_points(5, 7)] for c in range(5)]
            f = jax.jit(jax.value_and_grad(jm.logp))
            t0 = time.perf_counter()
            jax.block_until_ready(f(pts[0]))
            fns[label] = (f, pts, time.perf_counter() - t0)
        best = {k: np.inf for k in fns}
        with threadpool_limits(1, "blas"):
            for _ in range(rounds):
                for label, (f, pts, _) in fns.items():
                    t0 = time.perf_counter()
                    for _ in range(repeat):
                        for x in pts:
                            jax.block_until_ready(f(x))
                    best[label] = min(best[label], (time.perf_counter() - t0) / (repeat * len(pts)))
    return {k: (1e6 * best[k], fns[k][2]) for k in fns}


class ChunkLog:
    """Times and leapfrog steps of chain 0's chunks, split at the end of warm-up (wraps the chunk driver)."""

    def __init__(self):
        self.rows = []
        self._orig = nuts._run_chains_apart

    def __enter__(self):
        log, orig = self.rows, self._orig

        def patched(init, run, *args, **kw):
            def timed(state, n):
                t0 = time.perf_counter()
                out = run(state, n)
                steps = np.asarray(out[1][1]["n_steps"])[:n]
                if threading.current_thread().name.endswith("-0"):
                    log.append((int(out[0].i), time.perf_counter() - t0, float(steps.sum())))
                return out
            return orig(init, timed, *args, **kw)

        nuts._run_chains_apart = patched
        return self

    def __exit__(self, *exc):
        nuts._run_chains_apart = self._orig

    def split(self, tune):
        warm = [r for r in self.rows if r[0] <= tune]
        post = [r for r in self.rows if r[0] > tune]
        return (sum(r[1] for r in warm), sum(r[2] for r in warm), sum(r[1] for r in post), sum(r[2] for r in post))


def metrics(post, n_grads):
    names, ess, rhat = ess_rhat(post)
    min_ess = float(np.nanmin([np.nanmin(np.asarray(ess[v])) for v in names]))
    worst = min(names, key=lambda v: float(np.nanmin(np.asarray(ess[v]))))
    return {"min_bulk_ess": min_ess, "worst": worst, "ess_per_grad": min_ess / n_grads,
            "max_rhat": float(np.nanmax([np.nanmax(np.asarray(rhat[v])) for v in names]))}


def fit_ours(m, label, kw, draws, seed):
    with warnings.catch_warnings(), ChunkLog() as log:
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        fit = m.fit(chains=2, draws=draws, tune=draws, random_seed=seed, progressbar=False, compile_cache=False, **kw)
        wall = time.perf_counter() - t0
    warm_s, warm_g, post_s, post_g = log.split(draws)
    n_grads = float(fit.idata.sample_stats["n_steps"].sum())
    row = {"fit": label, "wall_s": wall, "sampling_s": fit.timings["sampling"], "recover_s": fit.timings["recover"],
           "warmup_chunks_s": warm_s, "post_chunks_s": post_s, "warmup_grads_c0": warm_g, "post_grads_c0": post_g,
           "post_grads": n_grads, **metrics(fit.posterior, n_grads)}
    row["ess_per_s"] = row["min_bulk_ess"] / wall
    return row


def fit_bambi(m, draws, seed):
    from pymc.sampling.jax import sample_numpyro_nuts

    model = bambi_model(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        idata = sample_numpyro_nuts(draws=draws, tune=draws, chains=2, random_seed=seed, model=model,
                                    progressbar=False, chain_method="parallel",
                                    idata_kwargs={"log_likelihood": False})
        wall = time.perf_counter() - t0
    st = idata.sample_stats
    n_grads = float(st["n_steps"].sum())
    post = idata.posterior.rename({"Intercept": "fixef"})
    row = {"fit": "bambi (hand-written PyMC, numpyro)", "wall_s": wall, "post_grads": n_grads,
           **metrics(post, n_grads)}
    row["ess_per_s"] = row["min_bulk_ess"] / wall
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="bench_glmm_speed.json")
    ap.add_argument("--quick", action="store_true", help="per-gradient table only")
    args = ap.parse_args()
    data = load_dataset("sim_bernoulli")
    unc, cor = BayesLMM(UNCOR, data, family="bernoulli"), BayesLMM(COR, data, family="bernoulli")
    lap = dict(marginalize="all", approximation="laplace")
    load0 = os.getloadavg()

    models = {}
    for after in (False, True):
        configure(after)
        tag = "after" if after else "before"
        models[f"none || {tag}"] = builder.build_model(unc.design, unc.priors, unc.plan("none"))
        models[f"none | {tag}"] = builder.build_model(cor.design, cor.priors, cor.plan("none"))
    models["bambi ||"] = bambi_model(unc)
    models["laplace |"] = builder.build_model(cor.design, cor.priors, cor.plan(**lap))
    grads = grad_table(models)
    grows = [{"model": k, "us_per_grad": v[0], "first_call_s": v[1],
              "ratio_to_bambi": v[0] / grads["bambi ||"][0]} for k, v in grads.items()]
    print_table(grows, ["model", "us_per_grad", "ratio_to_bambi", "first_call_s"])

    rows = []
    if not args.quick:
        plan = [("none || before", unc, {"marginalize": "none"}, False),
                ("none || after", unc, {"marginalize": "none"}, True),
                ("none | before", cor, {"marginalize": "none"}, False),
                ("none | after", cor, {"marginalize": "none"}, True),
                ("laplace | before", cor, lap, False),
                ("laplace | after", cor, lap, True)]
        rows.append(fit_bambi(unc, args.draws, args.seed))
        print_table(rows[-1:], list(rows[-1]))
        for label, m, kw, after in plan:
            configure(after)
            rows.append(fit_ours(m, label, kw, args.draws, args.seed))
            print_table(rows[-1:], list(rows[-1]))
        configure(True)
        cols = ["fit", "wall_s", "sampling_s", "recover_s", "warmup_chunks_s", "post_chunks_s", "warmup_grads_c0",
                "post_grads_c0", "min_bulk_ess", "worst", "ess_per_grad", "ess_per_s", "max_rhat"]
        print_table(rows, cols)
    load1 = os.getloadavg()
    print("load average before", [round(x, 2) for x in load0], "after", [round(x, 2) for x in load1])
    path = write_json({"gradients": grows, "fits": rows}, args.out, draws=args.draws, seed=args.seed,
                      load_average_start=list(load0), load_average_end=list(load1))
    print("wrote", path)


if __name__ == "__main__":
    main()
