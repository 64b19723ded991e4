import numpy as np

from bayeslmm import BayesLMM
from bayeslmm import recover as rec


def _fit(toy, seed=3):
    return BayesLMM("y ~ cond + (cond | subj) + (1 | item)", toy).fit(
        draws=300, tune=200, chains=2, marginalize="subj", random_seed=seed, progressbar=False)


def test_padded_chunks_give_the_same_draws_in_distribution(toy, monkeypatch):
    """Recovery in several chunks, the last padded (600 draws in 7 chunks of 86),
    draws the same effects as one chunk: the same posterior draws of the
    parameters, so the means differ only by Monte Carlo error."""
    one = _fit(toy).posterior["r_subj"]
    n = toy.shape[0]
    monkeypatch.setattr(rec, "_CHUNK_BYTES", 8 * (2 * n + 12 * 4) * 90)
    fit = _fit(toy)
    many = fit.posterior["r_subj"]
    assert many.shape == one.shape == (2, 300, 6, 2)
    assert np.all(np.isfinite(many.values))
    S = 600
    sd = one.std(("chain", "draw")).values
    diff = np.abs(many.mean(("chain", "draw")).values - one.mean(("chain", "draw")).values)
    assert np.all(diff <= 5 * sd * np.sqrt(2 / S))
    # Draw s goes with parameter draw s: each draw's effects scale with sd_subj.
    scale = np.abs(many.values).mean(axis=(2, 3)).ravel()
    sd_subj = fit.posterior["sd_subj"].values.mean(axis=-1).ravel()
    assert np.corrcoef(scale, sd_subj)[0, 1] > 0.3
