"""Access to the shared real data sets used by tests and benchmarks.

They live beside the project (``../shared/data``), never inside it; set
``BAYESLMM_SHARED_DATA`` to point elsewhere. Each loader adds the derived
columns of the model used in the literature (see that folder's README).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["shared_dir", "load_shared", "lme4_reference", "SHARED_MODELS"]

_ROOT = Path(__file__).resolve().parents[1]

# data set -> (file, formula from the shared README)
SHARED_MODELS = {
    "dillonE1": ("df_dillonE1.csv", "log(rt) ~ 1 + c_int + (1 + c_int | subj) + (1 + c_int | item)"),
    "english": ("df_english.csv", "NP1 ~ 1 + condition + (1 + condition | subject) + (1 + condition | item)"),
    "dutch": ("df_dutch.csv", "NP1 ~ 1 + condition + (1 + condition | subject) + (1 + condition | item)"),
    "pupil": ("df_pupil_complete.csv", "p_size ~ 1 + c_load + (1 + c_load | subj)"),
    "stroop": ("df_stroop.csv", "log(RT) ~ 1 + c_cond + (1 + c_cond | subj)"),
    "eeg": ("df_eeg.csv", "n400 ~ 1 + c_cloze + (1 + c_cloze | subj) + (1 + c_cloze | item)"),
    "grouseticks": ("grouseticks.csv", "log(TICKS + 1) ~ 1 + YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"),
}


def shared_dir(kind: str = "data") -> Path:
    """``../shared/<kind>`` from the project root, or ``$BAYESLMM_SHARED_DATA/../<kind>``."""
    env = os.environ.get("BAYESLMM_SHARED_DATA")
    base = Path(env).parent if env else _ROOT.parent / "shared"
    return base / kind


def load_shared(name: str) -> tuple[pd.DataFrame, str]:
    """(data with derived columns, formula) of a shared data set."""
    fname, formula = SHARED_MODELS[name]
    df = pd.read_csv(shared_dir() / fname)
    if name == "dillonE1":
        df["c_int"] = np.where(df["int"] == "low", 0.5, -0.5)
    elif name == "pupil":
        df["c_load"] = df["load"] - df["load"].mean()
    elif name == "stroop":
        df["c_cond"] = np.where(df["condition"] == "Incongruent", 1.0, -1.0)
    elif name == "eeg":
        df["c_cloze"] = df["cloze"] - df["cloze"].mean()
    return df, formula


def lme4_reference(name: str) -> dict:
    """lme4's REML estimates for a shared data set."""
    with open(shared_dir("reference") / "lme4_reml.json") as fh:
        return json.load(fh)[name]
