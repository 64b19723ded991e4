"""Shared helpers for the benchmark scripts: metrics and output (data sets: registry.py)."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry import datasets  # noqa: E402,F401 - the one data-set registry, re-exported for the scripts

RESULTS = Path(__file__).resolve().parent / "results"



def ess_rhat(post):
    """Names of every reported parameter (group-level effects included) and their bulk ESS and Rhat."""
    # GLMM families have no sigma; their family parameter (shape, nu) counts like it.
    names = [v for v in ("fixef", "sigma", "shape", "nu") if v in post]
    names += [v for v in post.data_vars if v.startswith(("sd_", "cor_", "r_"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return names, az.ess(post[names], method="bulk"), az.rhat(post[names])


def posterior_metrics(fit) -> dict:
    """min bulk ESS over every reported parameter (group-level effects included), max Rhat, divergences."""
    post = fit.posterior
    names, ess, rhat = ess_rhat(post)
    min_ess = float(np.nanmin([np.nanmin(np.asarray(ess[v])) for v in names]))
    max_rhat = float(np.nanmax([np.nanmax(np.asarray(rhat[v])) for v in names]))
    steps = fit.idata.sample_stats.get("n_steps")
    n_grad = float(np.asarray(steps).sum()) if steps is not None else float("nan")
    return {"min_bulk_ess": min_ess, "max_rhat": max_rhat, "divergences": fit.n_divergences,
            "grads_post_warmup": n_grad, "ess_per_grad": min_ess / n_grad if n_grad else float("nan")}


def grad_time(model, repeat=200) -> float:
    """Seconds per jitted log-density + gradient evaluation of a PyMC model at its initial point.

    The log-density is the sampler's own translation (``bayeslmm.sampling.driver.jax_model``), not
    ``pymc.sampling.jax``'s: importing that module sets ``XLA_FLAGS`` to 100 host devices, and a JAX
    backend started after it runs every later fit of the process slower (measured in docs/benchmarks.md).
    """
    import jax
    from threadpoolctl import threadpool_limits

    from bayeslmm.sampling.driver import jax_model

    with jax.enable_x64(True):
        jm = jax_model(model)
        ip = model.initial_point()
        x = [np.asarray(ip[n], dtype=np.float64) for n in jm.value_names]
        f = jax.jit(jax.value_and_grad(jm.logp))
        with threadpool_limits(1, "blas"):  # as in bayeslmm.sampling
            f(x)[0].block_until_ready()
            t0 = time.perf_counter()
            for _ in range(repeat):
                f(x)[0].block_until_ready()
    return (time.perf_counter() - t0) / repeat


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """CPU, cores and Python; plus JAX's accelerator when it runs on one (GPU timings are absolute)."""
    desc = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    try:
        import jax

        dev = jax.devices()[0]
        if dev.platform != "cpu":
            desc += f", {dev.platform.upper()} {getattr(dev, 'device_kind', '')} (jax {jax.__version__})"
    except Exception:  # noqa: BLE001 - the description is a label, never a reason to fail
        pass
    return desc


def manifest(command=None) -> dict:
    """What a result was produced from: commit, date, machine, command and the load average at the time."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        # results/ left out: a run's own writes (manifest.json among them) are not changes to the code
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                     ".", ":(exclude)benchmarks/results"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {"commit": commit + ("+uncommitted changes" if dirty else ""),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "command": command or " ".join(["python"] + sys.argv),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def write_manifest(out_dir, command=None, **extra) -> Path:
    """manifest.json beside a script's results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "manifest.json"
    path.write_text(json.dumps({**manifest(command), **extra}, indent=1))
    return path


def add_to_manifest(out_dir, files, command=None, **extra) -> Path:
    """Add (or replace) the entry for ``files`` in the ``additions`` of ``out_dir``/manifest.json.

    The entry is :func:`manifest`'s record (commit, date, machine, command,
    load average) with the file names; an earlier entry naming any of the
    same files is dropped. Without a manifest there, or when its own
    record is of these files, writes a fresh one.
    """
    path = Path(out_dir) / "manifest.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    if not doc or set(doc.get("files", [])) & set(files):
        # no manifest yet, or the folder's own record is an earlier write of these files
        return write_manifest(out_dir, command, files=list(files), **extra)
    entry = {"files": list(files), **manifest(command), **extra}
    keep = [a for a in doc.get("additions", []) if not set(a.get("files", [])) & set(files)]
    doc["additions"] = keep + [entry]
    path.write_text(json.dumps(doc, indent=1))
    return path


def run_child(code, timeout):
    """Run ``code`` in a fresh Python process (the repository on its path); the JSON after its last ``RESULT `` line.

    A process that fails or prints no result gives ``{"error": <its last stderr line>}``.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode or not lines:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1][7:])


def write_json(rows, name, out_dir=None, **extra):
    out = Path(out_dir) if out_dir else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    doc = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows, **extra}
    path.write_text(json.dumps(doc, indent=1))
    return path


def print_table(rows, cols):
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(w) for c, w in zip(cols, widths)))


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)
