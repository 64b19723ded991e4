"""The benchmark helpers that run inside a bayeslmm process leave JAX's devices as a user's fit finds them.

``import pymc.sampling.jax`` sets ``XLA_FLAGS`` to 100 host devices; a JAX backend started after it
runs every later fit of the process slower (docs/benchmarks.md), so the helpers must not import it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys
sys.path.insert(0, {bench!r})
import numpy as np, pandas as pd
from _common import grad_time
from _numpyro_timing import instrument_numpyro
from bayeslmm import BayesLMM
rng = np.random.default_rng(0)
df = pd.DataFrame({{"y": rng.normal(size=40), "x": rng.normal(size=40), "g": np.repeat(list("abcd"), 10)}})
m = BayesLMM("y ~ x + (1 | g)", df)
rec = instrument_numpyro()
seconds = grad_time(m.build_model("all"), repeat=3)
import jax
print("RESULT", json.dumps({{"seconds": seconds, "pymc_jax": "pymc.sampling.jax" in sys.modules,
                            "xla_flags": os.environ.get("XLA_FLAGS", ""), "devices": jax.local_device_count()}}))
"""


def test_grad_time_and_timing_hooks_do_not_import_pymc_sampling_jax():
    code = CHILD.format(bench=str(ROOT / "benchmarks"))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-2000:]
    out = json.loads(lines[-1][7:])
    assert not out["pymc_jax"]
    assert "xla_force_host_platform_device_count" not in out["xla_flags"]
    assert out["devices"] == 1
    assert 0 < out["seconds"] < 10
