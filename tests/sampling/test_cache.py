"""The persistent JAX compilation cache: on for the duration of a fit, off on request."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bayeslmm.sampling import CACHE_ENV, default_cache_dir, resolve_cache_dir

ROOT = Path(__file__).resolve().parents[2]

FIT = """
import json, jax
from bayeslmm import BayesLMM
from bayeslmm.datasets import load_dataset
df = load_dataset("sleepstudy")
BayesLMM("Reaction ~ Days + (1 | Subject)", df).fit(draws=30, tune=30, chains=1, random_seed=1,
                                                   progressbar=False, {arg})
print("AFTER", json.dumps(jax.config.jax_compilation_cache_dir))
"""


def _fit_in_subprocess(arg, env_extra):
    env = {k: v for k, v in os.environ.items() if k != CACHE_ENV}
    env.update(env_extra, PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", FIT.format(arg=arg)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    after = [ln for ln in r.stdout.splitlines() if ln.startswith("AFTER ")]
    return json.loads(after[-1][6:])


def _files(path):
    return [p for p in Path(path).rglob("*") if p.is_file()]


def test_a_fit_writes_cache_entries_and_restores_jax_settings(tmp_path):
    cache = tmp_path / "cache"
    after = _fit_in_subprocess(f"compile_cache={str(cache)!r}", {})
    assert _files(cache), "no compiled program was written to the cache directory"
    assert after is None  # JAX's own setting is put back once the fit returns


def test_turned_off_by_the_environment_writes_nothing(tmp_path):
    # platformdirs puts the user's cache directory under XDG_CACHE_HOME on Linux
    xdg = tmp_path / "xdg"
    _fit_in_subprocess("", {CACHE_ENV: "off", "XDG_CACHE_HOME": str(xdg)})
    assert not _files(xdg / "bayeslmm")



def test_resolve_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert resolve_cache_dir() == default_cache_dir()
    assert default_cache_dir().parts[-2:] == ("bayeslmm", "jax")
    assert resolve_cache_dir(False) is None
    assert resolve_cache_dir(tmp_path) == tmp_path
    monkeypatch.setenv(CACHE_ENV, "0")
    assert resolve_cache_dir() is None
    assert resolve_cache_dir(True) == default_cache_dir()  # the argument wins over the environment
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert resolve_cache_dir() == tmp_path
    with pytest.raises(TypeError, match="compile_cache must be None, True, False or a directory, got 3"):
        resolve_cache_dir(3)
