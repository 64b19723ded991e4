"""Ctrl-C: a SIGINT stops a fit promptly with KeyboardInterrupt, and an interrupted save keeps the old file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each case starts a Python process that fits a model.
pytestmark = pytest.mark.slow

# A shell that starts a job in the background without job control (``cmd &`` in a script, nohup)
# starts it with SIGINT ignored, and every process it starts inherits that; Python then installs no
# KeyboardInterrupt handler. Each child here first takes the disposition a terminal session has.
AS_IN_A_TERMINAL = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

FIT = AS_IN_A_TERMINAL + textwrap.dedent("""
    import sys, numpy as np, pandas as pd
    import bayeslmm
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"x": rng.normal(size=400), "g": np.repeat(np.arange(40), 10)})
    d["y"] = d.x + rng.normal(size=40)[d.g] + rng.normal(size=400)
    print("ready", flush=True)
    try:
        bayeslmm.BayesLMM("y ~ x + (x | g)", d).fit(draws=1000000, tune=1000, chains=2, progressbar=False,
                                                     compile_cache=False)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    sys.exit(0)
""")


def _run_and_interrupt(delay):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", FIT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(delay)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail(f"fit did not stop within 60 s of SIGINT sent {delay} s after start")
    return p.returncode, out, err, time.monotonic() - t0


# A million draws: whatever the machine's speed, the fit is still running when the signal arrives
# (early: building and compiling; later: usually sampling).
@pytest.mark.parametrize("delay", [0.5, 2.0, 8.0], ids=["build", "compile", "sampling"])
def test_sigint_stops_fit(delay):
    rc, out, err, waited = _run_and_interrupt(delay)
    assert rc != 0, (out, err)
    assert "interrupted" in out or "KeyboardInterrupt" in err, (out, err[-2000:])
    # The process exits cleanly: no thread torn down inside XLA's C++ at exit.
    assert "FATAL" not in err and "terminate called" not in err, err[-2000:]


# The sampler compiles its two programs side by side; an interrupt that lands after the short one
# is compiled, while the long one still compiles in its thread, must leave that thread for the
# exiting interpreter to wait for (CPython 3.11's Thread.join, broken by KeyboardInterrupt, marks a
# running thread as stopped; the interpreter then tears it down inside XLA and aborts).
COMPILE = AS_IN_A_TERMINAL + textwrap.dedent("""
    import os, signal, sys, threading, time
    import jax.numpy as jnp
    from bayeslmm.sampling.nuts import _compile_both

    def init(x):
        return x + 1.0

    def run(x, n):  # compiles for seconds: a long chain of distinct operations
        for i in range(2500):
            x = jnp.sin(x * (i + 1.0)) + jnp.cos(x[::-1])
        return x

    def interrupt_once_compiling():
        while not any(t.name == "bayeslmm-compile-run" for t in threading.enumerate()):
            time.sleep(0.01)
        time.sleep(0.5)  # init, one addition, is compiled by then
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_compiling).start()
    try:
        _compile_both(init, run, (jnp.ones(7),))
    except KeyboardInterrupt:
        compiling = any(t.name == "bayeslmm-compile-run" for t in threading.enumerate())
        print("interrupted", "compiling" if compiling else "compiled", flush=True)
        sys.exit(3)
    sys.exit(0)
""")


def test_sigint_while_the_chunk_program_compiles_exits_cleanly():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr[-2000:])
    # The case this test is for: the signal came while the long program still compiled.
    assert r.stdout.strip() == "interrupted compiling", r.stdout
    assert "FATAL" not in r.stderr and "terminate called" not in r.stderr, r.stderr[-2000:]


SAVE = AS_IN_A_TERMINAL + textwrap.dedent("""
    import sys, numpy as np, pandas as pd
    import bayeslmm
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"x": rng.normal(size=60), "g": np.repeat(np.arange(6), 10)})
    d["y"] = d.x + rng.normal(size=60)
    fit = bayeslmm.BayesLMM("y ~ x + (1 | g)", d).fit(draws=200, tune=50, chains=1, progressbar=False,
                                                       random_seed=1, compile_cache=False)
    fit.save(sys.argv[1])
    print("saved", flush=True)
    while True:
        fit.save(sys.argv[1])
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_save_keeps_old_file(tmp_path, sig):
    import bayeslmm

    path = tmp_path / "fit.nc"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", SAVE, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    assert p.stdout.readline().strip() == "saved", p.stderr.read()[-2000:]
    time.sleep(0.3)  # inside one of the repeated saves
    p.send_signal(sig)
    p.communicate(timeout=60)
    assert p.returncode != 0
    fit = bayeslmm.load(path)
    assert fit.posterior.sizes["draw"] == 200


@pytest.fixture
def terminal_sigint():
    """Python's default SIGINT handler for the test (see AS_IN_A_TERMINAL), the inherited one restored after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_swallowed_by_a_callback_is_raised_at_the_next_check(terminal_sigint):
    """A SIGINT whose KeyboardInterrupt a callback ignored still stops the fit at the next wait or stage."""
    import signal as sg

    from bayeslmm.sampling.interrupt import check_interrupt, interrupt_guard

    with interrupt_guard():
        try:
            sg.raise_signal(sg.SIGINT)
        except KeyboardInterrupt:
            pass  # what an ignoring callback does
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
        check_interrupt()  # raised once only
    assert sg.getsignal(sg.SIGINT) is sg.default_int_handler


def test_sigint_in_a_gc_callback_is_kept_for_the_next_check_and_not_printed(terminal_sigint, monkeypatch):
    """JAX runs a callback at every garbage collection; a SIGINT that lands in it is not printed and lost."""
    import gc
    import signal as sg

    from bayeslmm.sampling.interrupt import check_interrupt, interrupt_guard

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    ran = []

    def callback(phase, info):
        if phase == "start" and not ran:
            ran.append(phase)
            sg.raise_signal(sg.SIGINT)  # the handler runs in this frame, at its next instruction
            ran.append("after")

    with interrupt_guard():
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert ran == ["start", "after"]  # the callback ran to its end
    assert unraisable == []
