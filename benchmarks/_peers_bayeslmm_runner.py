"""One bayeslmm fit, run by benchmarks/peers.py in its own process (so that its peak RSS is its own).

    python benchmarks/_peers_bayeslmm_runner.py SPEC.json RESULT.json

SPEC holds: data (CSV path), formula, plan ("none", "all", "auto", ...),
chains, tune, draws, seed, target_accept. RESULT gets the same keys as the
Bambi and brms runners: wall_s (BayesLMM(...) + .fit(...), compilation and
recovery of the integrated-out effects included), sampling_s (warmup and
sampling of the NumPyro run, without the JAX compilation inside it), min bulk
ESS and max Rhat over every parameter (group-level effects included),
divergences, the runner's own peak RSS, and 95% intervals of the fixed
effects, SDs and sigma under canonical names (b[x], sd[g,x], sigma).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def instrument_numpyro():
    """Time the NumPyro run inside ``pm.sample`` and the JAX compilation that happens inside it.

    PyMC's own ``sampling_time`` covers the NumPyro run including XLA
    compilation of the sampler; Stan's elapsed times exclude its C++
    compilation. To report comparable sampling times this wraps PyMC's
    ``_sample_numpyro_nuts`` (start/end of the run, results blocked on) and
    listens to JAX's compile events; the sampling time is the run minus the
    union of the compile intervals inside it. (Duplicated in
    _peers_bayeslmm_runner.py and _bambi_runner.py: the two run in different
    environments.)
    """
    import jax
    import pymc.sampling.jax as pmjax

    rec = {"events": [], "windows": []}

    def listener(name, dur, **kwargs):
        if name.startswith("/jax/core/compile/"):
            t = time.perf_counter()
            rec["events"].append((t - dur, t))

    jax.monitoring.register_event_duration_secs_listener(listener)
    orig = pmjax._sample_numpyro_nuts

    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        out = orig(*args, **kwargs)
        jax.block_until_ready(out[0])
        rec["windows"].append((t0, time.perf_counter()))
        return out

    pmjax._sample_numpyro_nuts = wrapped
    return rec


def sampling_times(rec):
    """(seconds of NumPyro runs, seconds of JAX compilation inside them)."""
    run = sum(b - a for a, b in rec["windows"])
    spans = sorted((max(a, w0), min(b, w1)) for a, b in rec["events"] for w0, w1 in rec["windows"]
                   if min(b, w1) > max(a, w0))
    comp, end = 0.0, float("-inf")
    for a, b in spans:  # union of possibly nested intervals
        if b > end:
            comp += b - max(a, end)
            end = b
    return run, comp


def main(spec_path, out_path):
    spec = json.loads(Path(spec_path).read_text())
    res = {}
    try:
        from bayeslmm import BayesLMM  # first: it sets XLA_FLAGS before JAX starts

        import pandas as pd
        from _common import posterior_metrics

        rec = instrument_numpyro()

        data = pd.read_csv(spec["data"], dtype={g: str for g in spec.get("groups", [])})
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BayesLMM(spec["formula"], data)
            plan = model.plan(spec["plan"])
            fit = model.fit(draws=spec["draws"], tune=spec["tune"], chains=spec["chains"],
                            target_accept=spec.get("target_accept", 0.8), random_seed=spec["seed"],
                            sampler="numpyro", marginalize=spec["plan"], progressbar=False)
        wall = time.perf_counter() - t0
        m = posterior_metrics(fit)
        post = fit.posterior
        run_s, compile_s = sampling_times(rec)
        iv = {}
        for name in model.design.fixed_names:
            iv[f"b[{name}]"] = _interval(post["fixef"].sel(fixef_term=name))
        for blk in model.design.blocks:
            for t in blk.terms:
                iv[f"sd[{blk.name},{t}]"] = _interval(post[f"sd_{blk.name}"].sel({f"{blk.name}__effect": t}))
        iv["sigma"] = _interval(post["sigma"])
        res = {"wall_s": wall, "sampling_s": run_s - compile_s, "sampler_compile_s": compile_s,
               "pymc_sampling_time": float(post.attrs.get("sampling_time", float("nan"))),
               "min_bulk_ess": m["min_bulk_ess"],
               "max_rhat": m["max_rhat"], "divergences": int(m["divergences"]),
               "plan_label": plan.label, "intervals": iv}
    except Exception as e:  # noqa: BLE001 - reported to the parent, which prints it
        res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_path).write_text(json.dumps(res))


def _interval(da):
    import numpy as np

    a = np.asarray(da).reshape(-1)
    return [float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))]


if __name__ == "__main__":
    main(*sys.argv[1:3])
