"""One bayeslmm fit, run by benchmarks/peers.py in its own process (so that its peak RSS is its own).

    python benchmarks/_peers_bayeslmm_runner.py SPEC.json RESULT.json

SPEC holds: data (CSV path), formula, plan ("none", "all", "auto", ...),
chains, tune, draws, seed, target_accept, and optionally family (default
"gaussian") and approximation (None or "laplace"). RESULT gets the same keys as the
Bambi and brms runners: wall_s (BayesLMM(...) + .fit(...), compilation and
recovery of the integrated-out effects included; the persistent compilation
cache off, so that every run is a user's first fit, whatever earlier runs
left in the cache directory), sampling_s (warmup and
sampling of the NumPyro run, without the JAX compilation inside it), min bulk
ESS and max Rhat over every parameter (group-level effects included),
divergences, n_grad (leapfrog steps of the post-warm-up draws, all chains),
the runner's own peak RSS, and 95% intervals of the fixed effects, SDs and
sigma (where the family has one) under canonical names (b[x], sd[g,x], sigma).
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

from _numpyro_timing import instrument_numpyro, sampling_times  # noqa: E402


def main(spec_path, out_path):
    spec = json.loads(Path(spec_path).read_text())
    res = {}
    try:
        from bayeslmm import BayesLMM

        import pandas as pd
        from _common import posterior_metrics

        rec = instrument_numpyro()

        data = pd.read_csv(spec["data"], dtype={g: str for g in spec.get("groups", [])})
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BayesLMM(spec["formula"], data, family=spec.get("family", "gaussian"))
            approx = spec.get("approximation")
            plan = model.plan(spec["plan"], approx)
            fit = model.fit(draws=spec["draws"], tune=spec["tune"], chains=spec["chains"],
                            target_accept=spec.get("target_accept", 0.8), random_seed=spec["seed"],
                            sampler="numpyro", marginalize=spec["plan"], approximation=approx, progressbar=False,
                            compile_cache=False)
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
        if "sigma" in post:
            iv["sigma"] = _interval(post["sigma"])
        res = {"wall_s": wall, "sampling_s": run_s - compile_s, "sampler_compile_s": compile_s,
               "pymc_sampling_time": float(post.attrs.get("sampling_time", float("nan"))),
               "min_bulk_ess": m["min_bulk_ess"],
               "max_rhat": m["max_rhat"], "divergences": int(m["divergences"]), "n_grad": m["grads_post_warmup"],
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
