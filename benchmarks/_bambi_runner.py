"""One Bambi fit (NumPyro NUTS), run by benchmarks/peers.py in Bambi's own virtual environment.

    benchmarks/.peers-venv/bin/python benchmarks/_bambi_runner.py SPEC.json RESULT.json

Bambi pins other versions of formulae/PyMC than bayeslmm, so this script
imports neither bayeslmm nor benchmarks/_common.py: it reads everything from
SPEC (JSON) and writes RESULT (JSON) with the same keys as the bayeslmm and
brms runners.

SPEC: data (CSV path), formula (Bambi syntax: its group-specific terms are
always uncorrelated, so ``(1 + x | g)`` here is lme4's ``(1 + x || g)``; a
binomial response is ``p(successes, trials)``), family (Bambi's name, with its
default link: gaussian identity, bernoulli and binomial logit, poisson log;
default "gaussian"),
groups (grouping columns, read as strings), chains, tune, draws, seed,
target_accept, and priors: bayeslmm's resolved priors as a list of
{cls, group, coef, dist, args}, translated here to Bambi priors one to one.

RESULT: wall_s (bmb.Model(...) + .fit(...)), sampling_s (warmup and sampling
of the NumPyro run, without the JAX compilation inside it), min_bulk_ess and
max_rhat over every parameter in the posterior (common terms, group SDs and
every group-specific effect), divergences, n_grad (NumPyro's leapfrog steps
of the post-warm-up draws, all chains), the runner's own peak RSS,
intervals (95%, canonical names b[x], sd[g,x], sigma), versions.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path

# NumPyro runs chains in parallel only with one XLA host device per chain; set before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()


def bambi_priors(priors, bmb):
    """bayeslmm's resolved priors -> Bambi's priors dict (keys are Bambi's term names)."""
    out = {}
    for p in priors:
        cls, group, coef, dist, args = p["cls"], p["group"], p["coef"], p["dist"], p["args"]
        if cls == "cor":
            continue  # Bambi has no correlated group-specific effects
        d = _dist(dist, args, bmb, positive=cls in ("sd", "sigma"))
        if cls == "Intercept":
            out["Intercept"] = d
        elif cls == "b":
            out[coef] = d
        elif cls == "sd":
            term = "1" if coef == "Intercept" else coef
            out[f"{term}|{group}"] = bmb.Prior("Normal", mu=0, sigma=d)
        elif cls == "sigma":
            out["sigma"] = d
    return out


def _dist(dist, args, bmb, positive):
    if dist == "normal":
        return bmb.Prior("Normal", mu=args[0], sigma=args[1])
    if dist == "student_t":
        return bmb.Prior("StudentT", nu=args[0], mu=args[1], sigma=args[2])
    if dist == "half_student_t":
        return bmb.Prior("HalfStudentT", nu=args[0], sigma=args[1])
    if dist == "half_normal":
        return bmb.Prior("HalfNormal", sigma=args[0])
    if dist == "half_cauchy":
        return bmb.Prior("HalfCauchy", beta=args[0])
    if dist == "cauchy":
        return bmb.Prior("Cauchy", alpha=args[0], beta=args[1])
    if dist == "exponential":
        return bmb.Prior("Exponential", lam=args[0])
    if dist == "flat":
        return bmb.Prior("Flat")
    raise ValueError(f"no Bambi translation for prior {dist}{tuple(args)}")


def canonical(name):
    """Bambi's variable name -> canonical name (b[x], sd[g,x], sigma), or None for group-specific effects."""
    if name == "sigma":
        return "sigma"
    if "|" in name:
        if name.endswith("_sigma"):
            term, group = name[: -len("_sigma")].split("|", 1)
            return f"sd[{group},{'Intercept' if term == '1' else term}]"
        return None
    return f"b[{name}]"

from _numpyro_timing import instrument_numpyro, sampling_times  # noqa: E402


def main(spec_path, out_path):
    spec = json.loads(Path(spec_path).read_text())
    res = {}
    try:
        import arviz as az
        import bambi as bmb
        import numpy as np
        import pandas as pd

        rec = instrument_numpyro()
        data = pd.read_csv(spec["data"], dtype={g: str for g in spec.get("groups", [])})
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = bmb.Model(spec["formula"], data, family=spec.get("family", "gaussian"),
                              priors=bambi_priors(spec["priors"], bmb), center_predictors=True,
                              noncentered=True)
            idata = model.fit(draws=spec["draws"], tune=spec["tune"], chains=spec["chains"],
                              target_accept=spec.get("target_accept", 0.8), random_seed=spec["seed"],
                              inference_method="numpyro", progressbar=False)
        wall = time.perf_counter() - t0
        post = idata.posterior
        names = [v for v in post.data_vars if not v.endswith("_offset")]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess = az.ess(post[names], method="bulk")
            rhat = az.rhat(post[names])
        iv = {}
        for v in names:
            c = canonical(v)
            if c is None:
                continue
            a = np.asarray(post[v])
            if a.ndim == 2:
                iv[c] = [float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))]
        div = idata.sample_stats.get("diverging")
        steps = idata.sample_stats.get("n_steps")
        run_s, compile_s = sampling_times(rec)
        res = {"wall_s": wall, "sampling_s": run_s - compile_s, "sampler_compile_s": compile_s,
               "pymc_sampling_time": float(post.attrs.get("sampling_time", float("nan"))),
               "min_bulk_ess": float(np.nanmin([np.nanmin(np.asarray(ess[v])) for v in names])),
               "max_rhat": float(np.nanmax([np.nanmax(np.asarray(rhat[v])) for v in names])),
               "divergences": int(np.asarray(div).sum()) if div is not None else 0,
               "n_grad": float(np.asarray(steps).sum()) if steps is not None else None,
               "intervals": iv, "parameters": names,
               "versions": {"bambi": bmb.__version__, "pymc": _version("pymc"), "numpyro": _version("numpyro"),
                            "formulae": _version("formulae")}}
    except Exception as e:  # noqa: BLE001 - reported to the parent, which prints it
        res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_path).write_text(json.dumps(res))


def _version(pkg):
    from importlib.metadata import version

    return version(pkg)


if __name__ == "__main__":
    main(*sys.argv[1:3])
