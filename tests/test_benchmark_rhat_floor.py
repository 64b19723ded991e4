"""benchmarks/rhat_floor.py: the max Rhat of exact, independent chains, and of autocorrelated ones."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import rhat_floor  # noqa: E402


def test_max_rhat_of_exact_chains_is_near_one_and_grows_with_autocorrelation():
    iid = rhat_floor.max_rhats(chains=2, draws=200, n_params=100, reps=4, phi=0.0, seed=1)
    slow = rhat_floor.max_rhats(chains=2, draws=200, n_params=100, reps=4, phi=0.9, seed=1)
    assert iid.shape == (4,) and np.all((iid > 1.0) & (iid < 1.05))
    # Fewer effective draws, a larger maximum: with phi = 0.9 the ESS is about 1/19 of the draws.
    assert slow.mean() > iid.mean() + 0.02
