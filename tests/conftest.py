import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def toy():
    """Small crossed data: 6 subjects x 4 items x 2 conditions, a numeric and a 3-level factor."""
    rng = np.random.default_rng(0)
    rows = [(s, i, c) for s in range(6) for i in range(4) for c in (-0.5, 0.5)]
    df = pd.DataFrame(rows, columns=["subj", "item", "cond"])
    df["subj"] = "s" + df["subj"].astype(str)
    df["item"] = "i" + df["item"].astype(str)
    df["x"] = rng.normal(size=len(df))
    df["f"] = np.array(["a", "b", "c"])[np.arange(len(df)) % 3]
    df["grp"] = np.arange(len(df)) % 2
    df["rt"] = np.exp(6 + 0.1 * df["cond"] + rng.normal(0, 0.3, len(df)))
    df["y"] = np.log(df["rt"])
    return df

