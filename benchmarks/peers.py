"""bayeslmm against its peers (Bambi, brms) on the same models, data, priors and sampler settings.

For every data set the same model is fitted by

- bayeslmm, correlated model (the formula as written), marginalize="none",
  "all" and "auto" (NumPyro NUTS);
- bayeslmm, uncorrelated model (every ``|`` made ``||``), marginalize="auto":
  the like-for-like row for Bambi;
- Bambi (NumPyro NUTS), which has only uncorrelated group-specific effects:
  it fits the ``||`` model. It runs in its own virtual environment
  (benchmarks/.peers-venv, created on first use) because it pins other
  versions of formulae/PyMC than bayeslmm;
- brms (rstan), correlated model, when ``Rscript -e 'library(brms)'`` works;
  otherwise it is skipped with a notice.

GLMM sets (registry.GLMM: cbpp binomial, grouseticks_poisson, sim_bernoulli
crossed bernoulli; family and link from bayeslmm.datasets) get other rows:
bayeslmm marginalize="none" and marginalize="all" with
approximation="laplace" ("laplace") on the model as written and, where it has
correlated terms, on the ``||`` model; Bambi on the ``||`` model; brms on the
model as written. Fixed effects go to every tool as bayeslmm's own design
columns (factor dummies included) under plain names, a binomial response as
successes and trials (brms/bayeslmm ``s | trials(n)``, Bambi ``p(s, n)``);
links are each family's default (logit, log) in every tool. Their rows add
gradients per second and ESS per gradient (post-warm-up leapfrog steps, see
``gradient_metrics``) and the markdown a table of 95% intervals per tool.

    python benchmarks/peers.py --datasets cbpp,grouseticks_poisson,sim_bernoulli --tune 500 --draws 500 \\
        --name peers_glmm

Priors: Bambi and brms get bayeslmm's resolved (data-scaled) default priors
as explicit priors, so every tool samples the same posterior (Bambi: without
the correlations). Every fit runs in its own subprocess, so its peak memory is
its own. Metrics: wall time (model construction + fit, compilation
included), sampling time, min bulk ESS over every parameter (group-level
effects included), ESS per second, max Rhat, divergences, peak RSS, and for
simulated data the coverage of the true fixed effects, SDs and sigma by the
95% intervals. See docs/benchmarks.md.

    python benchmarks/peers.py --smoke             # one small simulated set, 100 draws (development)
    python benchmarks/peers.py --quick             # small sets, 300 draws: < 10 minutes on 2 cores
    python benchmarks/peers.py                     # every data set, 2 chains, 1000 tune + 1000 draws
    python benchmarks/peers.py --datasets dutch,english --tools bayeslmm,bambi --out /tmp/peers
    python benchmarks/peers.py --combine /tmp/a/peers.json,/tmp/b/peers.json   # one table from two runs

When "auto" resolves to "none" or "all", its row reuses that fit (same model,
data and seed). ``--skip`` names bayeslmm fits not to run (by default "all" on
InstEval, a dense Schur complement per gradient); they appear as skipped rows.

Writes peers.json (rows), peers.md (table) and peers.png (ESS/s by tool and
data set) under benchmarks/results/ or --out DIR (peers_quick.* and
peers_smoke.* for those modes; NAME.* with --name NAME, which adds its entry
to the folder's manifest.json instead of rewriting it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from _common import RESULTS, add_to_manifest, machine, print_table, write_manifest
from registry import ALL, GLMM, REAL, SIMULATED, family, load  # noqa: F401 - the one data-set registry

from bayeslmm import BayesLMM

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
# What pip resolved for `pip install bambi numpyro` on Python 3.11, less matplotlib; pinned so that
# later runs compare against the same Bambi. The venv is rebuilt when this list changes.
BAMBI_PINS = ["bambi==0.17.2", "numpyro==0.22.0", "pymc==5.28.5", "pytensor==2.38.3", "formulae==0.6.2",
              "arviz==0.23.4", "jax==0.10.2", "jaxlib==0.10.2", "pandas==3.1.1", "numpy==2.4.6",
              # arviz-plots 0.8.0 (imported by bambi) fails with matplotlib 3.11 (matplotlib.style.core)
              "matplotlib==3.10.9"]

QUICK = ["english", "crossed_50x40"]
SMOKE = ["crossed_small"]
TOOLS = ["bayeslmm", "bambi", "brms"]

# "all" on InstEval: the Schur complement over students x lecturers is a dense factorization per
# gradient, far slower than the plan auto picks.
DEFAULT_SKIP = ["InstEval:all"]
SKIP_REASONS = {"InstEval:all": "dense students x lecturers Schur complement per gradient"}

COLS = ["dataset", "tool", "model", "plan", "wall_s", "sampling_s", "min_bulk_ess", "ess_per_s", "max_rhat",
        "divergences", "peak_rss_mb", "covered"]
MD_COLS = ["dataset", "n_rows", "tool", "model", "plan", "wall_s", "sampling_s", "min_bulk_ess", "ess_per_s",
           "ess_per_sampling_s", "max_rhat", "divergences", "peak_rss_mb", "covered"]
# GLMM tables add the gradient columns (see make_row)
GLMM_COLS = COLS[:-2] + ["grads_per_s", "ess_per_grad", "peak_rss_mb", "covered"]
GLMM_MD_COLS = MD_COLS[:-2] + ["n_grad", "grads_per_s", "ess_per_grad", "peak_rss_mb", "covered"]

# bayeslmm plans of the GLMM rows: exact HMC over every effect, and every factor Laplace-marginalized.
GLMM_PLANS = {"none": {"plan": "none"}, "laplace": {"plan": "all", "approximation": "laplace"}}


# ----------------------------------------------------------------------------- data


def uncorrelated(formula):
    """Every single bar made a double bar: lme4/brms ``||``."""
    return re.sub(r"(?<!\|)\|(?!\|)", "||", formula)


def bambi_formula(formula):
    """Bambi writes uncorrelated group-specific terms with a single bar."""
    return formula.replace("||", "|")


def prepare(name, data, formula, workdir):
    """Write the model's columns to one CSV that every tool reads; return the tool-neutral model spec.

    A transformed response (``log(rt)``) is computed once here (by bayeslmm's
    own design) and stored as a plain column (``log_rt``), so that no tool's
    formula parser has to agree with another's on transformations. Grouping
    factors are written as strings.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BayesLMM(formula, data)
    lhs, rhs = (s.strip() for s in formula.split("~", 1))
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", lhs):
        resp = lhs
    else:
        resp = re.sub(r"\W+", "_", lhs).strip("_")
    groups = [b.name for b in model.design.blocks]
    # An interaction factor (lme4's ``(1 | dept:service)``) is written as one column of its level labels,
    # under a plain name that every tool's formula reads; the model is the same.
    combined = {}  # interaction factor -> (its plain name, its columns)
    for g in (g for g in groups if g not in data.columns):
        parts, plain = g.split(":"), g.replace(":", "_")
        if len(parts) < 2 or not all(p in data.columns for p in parts) or plain in data.columns:
            raise SystemExit(f"{name}: grouping factor {g} is not a plain column or an interaction of columns; "
                             "not supported here")
        combined[g] = plain, parts
        rhs = re.sub(rf"(\|\s*){re.escape(g)}(\s*\))", rf"\g<1>{plain}\g<2>", rhs)
    preds = [c for c in data.columns if c not in groups and re.search(rf"(?<![\w.]){re.escape(c)}(?![\w.])", rhs)]
    df = pd.DataFrame({resp: model.design.y})
    for c in preds:
        df[c] = data[c].to_numpy()
    for g in groups:
        if g in combined:
            plain, parts = combined[g]
            df[plain] = data[parts].astype(str).agg(":".join, axis=1).to_numpy()
        else:
            df[g] = data[g].astype(str).to_numpy()
    groups = [combined[g][0] if g in combined else g for g in groups]
    path = Path(workdir) / f"{name}.csv"
    df.to_csv(path, index=False)
    f_cor = f"{resp} ~ {rhs}"
    f_unc = uncorrelated(f_cor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_cor = BayesLMM(f_cor, df.astype({g: str for g in groups}))
        m_unc = BayesLMM(f_unc, df.astype({g: str for g in groups}))
    pri_cor, pri_unc = _priors(m_cor), _priors(m_unc)
    has_cor = any(p["cls"] == "cor" for p in pri_cor)
    return {"data": str(path), "n_rows": len(df), "groups": groups, "formula": f_cor, "formula_uncorr": f_unc,
            "priors": pri_cor, "priors_uncorr": pri_unc, "has_cor": has_cor,
            "auto": {"correlated": _auto_as(m_cor), "uncorrelated": _auto_as(m_unc)}}


TRIALS = "n_trials"


def _plain_name(name):
    """A fixed-effect column name every tool's formula reads: ``period[2]`` -> ``period2``,
    ``C(YEAR)[96]`` -> ``YEAR96``."""
    name = re.sub(r"^C\((\w+)\)", r"\1", name)
    return re.sub(r"\W+", "", name)


def glmm_formula(resp, fixed, random, trials=None):
    """lme4/brms formula text: ``resp [| trials(n)] ~ 1 + a + b + (1 + x | g) ...``.

    ``fixed``: plain column names (the intercept excluded); ``random``:
    (expr, factor, correlated) triples.
    """
    lhs = f"{resp} | trials({trials})" if trials else resp
    terms = ["1", *fixed] + [f"({e} {'|' if c else '||'} {g})" for e, g, c in random]
    return f"{lhs} ~ {' + '.join(terms)}"


def bambi_glmm_formula(formula):
    """Bambi's syntax for a GLMM formula: ``s | trials(n) ~`` becomes ``p(s, n) ~``; ``||`` becomes ``|``."""
    lhs, rhs = formula.split("~", 1)
    m = re.fullmatch(r"\s*(\w+)\s*\|\s*trials\((\w+)\)\s*", lhs)
    if m:
        lhs = f"p({m.group(1)}, {m.group(2)}) "
    return bambi_formula(f"{lhs}~{rhs}")


def prepare_glmm(name, data, formula, family, workdir):
    """The GLMM counterpart of :func:`prepare`: one CSV and a tool-neutral spec, fixed effects as columns.

    Fixed effects are written as bayeslmm's own design columns (treatment
    dummies of a factor included) under plain names, so that every tool fits
    the same coefficients and each gets its prior by the same name; group-level
    terms must be plain columns. A binomial response is written as successes
    plus a trials column (brms/bayeslmm ``s | trials(n)``, Bambi ``p(s, n)``).
    The rewritten model's resolved priors must equal the original's
    (coefficients renamed), else this stops: otherwise the tools would not
    sample the posterior of the model as written.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BayesLMM(formula, data, family=family)
    d = model.design
    resp = d.spec.response if re.fullmatch(r"[A-Za-z_]\w*", d.spec.response) else "y"
    names = {f: ("Intercept" if f == "Intercept" else _plain_name(f)) for f in d.fixed_names}
    groups = [b.name for b in d.blocks]
    random = []
    for t in d.spec.random:
        if len(t.factor) != 1 or t.factor[0] not in data.columns:
            raise SystemExit(f"{name}: grouping factor {':'.join(t.factor)} is not a plain column; not supported here")
        random.append((t.expr, t.factor[0], t.correlated))
    slopes = [x.strip() for e, _, _ in random for x in e.split("+") if x.strip() not in ("0", "1")]
    bad = [x for x in slopes if x not in data.columns or not pd.api.types.is_numeric_dtype(data[x])]
    if bad:
        raise SystemExit(f"{name}: group-level terms {bad} are not numeric columns; not supported here")
    cols = [v for k, v in names.items() if k != "Intercept"]
    clash = [v for v in cols if v in (resp, TRIALS, *groups) or cols.count(v) > 1]
    if clash:
        raise SystemExit(f"{name}: fixed-effect columns {clash} clash with other columns")
    # counts as integers: Stan's binomial/poisson/bernoulli take int data
    df = pd.DataFrame({resp: np.rint(d.y).astype(np.int64)})
    trials = None
    if family == "binomial":
        df[TRIALS] = np.rint(d.trials).astype(np.int64)
        trials = TRIALS
    for j, f in enumerate(d.fixed_names):
        if f != "Intercept":
            df[names[f]] = d.X[:, j]
    for x in slopes:
        df[x] = data[x].to_numpy(dtype=float)
    for g in groups:
        df[g] = data[g].astype(str).to_numpy()
    if "Intercept" not in names:
        raise SystemExit(f"{name}: a model without an intercept is not supported here")
    path = Path(workdir) / f"{name}.csv"
    df.to_csv(path, index=False)
    f_cor = glmm_formula(resp, cols, random, trials)
    f_unc = glmm_formula(resp, cols, [(e, g, False) for e, g, _ in random], trials)
    frame = df.astype({g: str for g in groups})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_cor = BayesLMM(f_cor, frame, family=family)
        m_unc = BayesLMM(f_unc, frame, family=family)
    pri_cor, pri_unc = _priors(m_cor), _priors(m_unc)
    want = [{**p, "coef": names.get(p["coef"], p["coef"]) if p["cls"] == "b" else p["coef"]}
            for p in _priors(model)]
    if not _same_priors(pri_cor, want):
        raise SystemExit(f"{name}: the rewritten formula {f_cor!r} resolves other default priors than {formula!r}")
    return {"data": str(path), "n_rows": len(df), "groups": groups, "formula": f_cor, "formula_uncorr": f_unc,
            "priors": pri_cor, "priors_uncorr": pri_unc, "has_cor": any(p["cls"] == "cor" for p in pri_cor),
            "family": family, "trials": trials, "coef_names": names, "auto": {}}


def _same_priors(a, b, rtol=1e-9):
    def key(p):
        return (p["cls"], p["group"] or "", p["coef"] or "")

    if sorted(map(key, a)) != sorted(map(key, b)):
        return False
    other = {key(p): p for p in b}
    return all(p["dist"] == other[key(p)]["dist"] and np.allclose(p["args"], other[key(p)]["args"], rtol=rtol)
               for p in a)


def _auto_as(model):
    """The label of the plan "auto" resolves to ("none", "all" or "a+b"): a fit already made under it is reused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.plan("auto").label


def _priors(model):
    return [{"cls": r.cls, "group": r.group, "coef": r.coef, "dist": r.dist, "args": list(r.args)}
            for r in model.priors]


# ----------------------------------------------------------------------------- running one fit


_COMPILERS = {"cc1plus", "cc1", "as", "ld", "ld.bfd", "ld.gold", "collect2", "g++", "gcc", "c++", "make", "sh"}


def _session_pids(sid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and comm not in _COMPILERS:  # fields[3] = session id
            out.append(int(d))
    return out


def _mem_mb(pid):
    """Proportional set size of a process (shared pages split between sharers), else its RSS."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def run_fit(cmd, spec, workdir, tag, timeout, env=None):
    """Run one runner subprocess on ``spec``; return its result dict plus peak_rss_mb.

    Peak memory: the larger of the runner's own peak RSS (it reports its
    ``ru_maxrss`` / VmHWM) and the peak, sampled every 0.2 s, of the summed
    proportional set size of every process it starts (brms's chain workers),
    C++ compiler processes excluded.
    """
    spec_path = Path(workdir) / f"{tag}.spec.json"
    out_path = Path(workdir) / f"{tag}.result.json"
    log_path = Path(workdir) / f"{tag}.log"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*cmd, str(spec_path), str(out_path)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    peak, t0, timed_out, status = 0.0, time.perf_counter(), False, None
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the runner's own process group only
            os.wait4(proc.pid, 0)
            break
        peak = max(peak, sum(_mem_mb(p) for p in _session_pids(proc.pid)))
        time.sleep(0.2)
    proc.returncode = 0  # reaped above with wait4; keep Popen from waiting again
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftover workers of this fit, if any
    except ProcessLookupError:
        pass
    if timed_out:
        return {"error": f"timed out after {timeout:.0f} s"}
    try:
        res = json.loads(out_path.read_text())
    except (OSError, ValueError):
        tail = log_path.read_text()[-2000:] if log_path.exists() else ""
        return {"error": f"runner died (wait status {status}); log tail:\n{tail}"}
    res["peak_rss_mb"] = max(peak, float(res.get("self_peak_rss_mb") or 0.0))
    return res


# ----------------------------------------------------------------------------- tool set-up


def ensure_bambi_venv():
    """Create benchmarks/.peers-venv with Bambi on first use; return its python, or None with a notice."""
    py = VENV / "bin" / "python"
    marker = VENV / ".peers-pins"
    pins = " ".join(BAMBI_PINS)
    try:
        if not py.exists():
            print(f"bambi: creating {VENV} (first use; pip install {pins})", flush=True)
            base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
            subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        if not marker.exists() or marker.read_text() != pins:
            print("bambi: installing pinned packages into", VENV, flush=True)
            log = VENV / "pip-install.log"
            with open(log, "w") as fh:
                r = subprocess.run([str(py), "-m", "pip", "install", *BAMBI_PINS], stdout=fh, stderr=subprocess.STDOUT)
            if r.returncode:
                print(log.read_text()[-3000:])
                raise OSError(f"pip install failed (exit {r.returncode}); see {log}")
            marker.write_text(pins)
        r = subprocess.run([str(py), "-c", "import bambi, numpyro"], capture_output=True, text=True)
        if r.returncode:
            raise OSError(f"import bambi failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else '?'}")
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"NOTICE: bambi skipped: could not set up {VENV}: {e}", flush=True)
        return None
    return str(py)


def brms_available():
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    try:
        r = subprocess.run([rscript, "-e", "suppressPackageStartupMessages(library(brms))"], capture_output=True,
                           timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rscript if r.returncode == 0 else None


# ----------------------------------------------------------------------------- metrics, output


def coverage(intervals, truth):
    if not truth or not intervals:
        return {}
    hit, missed = 0, []
    for k, v in truth.items():
        iv = intervals.get(k)
        if iv is None:
            missed.append(f"{k} (absent)")
        elif iv[0] <= v <= iv[1]:
            hit += 1
        else:
            missed.append(k)
    return {"coverage": hit / len(truth), "covered": f"{hit}/{len(truth)}", "missed": missed}


def _show(row):
    return {**row, "covered": row.get("covered", "-")}


def gradient_metrics(ess, n_grad, sampling_s, tune, draws):
    """ESS per gradient and gradients per sampling second from the post-warm-up leapfrog steps ``n_grad``.

    ``n_grad`` sums the leapfrog steps (one gradient each) of every chain's
    post-warm-up draws, as each sampler reports them. ``ess_per_grad`` is
    ``ess / n_grad``. No sampler here times warm-up apart from sampling
    (brms does, NumPyro does not), so ``grads_per_s`` counts the warm-up
    iterations at the post-warm-up rate: ``n_grad (tune + draws) / draws``
    over ``sampling_s``, so that ``ess / sampling_s = grads_per_s *
    ess_per_grad * draws / (tune + draws)`` holds exactly. {} when
    ``n_grad`` is missing or not positive.
    """
    if n_grad is None or not np.isfinite(n_grad) or n_grad <= 0:
        return {}
    out = {"n_grad": float(n_grad), "ess_per_grad": ess / n_grad}
    if sampling_s and np.isfinite(sampling_s) and sampling_s > 0:
        out["grads_per_s"] = n_grad * (tune + draws) / draws / sampling_s
    return out


def keep_row(rows, versions, row, res, cols):
    """Append ``row`` (made from the runner result ``res``) to ``rows``, note its tool's versions, print it."""
    rows.append(row)
    if "versions" in res:
        versions[row["tool"]] = res["versions"]
    if "error" not in row:
        print_table([_show(row)], cols)


def make_row(dataset, n_rows, tool, model, plan, res, truth, tune=None, draws=None):
    row = {"dataset": dataset, "n_rows": n_rows, "tool": tool, "model": model, "plan": plan}
    if "error" in res:
        row["error"] = res["error"].strip().splitlines()[0] if res["error"].strip() else "error"
        print(f"  {tool} {model} {plan}: FAILED: {res['error'][-1500:]}", flush=True)
        return row
    wall, samp, ess = res["wall_s"], res["sampling_s"], res["min_bulk_ess"]
    row.update({"wall_s": wall, "sampling_s": samp, "min_bulk_ess": ess, "ess_per_s": ess / wall,
                "ess_per_sampling_s": ess / samp if samp and np.isfinite(samp) else float("nan"),
                "max_rhat": res["max_rhat"], "divergences": int(res["divergences"]),
                "peak_rss_mb": res["peak_rss_mb"]})
    row["overhead_s"] = wall - samp  # everything but warmup + sampling: build, compile, recovery
    if tune and draws:
        row.update(gradient_metrics(ess, res.get("n_grad"), samp, tune, draws))
    for k in ("sampler_compile_s", "pymc_sampling_time"):  # NumPyro rows: JAX compile inside the run
        if k in res:
            row[k] = res[k]
    row.update(coverage(res.get("intervals"), truth))
    return row


def _is_glmm(row):
    return row.get("family", "gaussian") != "gaussian"


def write_markdown(rows, path, header, cols=MD_COLS):
    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            if not np.isfinite(v):
                return "nan"
            return f"{v:.3g}" if abs(v) < 1e3 else f"{v:.0f}"
        return str(v)

    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt(r.get(c)) for c in cols]
        if "error" in r:
            err = r["error"]
            cells[cols.index("wall_s")] = err[:80] if err.startswith("skipped") else f"failed: {err[:60]}"
        lines.append("| " + " | ".join(cells) + " |")
    lines += interval_lines(rows)
    path.write_text("\n".join(lines) + "\n")


def interval_lines(rows):
    """Markdown tables of the 95% intervals of every row that has them, one table per data set."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows if r.get("intervals")):
        rs = [r for r in rows if r["dataset"] == ds and r.get("intervals")]
        params = list(dict.fromkeys(k for r in rs for k in r["intervals"]))
        out += ["", f"95% intervals, {ds}:", "", "| tool | model | plan | " + " | ".join(params) + " |",
                "|" + "---|" * (len(params) + 3)]
        for r in rs:
            cells = [f"{r['intervals'][k][0]:.3g}, {r['intervals'][k][1]:.3g}" if k in r["intervals"] else ""
                     for k in params]
            out.append(f"| {r['tool']} | {r['model']} | {r['plan']} | " + " | ".join(cells) + " |")
    return out


def series_label(r):
    plan = r["plan"].split("=")[0]
    if r["tool"] == "bayeslmm":
        return f"bayeslmm {'||' if r['model'] == 'uncorrelated' else '|'} {plan}"
    return f"{r['tool']} {'||' if r['model'] == 'uncorrelated' else '|'}"


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ok = [r for r in rows if "error" not in r and r.get("ess_per_s", 0) > 0]
    if not ok:
        return None
    datasets = list(dict.fromkeys(r["dataset"] for r in ok))
    series = list(dict.fromkeys(series_label(r) for r in ok))
    markers = "osD^v<>Xph*"
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(datasets) + 4), 4.8), sharey=False)
    for ax, key, lab in [(axes[0], "ess_per_s", "min bulk ESS / wall second (compile included)"),
                         (axes[1], "ess_per_sampling_s", "min bulk ESS / sampling second")]:
        width = 0.8 / max(len(series), 1)
        for j, s in enumerate(series):
            xs, ys = [], []
            for r in ok:
                if series_label(r) == s and np.isfinite(r.get(key, np.nan)) and r[key] > 0:
                    xs.append(datasets.index(r["dataset"]) - 0.4 + width * (j + 0.5))
                    ys.append(r[key])
            ax.scatter(xs, ys, marker=markers[j % len(markers)], s=45, label=s, zorder=3)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(datasets)))
        ax.set_xticklabels(datasets, rotation=30, ha="right")
        ax.set_ylabel(lab)
        ax.grid(True, which="both", axis="y", alpha=0.3)
        for k in range(1, len(datasets)):
            ax.axvline(k - 0.5, color="0.85", lw=0.8)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- GLMM rows


def glmm_fits(m, plans, uplans):
    """The bayeslmm fits of one GLMM set: (model kind, formula, plan token) triples.

    The correlated model under each of ``plans``; where the formula has
    correlated terms, also the ``||`` model (Bambi's) under each of ``uplans``.
    """
    kind = "correlated" if m["has_cor"] else "uncorrelated"
    fits = [(kind, m["formula"], p) for p in plans]
    if m["has_cor"]:
        fits += [("uncorrelated", m["formula_uncorr"], p) for p in uplans]
    return fits


def glmm_rows(name, data, formula, fam, truth, work, tools, plans, uplans, common, bambi_py, rscript, bambi_env,
              timeout, rows, versions):
    """Fit one GLMM set with every tool; append its rows to ``rows``.

    bayeslmm: the plans of :data:`GLMM_PLANS`; Bambi: the ``||`` model (its
    only kind), ``p(s, n)`` for a binomial; brms: the model as written,
    ``s | trials(n)`` for a binomial. Every tool gets the same family, link
    (each family's default: logit, log) and bayeslmm's resolved priors.
    """
    m = prepare_glmm(name, data, formula, fam, work)
    print(f"\n== {name} ({fam}): {m['n_rows']} rows; {m['formula']}", flush=True)
    base = {**common, "data": m["data"], "groups": m["groups"], "family": fam}

    def record(tool, model, plan, res):
        row = make_row(name, m["n_rows"], tool, model, plan, res, truth, common["tune"], common["draws"])
        row["family"] = fam
        if "intervals" in res:
            row["intervals"] = res["intervals"]  # the accuracy table of the markdown compares them across tools
        keep_row(rows, versions, row, res, GLMM_COLS)

    if "bayeslmm" in tools:
        runner = [sys.executable, str(HERE / "_peers_bayeslmm_runner.py")]
        for kind, f, p in glmm_fits(m, plans, uplans):
            res = run_fit(runner, {**base, "formula": f, **GLMM_PLANS[p]}, work, f"{name}-bayeslmm-{kind}-{p}",
                          timeout)
            record("bayeslmm", kind, p, res)
    if bambi_py:
        spec = {**base, "formula": bambi_glmm_formula(m["formula_uncorr"]), "priors": m["priors_uncorr"]}
        res = run_fit([bambi_py, str(HERE / "_bambi_runner.py")], spec, work, f"{name}-bambi", timeout, env=bambi_env)
        record("bambi", "uncorrelated", "non-centred", res)
    if rscript:
        kind = "correlated" if m["has_cor"] else "uncorrelated"
        res = run_fit([rscript, str(HERE / "_brms_runner.R")], {**base, "formula": m["formula"], "priors": m["priors"]},
                      work, f"{name}-brms-{kind}", timeout)
        record("brms", kind, "non-centred", res)


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{','.join(QUICK)}; 300 tune + 300 draws")
    ap.add_argument("--smoke", action="store_true", help=f"{','.join(SMOKE)}; 100 tune + 100 draws")
    ap.add_argument("--datasets", default=None, help=f"comma-separated (default: all of {','.join(ALL)})")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--plans", default=None,
                    help="bayeslmm plans on the correlated model (default none,all,auto; GLMM sets: none,laplace)")
    ap.add_argument("--uncorr-plans", default=None,
                    help="bayeslmm plans on the || model ('' for none; default auto; GLMM sets: none,laplace)")
    ap.add_argument("--brms-uncorr", action="store_true", help="also fit the || model with brms")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1, help="the same seed for every tool and fit")
    ap.add_argument("--target-accept", type=float, default=0.8)
    ap.add_argument("--timeout", type=float, default=None, help="seconds per fit (default 300 smoke/quick, 900)")
    ap.add_argument("--skip", default=",".join(DEFAULT_SKIP),
                    help="dataset:plan pairs of bayeslmm fits not to run, recorded as skipped rows (default: "
                         "%(default)s; '' for none)")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    ap.add_argument("--name", default="peers",
                    help="stem of the output files (default peers); another name adds its entry to the folder's "
                         "manifest.json instead of replacing it")
    ap.add_argument("--combine", default=None, metavar="A.json,B.json",
                    help="write one table and plot from earlier runs' JSON files, fitting nothing")
    args = ap.parse_args()
    if args.combine:
        combine(args.combine.split(","), Path(args.out) if args.out else RESULTS)
        return

    t_start = time.perf_counter()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    default_n = {"smoke": 100, "quick": 300, "full": 1000}[mode]
    draws = args.draws or default_n
    tune = args.tune or default_n
    timeout = args.timeout or (900.0 if mode == "full" else 300.0)
    skip = {x for x in args.skip.split(",") if x}
    names = (args.datasets.split(",") if args.datasets
             else SMOKE if args.smoke else QUICK if args.quick else ALL)
    tools = [t for t in args.tools.split(",") if t]

    def plan_list(arg, default):
        return [p for p in (default if arg is None else arg).split(",") if p]

    plans, uplans = plan_list(args.plans, "none,all,auto"), plan_list(args.uncorr_plans, "auto")
    glmm_plans, glmm_uplans = plan_list(args.plans, "none,laplace"), plan_list(args.uncorr_plans, "none,laplace")
    bad = [p for p in glmm_plans + glmm_uplans if p not in GLMM_PLANS]
    if bad and any(n in GLMM for n in names):
        raise SystemExit(f"--plans/--uncorr-plans {bad}: GLMM sets take {', '.join(GLMM_PLANS)}")
    settings = {"mode": mode, "chains": args.chains, "tune": tune, "draws": draws, "seed": args.seed,
                "target_accept": args.target_accept, "sampler": "NUTS (NumPyro for bayeslmm and Bambi, Stan for brms)",
                "load_average_1_5_15_start": [round(x, 2) for x in os.getloadavg()]}
    print(f"peers ({mode}): data sets {names}; tools {tools}; chains {args.chains}, tune {tune}, draws {draws}, "
          f"seed {args.seed}", flush=True)

    skipped = []
    bambi_py = ensure_bambi_venv() if "bambi" in tools else None
    if "bambi" in tools and bambi_py is None:
        skipped.append("bambi skipped: could not set up benchmarks/.peers-venv")
    rscript = brms_available() if "brms" in tools else None
    if "brms" in tools and rscript is None:
        msg = "brms skipped: Rscript/brms not found (install R and brms, e.g. apt-get install r-cran-brms)"
        print("NOTICE: " + msg, flush=True)
        skipped.append(msg)

    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if mode == "full" else f"_{mode}"
    rows = []
    common = {"chains": args.chains, "tune": tune, "draws": draws, "seed": args.seed,
              "target_accept": args.target_accept}
    bambi_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    versions = {}

    def doc():
        return {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "settings": settings,
                "versions": versions, "skipped": skipped, "rows": rows}

    with tempfile.TemporaryDirectory(prefix="peers-") as work:
        for name in names:
            data, formula, truth = load(name)
            fam = family(name)
            if fam != "gaussian":
                glmm_rows(name, data, formula, fam, truth, work, tools, glmm_plans, glmm_uplans, common, bambi_py,
                          rscript, bambi_env, timeout, rows, versions)
                write_outputs(doc(), out, suffix, args.name, verbose=False)
                continue
            m = prepare(name, data, formula, work)
            print(f"\n== {name}: {m['n_rows']} rows; {m['formula']}", flush=True)
            n = m["n_rows"]
            base = {**common, "data": m["data"], "groups": m["groups"]}

            def record(tool, model, plan, res):
                keep_row(rows, versions, make_row(name, n, tool, model, plan, res, truth, tune, draws), res, COLS)

            if "bayeslmm" in tools:
                runner = [sys.executable, str(HERE / "_peers_bayeslmm_runner.py")]
                fits = [("correlated", m["formula"], p) for p in plans]
                if m["has_cor"]:
                    fits += [("uncorrelated", m["formula_uncorr"], p) for p in uplans]
                done = {}
                for model_kind, f, p in fits:
                    kind = model_kind if m["has_cor"] else "uncorrelated"
                    same = m["auto"][model_kind] if p == "auto" else None
                    if same in done.get(model_kind, {}):
                        # auto chose a plan already fitted here (same model, data, seed): the same fit.
                        print(f"  bayeslmm {model_kind} auto = {same}: reusing that fit", flush=True)
                        record("bayeslmm", kind, f"auto={same}", done[model_kind][same])
                        continue
                    if f"{name}:{p}" in skip:
                        print(f"  bayeslmm {model_kind} {p}: skipped (--skip {name}:{p})", flush=True)
                        rows.append({"dataset": name, "n_rows": n, "tool": "bayeslmm", "model": kind,
                                     "plan": p, "error": f"skipped: {SKIP_REASONS.get(f'{name}:{p}', '--skip')}"})
                        continue
                    res = run_fit(runner, {**base, "formula": f, "plan": p}, work,
                                  f"{name}-bayeslmm-{model_kind}-{p}", timeout)
                    done.setdefault(model_kind, {})[p] = res
                    label = res.get("plan_label", p)
                    label = p if label == p else f"{p}={label}"
                    record("bayeslmm", kind, label, res)
            if bambi_py:
                spec = {**base, "formula": bambi_formula(m["formula_uncorr"]), "priors": m["priors_uncorr"]}
                res = run_fit([bambi_py, str(HERE / "_bambi_runner.py")], spec, work, f"{name}-bambi", timeout,
                              env=bambi_env)
                record("bambi", "uncorrelated", "non-centred", res)
            if rscript:
                brms_fits = [("correlated" if m["has_cor"] else "uncorrelated", m["formula"], m["priors"])]
                if args.brms_uncorr and m["has_cor"]:
                    brms_fits.append(("uncorrelated", m["formula_uncorr"], m["priors_uncorr"]))
                for model_kind, f, pri in brms_fits:
                    res = run_fit([rscript, str(HERE / "_brms_runner.R")], {**base, "formula": f, "priors": pri},
                                  work, f"{name}-brms-{model_kind}", timeout)
                    record("brms", model_kind, "non-centred", res)
            write_outputs(doc(), out, suffix, args.name, verbose=False)  # partial results survive an interrupted run

    print()
    good = [r for r in rows if "error" not in r]
    if good:
        print_table([_show(r) for r in good], GLMM_COLS if any(_is_glmm(r) for r in good) else COLS)
    for r in rows:
        if "error" in r:
            print(f"FAILED: {r['dataset']} {r['tool']} {r['model']} {r['plan']}: {r['error']}")
    settings["load_average_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    write_outputs(doc(), out, suffix, args.name)
    for s in skipped:
        print("NOTICE:", s)
    print(f"total {time.perf_counter() - t_start:.0f} s")


def write_outputs(doc, out, suffix, name="peers", verbose=True):
    """<name><suffix>.json, .md and .png under ``out`` from one result document.

    Under the default name the folder's manifest.json is rewritten; under
    another name (say, the GLMM run beside the Gaussian one) its entry in
    the manifest's ``additions`` is added or replaced instead.
    """
    st, rows = doc["settings"], doc["rows"]
    jpath = out / f"{name}{suffix}.json"
    jpath.write_text(json.dumps(doc, indent=1, default=float))
    load_avg = "".join(f"; load average (1/5/15 min) at {w} {'/'.join(map(str, st[k]))}"
                       for w, k in (("start", "load_average_1_5_15_start"), ("end", "load_average_1_5_15_end"))
                       if k in st)
    header = (f"{name} ({st['mode']}): {st['chains']} chains, {st['tune']} tune + {st['draws']} draws, "
              f"seed {st['seed']}; {doc['machine']}; {doc['date']}{load_avg}"
              + "".join(f"\n\n{s}" for s in doc["skipped"]))
    mpath = out / f"{name}{suffix}.md"
    write_markdown(rows, mpath, header, GLMM_MD_COLS if any(_is_glmm(r) for r in rows) else MD_COLS)
    ppath = plot(rows, out / f"{name}{suffix}.png",
                 f"{name} ({st['mode']}): {st['chains']} chains x {st['draws']} draws")
    files = [jpath.name, mpath.name] + ([Path(ppath).name] if ppath else [])
    if name == "peers":
        write_manifest(out, files=files)
    else:
        add_to_manifest(out, files)
    if verbose:
        print("wrote", jpath, mpath, ppath or "(no plot: no successful fit)")


def _latest_rows_per_dataset(docs):
    """Rows grouped by data set, in the order data sets first appear; each (data set, tool)
    pair's rows from the last file that has that pair."""
    owner = {(r["dataset"], r["tool"]): i for i, d in enumerate(docs) for r in d["rows"]}
    order = dict.fromkeys(r["dataset"] for d in docs for r in d["rows"])
    tools = dict.fromkeys(r["tool"] for d in docs for r in d["rows"])
    return [r for ds in order for t in tools if (ds, t) in owner
            for r in docs[owner[ds, t]]["rows"] if r["dataset"] == ds and r["tool"] == t]


def combine(paths, out):
    """One peers.json/.md/.png from several runs' JSON files (say, the data sets run in two goes).

    A (data set, tool) pair found in a later file replaces that pair's rows
    from the earlier files (a tool re-run on a data set after a change), so
    each tool's rows on a data set come from one run.
    """
    docs = [json.loads(Path(p).read_text()) for p in paths]
    keys = ("chains", "tune", "draws", "seed", "target_accept")
    if len({tuple(d["settings"][k] for k in keys) for d in docs}) > 1:
        raise SystemExit("--combine: the runs used different chains/tune/draws/seed/target_accept")
    if len({d["machine"] for d in docs}) > 1:
        raise SystemExit("--combine: the runs come from different machines")
    merged = {**docs[0], "date": " and ".join(dict.fromkeys(d["date"] for d in docs)),
              "versions": {k: v for d in docs for k, v in d["versions"].items()},
              "skipped": list(dict.fromkeys(s for d in docs for s in d["skipped"])),
              "rows": _latest_rows_per_dataset(docs), "combined_from": [str(p) for p in paths]}
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(merged, out, "" if merged["settings"]["mode"] == "full" else f"_{merged['settings']['mode']}")


if __name__ == "__main__":
    main()
