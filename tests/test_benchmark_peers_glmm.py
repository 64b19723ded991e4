"""The GLMM rows of benchmarks/peers.py: specs, formulas and priors handed to each tool, and the row metrics.

Neither Bambi nor brms is needed: the checks stop at what peers.py hands
their runners (the CSV, formulas in each tool's syntax, the prior list and
Bambi's translation of it) and at the metrics computed from a runner's result.
"""

import json
import sys
import types
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _bambi_runner  # noqa: E402
import _common  # noqa: E402
import peers  # noqa: E402
import registry  # noqa: E402

from bayeslmm import BayesLMM  # noqa: E402


def _spec(name, tmp_path):
    data, formula, _ = registry.load(name)
    return peers.prepare_glmm(name, data, formula, registry.family(name), tmp_path), data


def _design(formula, data, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesLMM(formula, data, family=family).design


def test_registry_glmm_sets_carry_family_and_canonical_truth():
    assert [registry.family(n) for n in registry.GLMM] == ["binomial", "poisson", "bernoulli"]
    assert registry.family("grouseticks") == "gaussian"  # the Gaussian set of the same name stays Gaussian
    assert not set(registry.GLMM) & set(registry.ALL)
    df, formula, truth = registry.load("sim_bernoulli")
    assert len(df) == 6000 and df["subj"].nunique() == 300 and df["item"].nunique() == 30
    assert truth == {"b[Intercept]": 0.5, "b[cond]": 0.6, "sd[subj,Intercept]": 0.8, "sd[subj,cond]": 0.4,
                     "sd[item,Intercept]": 0.6}
    assert registry.load("cbpp")[2] is None


def test_binomial_spec_writes_successes_and_trials_and_each_tools_formula(tmp_path):
    m, data = _spec("cbpp", tmp_path)
    assert m["family"] == "binomial" and m["trials"] == "n_trials" and not m["has_cor"]
    assert m["formula"] == "incidence | trials(n_trials) ~ 1 + period2 + period3 + period4 + (1 | herd)"
    assert (peers.bambi_glmm_formula(m["formula_uncorr"])
            == "p(incidence, n_trials) ~ 1 + period2 + period3 + period4 + (1 | herd)")
    csv = pd.read_csv(m["data"])
    np.testing.assert_array_equal(csv["incidence"], data["incidence"])
    np.testing.assert_array_equal(csv["n_trials"], data["size"])
    assert csv["incidence"].dtype.kind == "i" and csv["n_trials"].dtype.kind == "i"
    for k in (2, 3, 4):
        np.testing.assert_array_equal(csv[f"period{k}"], (data["period"].astype(int) == k).astype(float))
    # the rewritten model is the model as written: same response, trials and fixed-effects design
    ours = _design("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, "binomial")
    theirs = _design(m["formula"], csv.astype({"herd": str}), "binomial")
    np.testing.assert_array_equal(theirs.y, ours.y)
    np.testing.assert_array_equal(theirs.trials, ours.trials)
    np.testing.assert_allclose(theirs.X, ours.X)


def test_poisson_factor_becomes_dummy_columns_with_the_original_priors(tmp_path):
    m, data = _spec("grouseticks_poisson", tmp_path)
    assert m["formula"] == "TICKS ~ 1 + YEAR96 + YEAR97 + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"
    assert m["trials"] is None and m["groups"] == ["BROOD", "LOCATION"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        orig = BayesLMM(registry.load("grouseticks_poisson")[1], data, family="poisson").priors
    by_coef = {p["coef"]: p for p in m["priors"] if p["cls"] == "b"}
    assert set(by_coef) == {"YEAR96", "YEAR97", "cHEIGHT"}
    for r in orig:
        if r.cls == "b":
            name = {"YEAR[96]": "YEAR96", "YEAR[97]": "YEAR97"}.get(r.coef, r.coef)
            assert by_coef[name]["dist"] == r.dist
            np.testing.assert_allclose(by_coef[name]["args"], r.args)
    icpt = next(p for p in m["priors"] if p["cls"] == "Intercept")
    assert icpt["args"][1] == pytest.approx(next(r for r in orig if r.cls == "Intercept").args[1])


def test_bernoulli_crossed_set_has_the_uncorrelated_like_for_like_rows(tmp_path):
    m, _ = _spec("sim_bernoulli", tmp_path)
    assert m["has_cor"]
    assert m["formula"] == "correct ~ 1 + cond + (1 + cond | subj) + (1 | item)"
    assert m["formula_uncorr"] == "correct ~ 1 + cond + (1 + cond || subj) + (1 || item)"
    assert peers.bambi_glmm_formula(m["formula_uncorr"]) == "correct ~ 1 + cond + (1 + cond | subj) + (1 | item)"
    assert not any(p["cls"] == "cor" for p in m["priors_uncorr"])
    fits = peers.glmm_fits(m, ["none", "laplace"], ["laplace"])
    assert [(k, p) for k, _, p in fits] == [("correlated", "none"), ("correlated", "laplace"),
                                          ("uncorrelated", "laplace")]
    assert fits[-1][1] == m["formula_uncorr"]
    assert peers.GLMM_PLANS["laplace"] == {"plan": "all", "approximation": "laplace"}


def test_uncorrelated_set_gets_no_extra_uncorrelated_fits(tmp_path):
    m, _ = _spec("cbpp", tmp_path)
    fits = peers.glmm_fits(m, ["none", "laplace"], ["none", "laplace"])
    assert [(k, p) for k, _, p in fits] == [("uncorrelated", "none"), ("uncorrelated", "laplace")]


def test_grouping_by_an_interaction_is_refused(tmp_path):
    data, _, _ = registry.load("cbpp")
    with pytest.raises(SystemExit, match="not a plain column"):
        peers.prepare_glmm("cbpp", data, "cbind(incidence, size - incidence) ~ 1 + (1 | herd:period)",
                           "binomial", tmp_path)


class _FakeBambi:
    """Stands in for the bambi module: Prior records its distribution and arguments."""

    class Prior:
        def __init__(self, name, **kw):
            self.name, self.kw = name, kw


def test_bambi_priors_for_a_glmm_have_no_sigma_and_hierarchical_sds(tmp_path):
    m, _ = _spec("sim_bernoulli", tmp_path)
    pri = _bambi_runner.bambi_priors(m["priors_uncorr"], _FakeBambi)
    assert set(pri) == {"Intercept", "cond", "1|subj", "cond|subj", "1|item"}
    assert (pri["Intercept"].name, pri["Intercept"].kw) == ("StudentT", {"nu": 3.0, "mu": 0.0, "sigma": 2.5})
    assert (pri["cond"].name, pri["cond"].kw) == ("Normal", {"mu": 0.0, "sigma": 5.0})
    sd = pri["cond|subj"]
    assert sd.name == "Normal" and sd.kw["mu"] == 0
    assert (sd.kw["sigma"].name, sd.kw["sigma"].kw) == ("HalfStudentT", {"nu": 3.0, "sigma": 5.0})
    m2, _ = _spec("cbpp", tmp_path)
    assert set(_bambi_runner.bambi_priors(m2["priors"], _FakeBambi)) == {"Intercept", "period2", "period3",
                                                                         "period4", "1|herd"}


def test_gradient_metrics_decompose_ess_per_sampling_second():
    g = peers.gradient_metrics(ess=150.0, n_grad=6000, sampling_s=4.0, tune=500, draws=500)
    assert g["ess_per_grad"] == pytest.approx(150 / 6000)
    assert g["grads_per_s"] == pytest.approx(6000 * 2 / 4.0)
    assert 150 / 4.0 == pytest.approx(g["grads_per_s"] * g["ess_per_grad"] * 500 / 1000)
    assert peers.gradient_metrics(150.0, None, 4.0, 500, 500) == {}
    assert peers.gradient_metrics(150.0, float("nan"), 4.0, 500, 500) == {}


def test_posterior_metrics_count_leapfrog_steps_from_sample_stats():
    rng = np.random.default_rng(0)
    steps = rng.integers(1, 64, size=(2, 50))
    idata = az.from_dict(posterior={"fixef": rng.standard_normal((2, 50, 2)), "sd_g": rng.gamma(5, size=(2, 50, 1))},
                         sample_stats={"n_steps": steps, "diverging": np.zeros((2, 50), bool)})
    fit = types.SimpleNamespace(posterior=idata.posterior, idata=idata, n_divergences=0)
    met = _common.posterior_metrics(fit)
    assert met["grads_post_warmup"] == steps.sum()
    ess = min(float(np.min(az.ess(idata.posterior[v], method="bulk")[v])) for v in ("fixef", "sd_g"))
    assert met["ess_per_grad"] == pytest.approx(ess / steps.sum())


def test_glmm_row_carries_gradient_metrics_and_the_table_their_columns(tmp_path):
    res = {"wall_s": 10.0, "sampling_s": 4.0, "min_bulk_ess": 200.0, "max_rhat": 1.01, "divergences": 0,
           "peak_rss_mb": 500.0, "n_grad": 8000.0}
    row = peers.make_row("cbpp", 56, "bambi", "uncorrelated", "non-centred", res, None, 500, 500)
    row.update(family="binomial", intervals={"b[Intercept]": [-1.9, -1.2], "sd[herd,Intercept]": [0.3, 1.2]})
    assert row["ess_per_grad"] == pytest.approx(0.025) and row["grads_per_s"] == pytest.approx(4000.0)
    failed = peers.make_row("cbpp", 56, "brms", "uncorrelated", "non-centred", {"error": "brms: boom"}, None, 500, 500)
    assert "n_grad" not in failed
    path = tmp_path / "t.md"
    peers.write_markdown([row], path, "h", peers.GLMM_MD_COLS)
    header = path.read_text().splitlines()[2]
    assert "grads_per_s" in header and "ess_per_grad" in header
    text = path.read_text()
    assert "| 4000 |" in text and "| 8000 |" in text
    assert "95% intervals, cbpp:" in text
    assert "| bambi | uncorrelated | non-centred | -1.9, -1.2 | 0.3, 1.2 |" in text


def test_named_run_adds_its_manifest_entry_and_keeps_the_rest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"what": "gaussian peers", "additions": [
        {"files": ["compile.json"]}, {"files": ["peers_glmm.json", "old.md"], "date": "before"}]}))
    _common.add_to_manifest(tmp_path, ["peers_glmm.json", "peers_glmm.md"], command="python peers.py")
    doc = json.loads((tmp_path / "manifest.json").read_text())
    assert doc["what"] == "gaussian peers"
    assert [a["files"] for a in doc["additions"]] == [["compile.json"], ["peers_glmm.json", "peers_glmm.md"]]
    assert doc["additions"][-1]["command"] == "python peers.py" and "load_average_1_5_15" in doc["additions"][-1]
    fresh = tmp_path / "new"
    _common.add_to_manifest(fresh, ["a.json"])
    _common.add_to_manifest(fresh, ["a.json"])  # a partial write, then the final one: one record
    doc = json.loads((fresh / "manifest.json").read_text())
    assert doc["files"] == ["a.json"] and "additions" not in doc


