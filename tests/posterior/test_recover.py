import warnings

import numpy as np

from bayeslmm import BayesLMM
from bayeslmm.posterior import recover as rec


class _Sizes:
    sizes = (12,)


def _fit(toy, seed=3):
    # Short runs compared with each other in distribution: their Rhat can exceed 1.01, which is not the point here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Parts of the model have not converged", UserWarning)
        return BayesLMM("y ~ cond + (cond | subj) + (1 | item)", toy).fit(
            draws=300, tune=200, chains=2, marginalize="subj", random_seed=seed, progressbar=False)


def test_padded_chunks_give_the_same_draws_in_distribution(toy, monkeypatch):
    """Recovery in several chunks, the last padded (600 draws in 7 chunks of 86),
    draws the same effects as one chunk: the same posterior draws of the
    parameters, so the means differ only by Monte Carlo error."""
    one = _fit(toy).posterior["r_subj"]
    monkeypatch.setattr(rec, "_workers", lambda: 1)
    whole = rec._chunking(600, _Sizes(), [])
    assert whole == (600, 0)
    # Per draw: 4 sampled item effects in, 12 subject effects (x 2) out.
    monkeypatch.setattr(rec, "_CHUNK_BYTES", 8 * (4 + 12 * 2) * 90)
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


def test_recovery_compiled_ahead_draws_what_the_plain_call_draws(toy, monkeypatch):
    """fit() compiles the recovery loop in a thread while it samples; the draws are those of recover_batch."""
    import bayeslmm.api

    calls = []
    real = rec.start_compiling

    def spy(*args):
        calls.append(args[3])
        return real(*args)

    monkeypatch.setattr(bayeslmm.api, "start_compiling", spy)
    ahead = _fit(toy).posterior["r_subj"].values
    assert calls == [600]  # 2 chains x 300 draws
    monkeypatch.setattr(bayeslmm.api, "start_compiling", lambda *args: None)
    plain = _fit(toy).posterior["r_subj"].values
    np.testing.assert_allclose(ahead, plain, rtol=1e-12, atol=1e-14)


def test_recovery_ignores_a_loop_compiled_for_another_number_of_draws(toy):
    from concurrent.futures import Future

    m = BayesLMM("y ~ cond + (cond | subj) + (1 | item)", toy)
    plan = m.plan("subj")
    model = m.build_model("subj")
    from bayeslmm.pymc_model.builder import marginal_data
    from bayeslmm.sampling import sample

    idata, _ = sample(model, draws=20, tune=20, chains=2, random_seed=1, progressbar=False)
    wrong = Future()
    wrong.set_exception(AssertionError("a loop compiled for 41 draws must not be used"))
    rec.recover_effects(idata, m.design, plan, marginal_data(m.design, plan), random_seed=1,
                        prepared=rec.Prepared(41, wrong))
    assert idata.posterior["r_subj"].shape == (2, 20, 6, 2)


def test_chunks_cover_every_worker_and_pad_to_equal_size(monkeypatch):
    monkeypatch.setattr(rec, "_workers", lambda: 2)
    assert rec._chunking(600, _Sizes(), []) == (300, 0)
    assert rec._chunking(601, _Sizes(), []) == (301, 1)
    assert rec._chunking(1, _Sizes(), []) == (1, 0)
    monkeypatch.setattr(rec, "_CHUNK_BYTES", 8 * 12 * 2 * 90)
    assert rec._chunking(600, _Sizes(), []) == (86, 2)  # 7 chunks of 86


def test_recovery_in_threads_draws_what_one_thread_draws(toy, monkeypatch):
    """The chunks' keys are split in chunk order: the draws do not depend on how many threads run them."""
    monkeypatch.setattr(rec, "_CHUNK_BYTES", 8 * (4 + 12 * 2) * 90)
    monkeypatch.setattr(rec, "_workers", lambda: 1)
    one = _fit(toy).posterior["r_subj"].values
    monkeypatch.setattr(rec, "_workers", lambda: 3)
    three = _fit(toy).posterior["r_subj"].values
    np.testing.assert_allclose(three, one, rtol=1e-12, atol=1e-14)
