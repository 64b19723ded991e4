"""Signed SDs of marginalized factors (builder._scale_factor): the same posterior as log-scale SDs."""

import numpy as np
import pytest

from bayeslmm import BayesLMM, Prior
from bayeslmm.pymc_model.builder import build_model

FORMULA = "y ~ cond + (cond | subj) + (1 | item)"


def _models(toy, plan="all", priors=None):
    m = BayesLMM(FORMULA, toy, priors=priors)
    p = m.plan(plan)
    return (build_model(m.design, m.priors, p, signed_sds=True),
            build_model(m.design, m.priors, p, signed_sds=False))


def _value_names(model):
    return {v.name for v in model.value_vars}


def test_only_marginalized_factors_with_mirrorable_priors_are_signed(toy):
    signed, plain = _models(toy)
    assert {"sd_subj__raw", "sd_item__Intercept__raw"} <= _value_names(signed)
    assert {"sd_subj__raw_log__", "sd_item__Intercept_log__"} <= _value_names(plain)
    # A sampled factor keeps log sd (its effects are non-centred on sd).
    partial, _ = _models(toy, plan="subj")
    assert "sd_subj__raw" in _value_names(partial) and "sd_item__Intercept_log__" in _value_names(partial)
    # An exponential prior has a kink at 0 when mirrored: log sd.
    expo, _ = _models(toy, priors=[Prior("exponential(2)", "sd", group="item")])
    assert "sd_item__Intercept_log__" in _value_names(expo) and "sd_subj__raw" in _value_names(expo)


@pytest.mark.parametrize("signs", [(1, 1, 1), (-1, 1, -1), (1, -1, 1), (-1, -1, -1)])
def test_density_is_the_log_scale_models_at_the_mirrored_point(toy, signs):
    """Signed model at (s, rho) = model with log SDs at (|s|, sign(s1 s2) rho), in constrained terms.

    Without the transforms' Jacobians both are prior x marginal likelihood at the
    same covariance; the mirrored priors have half the density of the half ones
    (a log 2 per SD, three SDs; PyMC's half and whole Student-t constants
    differ by about 1e-8). The deterministics sd and cor are the same.
    """
    signed, plain = _models(toy)
    lp_signed = signed.compile_logp(jacobian=False)
    lp_plain = plain.compile_logp(jacobian=False)
    rng = np.random.default_rng(sum(signs) + 7)
    s = np.array(signs[:2]) * rng.uniform(0.05, 0.8, 2)
    s_item = signs[2] * rng.uniform(0.05, 0.8)
    z = rng.normal()  # the d = 2 correlation's unconstrained value; rho is odd in z
    common = {"Intercept_centered": 6.0 + rng.normal(0, 0.1), "b": rng.normal(0, 0.1, 1),
              "sigma_log__": np.log(rng.uniform(0.2, 0.5))}
    pt_signed = dict(common, sd_subj__raw=s, sd_item__Intercept__raw=s_item, cor_subj__raw_cpc__=np.array([z]))
    flip = np.sign(s[0] * s[1])
    pt_plain = dict(common, sd_subj__raw_log__=np.log(np.abs(s)), sd_item__Intercept_log__=np.log(abs(s_item)),
                    cor_subj__raw_cpc__=np.array([flip * z]))
    assert lp_plain(pt_plain) - lp_signed(pt_signed) == pytest.approx(3 * np.log(2), abs=1e-6)

    def deterministics(model, point):
        outs = model.replace_rvs_by_values([model["sd_subj"], model["cor_subj"], model["sd_item"]])
        return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)
    for a, b in zip(deterministics(signed, pt_signed), deterministics(plain, pt_plain)):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_density_is_even_in_each_sd(toy):
    """Flipping an SD's sign (with the correlations it enters) leaves the log-density unchanged."""
    signed, _ = _models(toy)
    lp = signed.compile_logp()
    base = {"Intercept_centered": 6.0, "b": np.array([0.1]), "sigma_log__": np.log(0.3),
            "sd_subj__raw": np.array([0.3, 0.1]), "sd_item__Intercept__raw": 0.2, "cor_subj__raw_cpc__": np.array([0.4])}
    ref = lp(base)
    assert np.isfinite(ref)
    for change in [{"sd_item__Intercept__raw": -0.2},
                   {"sd_subj__raw": np.array([-0.3, 0.1]), "cor_subj__raw_cpc__": np.array([-0.4])},
                   {"sd_subj__raw": np.array([-0.3, -0.1])}]:
        assert lp(dict(base, **change)) == pytest.approx(ref, abs=1e-10)
    # and finite, with a finite gradient, at an SD of exactly 0
    dlp = signed.compile_dlogp()
    at0 = dict(base, sd_item__Intercept__raw=0.0, sd_subj__raw=np.array([0.0, 0.1]))
    assert np.isfinite(lp(at0)) and np.all(np.isfinite(dlp(at0)))
