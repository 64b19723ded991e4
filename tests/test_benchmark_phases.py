"""benchmarks/bench_phases.py: every stage of a fit is timed once, and the sampler's chunks add up to the fit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

FIT_PHASES = [
    "marginal data (sufficient statistics)",
    "PyMC model build",
    "start recovery compilation (thread)",
    "JAX translation (PyTensor rewrite + jax_funcify)",
    "sampler compilation (init + chunk program)",
    "warm-up + sampling (chains in threads)",
    "posterior variables of every draw (vmap)",
    "InferenceData (az.from_dict)",
    "recovery of the marginalized effects",
    "convergence checks (Rhat of SDs, fixef, sigma)",
]


def test_phases_of_a_small_fit(tmp_path):
    tune, draws, chains = 20, 30, 2
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_phases.py"), "--dataset", "dillonE1",
           "--tune", str(tune), "--draws", str(draws), "--chains", str(chains), "--plans", "auto,none",
           "--out", str(tmp_path)]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "BAYESLMM_JAX_CACHE": "off"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, timeout=600)
    doc = json.loads((tmp_path / "phases_dillonE1.json").read_text())
    names = [r["phase"] for r in doc["rows"]]
    for phase in FIT_PHASES:
        assert names.count(phase) == 1, phase
    in_fit = sum(r["seconds"] for r in doc["rows"] if r["phase"] in FIT_PHASES)
    assert 0 < in_fit <= doc["fit_s"]
    rss = [r["peak_rss_mb"] for r in doc["rows"]]
    assert rss == sorted(rss)  # a high-water mark
    # The chunks seen by the wrapper are every iteration of every chain, and their
    # post-warm-up leapfrog steps are the ones the fit's sample stats record.
    chunks = doc["chunks"]
    assert len(chunks) == 2 * chains
    assert sum(c["iterations"] for c in chunks if c["part"] == "warm-up") == chains * tune
    assert sum(c["iterations"] for c in chunks if c["part"] == "sampling") == chains * draws
    assert sum(c["leapfrog_steps"] for c in chunks if c["part"] == "sampling") == doc["fit_grads"]
    assert all(c["leapfrog_steps"] >= 1 for c in chunks)
    plans = {r["spec"]: r for r in doc["gradients"]}
    assert set(plans) == {"auto", "none"}
    assert all(r["measured_ms"] > 0 and r["predicted_ms"] > 0 for r in plans.values())
