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


def test_recovery_compiled_ahead_draws_what_the_plain_call_draws(toy, monkeypatch):
    """fit() compiles the recovery loop in a thread while it samples; the draws are those of recover_batch."""
    calls = []
    real = rec.start_compiling

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(rec, "start_compiling", spy)
    ahead = _fit(toy).posterior["r_subj"].values
    assert calls == [600]  # 2 chains x 300 draws
    monkeypatch.setattr(rec, "start_compiling", lambda *args: None)
    plain = _fit(toy).posterior["r_subj"].values
    np.testing.assert_allclose(ahead, plain, rtol=1e-12, atol=1e-14)


def test_recovery_ignores_a_loop_compiled_for_another_number_of_draws(toy):
    from concurrent.futures import Future

    m = BayesLMM("y ~ cond + (cond | subj) + (1 | item)", toy)
    plan = m.plan("subj")
    model = m.build_model("subj")
    from bayeslmm.builder import marginal_data
    from bayeslmm.sampling import run_sampler

    idata, _ = run_sampler(model, sampler="numpyro", draws=20, tune=20, chains=2, target_accept=0.8,
                           random_seed=1, progressbar=False, low_memory=True)
    wrong = Future()
    wrong.set_exception(AssertionError("a loop compiled for 41 draws must not be used"))
    rec.recover_effects(idata, m.design, plan, marginal_data(m.design, plan), random_seed=1,
                        prepared=rec.Prepared(41, wrong))
    assert idata.posterior["r_subj"].shape == (2, 20, 6, 2)
