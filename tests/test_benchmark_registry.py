"""The benchmark scripts' one data-set registry: every name loads, with the shape the docs state."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import registry  # noqa: E402


def test_fully_crossed_set_has_every_subject_item_pair_once():
    df, formula, truth = registry.load("crossed_334x80")
    assert len(df) == 334 * 80
    assert df.groupby(["subj", "item"]).size().eq(1).all()
    assert formula == "y ~ cond + (cond | subj) + (cond | item)"
    assert truth["sigma"] > 0


def test_insteval_is_lme4s_model_with_its_level_counts():
    df, formula, truth = registry.load("InstEval")
    assert formula == "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"
    assert (df["s"].nunique(), df["d"].nunique(), len(df)) == (2972, 1128, 73421)
    assert df.groupby(["dept", "service"], observed=True).ngroups == 28
    assert truth is None


def test_env_override_replaces_a_real_set(tmp_path, monkeypatch):
    df, _, _ = registry.load("dutch")
    df.head(50).to_csv(tmp_path / "df_dutch.csv", index=False)
    monkeypatch.setenv(registry.ENV_DATA, str(tmp_path))
    assert len(registry.load("dutch")[0]) == 50


def test_unknown_name_is_refused():
    with pytest.raises(SystemExit, match="unknown data set 'nope'"):
        registry.load("nope")