def test_gaussian_interaction_factor_becomes_one_column_with_the_same_model(tmp_path):
    """lme4's ``(1 | a:b)`` is handed to every tool as one column of level labels under a plain name."""
    rng = np.random.default_rng(0)
    n = 240
    data = pd.DataFrame({"s": rng.integers(20, size=n).astype(str), "a": rng.integers(4, size=n).astype(str),
                         "b": rng.integers(2, size=n)})
    data["y"] = rng.normal(size=n) + data["b"]
    formula = "y ~ 1 + b + (1 | s) + (1 | a:b)"
    spec = peers.prepare("toy", data, formula, tmp_path)
    assert spec["formula"] == "y ~ 1 + b + (1 | s) + (1 | a_b)" and spec["groups"] == ["s", "a_b"]
    csv = pd.read_csv(spec["data"], dtype={"s": str, "a_b": str})
    assert set(csv["a_b"]) == set(data["a"] + ":" + data["b"].astype(str))
    orig, handed = _design(formula, data, "gaussian"), _design(spec["formula"], csv, "gaussian")
    assert [b.n_levels for b in handed.blocks] == [b.n_levels for b in orig.blocks]
    np.testing.assert_allclose(handed.X, orig.X)
    with pytest.raises(SystemExit, match="interaction of columns"):  # its plain name is taken
        peers.prepare("toy", data.assign(a_b=1.0), formula, tmp_path)
