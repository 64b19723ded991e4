"""The shipped data sets: files, registry, literature formulas and lme4 references."""

import fnmatch
import importlib.util
import math
import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from bayeslmm.datasets import DATASETS, dataset_info, list_datasets, lme4_reference, load_dataset
from bayeslmm.model.formula import parse_formula

ROOT = Path(__file__).resolve().parents[1]
NAMES = list_datasets()


def test_registry_lists_every_file():
    assert NAMES == list(DATASETS)
    shipped = {p.name for p in resources.files("bayeslmm.datasets").iterdir() if p.name.endswith(".csv.gz")}
    assert shipped == {info.file for info in DATASETS.values()}


@pytest.mark.parametrize("name", NAMES)
def test_loads_with_documented_shape(name):
    info = dataset_info(name)
    df = load_dataset(name)
    assert isinstance(df, pd.DataFrame)
    assert len(df) == info.rows
    assert tuple(df.columns) == info.columns
    spec = parse_formula(info.formula)
    assert spec.factor_names == tuple(info.groups)
    for term in spec.random:
        n_levels = len(df[list(term.factor)].drop_duplicates())
        assert n_levels == info.groups[term.factor_name], term.factor_name
    assert not df.isna().any().any()


@pytest.mark.parametrize("name", NAMES)
def test_info_is_complete(name):
    info = dataset_info(name)
    for field in ("description", "source", "citation", "licence", "formula", "family", "link"):
        assert isinstance(getattr(info, field), str) and getattr(info, field), field
    assert info.family in {"gaussian", "binomial", "bernoulli", "poisson", "student"}
    assert (info.truth is not None) == info.simulated
    with pytest.raises(TypeError):
        info.groups["new"] = 1


def test_each_load_is_fresh():
    a = load_dataset("dillonE1")
    a.loc[0, "rt"] = -1.0
    a["extra"] = 0
    b = load_dataset("dillonE1")
    assert b.loc[0, "rt"] > 0 and "extra" not in b


def test_derived_columns():
    d = load_dataset("dillonE1")
    assert set(d.loc[d["int"] == "low", "c_int"]) == {0.5} and set(d.loc[d["int"] == "high", "c_int"]) == {-0.5}
    assert load_dataset("pupil")["c_load"].mean() == pytest.approx(0, abs=1e-12)
    assert set(load_dataset("stroop")["c_cond"]) == {-1.0, 1.0}
    assert load_dataset("eeg")["c_cloze"].mean() == pytest.approx(0, abs=1e-12)
    # the Gaussian grouseticks model has YEAR numeric, the Poisson one a factor
    assert pd.api.types.is_numeric_dtype(load_dataset("grouseticks")["YEAR"])
    assert list(load_dataset("grouseticks_poisson")["YEAR"].cat.categories) == [95, 96, 97]
    assert list(load_dataset("cbpp")["period"].cat.categories) == [1, 2, 3, 4]
    assert list(load_dataset("InstEval")["service"].cat.categories) == [0, 1]


@pytest.mark.parametrize("func", [load_dataset, dataset_info, lme4_reference])
def test_unknown_name(func):
    with pytest.raises(ValueError, match="dillonE1.*sleepstudy"):
        func("no_such_set")
    with pytest.raises(ValueError):
        func("_meta")  # a key of the reference file, not a data set


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.parametrize("name", NAMES)
def test_reference_entry(name):
    info = dataset_info(name)
    ref = lme4_reference(name)
    assert ref["formula"] == info.formula  # the R script fitted the registry's model
    assert ref["nobs"] == info.rows
    # lme4 names the nested factor of batch/cask "cask:batch"
    assert sorted(ref["ngrps"].values()) == sorted(info.groups.values())
    assert ref["converged"] is True and ref["warnings"] == []
    assert ref["singular"] == any("singular" in m for m in ref["messages"])
    fits = [ref] + list(ref.get("variants", {}).values())
    for fit in fits:
        assert fit["fixef"] and fit["fixef"].keys() == fit["fixef_se"].keys()
        assert all(_finite(v) for v in [*fit["fixef"].values(), *fit["fixef_se"].values()])
        assert all(v > 0 for v in fit["fixef_se"].values())
        sds = {(v["grp"], v.get("var1")): v["sdcor"] for v in fit["varcorr"] if "var2" not in v}
        assert all(_finite(v) and v >= 0 for v in sds.values())
        for v in fit["varcorr"]:
            assert _finite(v["vcov"])
            if "var2" in v:  # a correlation: undefined only where one of its SDs is 0
                assert (_finite(v["sdcor"]) and -1 <= v["sdcor"] <= 1) or \
                    (v["sdcor"] is None and 0 in (sds[v["grp"], v["var1"]], sds[v["grp"], v["var2"]]))
        assert _finite(fit["logLik"])
        if fit["family"] in ("gaussian", "student"):
            assert _finite(fit["sigma"]) and fit["sigma"] > 0
    if info.family == "student":
        assert _finite(ref["nu"]) and ref["nu"] > 0
    if info.family == "gaussian":
        assert ref["method"] == "REML"


def test_reference_is_a_copy():
    lme4_reference("sleepstudy")["fixef"]["Days"] = 0.0
    assert lme4_reference("sleepstudy")["fixef"]["Days"] == pytest.approx(10.467, abs=1e-3)


def test_simulated_files_match_their_script():
    spec = importlib.util.spec_from_file_location("make_simulated", ROOT / "reference" / "make_simulated.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, make in mod.SIMULATED.items():
        df, truth = make()
        pd.testing.assert_frame_equal(load_dataset(name), df, check_dtype=False)
        assert dict(dataset_info(name).truth) == truth


def test_package_data_ships_every_file():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bayeslmm"]
    folder = resources.files("bayeslmm.datasets")
    for p in folder.iterdir():
        if p.is_file() and not p.name.endswith((".py", ".pyc")):
            assert any(fnmatch.fnmatch(f"datasets/{p.name}", pat) for pat in patterns), p.name
    readme = folder.joinpath("README.md").read_text()
    assert all(f"`{n}`" in readme for n in NAMES)


def test_tests_read_no_data_outside_the_package():
    w = "sha" + "red"  # spelled in two parts so that this file passes its own check
    needles = [f"../{w}", f"{w}/", f"{w}_dir", f"load_{w}", f"{w}_data", "bayeslmm." + "testing"]
    offenders = [(p.name, n) for p in (ROOT / "tests").rglob("*.py") for n in needles
                 if n in p.read_text().lower()]
    assert not offenders, offenders
