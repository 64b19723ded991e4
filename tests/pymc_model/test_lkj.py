"""The CPC transform for LKJ correlations, against numpy's Cholesky and finite-difference Jacobians."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from bayeslmm.pymc_model.lkj import CPCTransform, cholesky_of_corr, corr_cholesky


def _compile(d):
    z = pt.vector("z")
    c = pt.vector("c")
    tr = CPCTransform(d)
    R, logdet = corr_cholesky(z, d)
    return (pytensor.function([z], tr.backward(z)), pytensor.function([c], tr.forward(c)),
            pytensor.function([z], logdet), pytensor.function([z], R), pytensor.function([c], cholesky_of_corr(c, d)))


def _random_corr(d, rng):
    A = rng.standard_normal((d, d + 2))
    S = A @ A.T
    s = np.sqrt(np.diag(S))
    return S / np.outer(s, s)


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_round_trip_and_cholesky(d):
    backward, forward, _, chol_z, chol_c = _compile(d)
    rng = np.random.default_rng(d)
    iu = np.triu_indices(d, 1)
    for _ in range(5):
        C = _random_corr(d, rng)
        c = C[iu]
        np.testing.assert_allclose(chol_c(c), np.linalg.cholesky(C), atol=1e-12)
        z = forward(c)
        np.testing.assert_allclose(backward(z), c, atol=1e-12)
        np.testing.assert_allclose(chol_z(z), np.linalg.cholesky(C), atol=1e-12)
        z2 = rng.standard_normal(len(c)) * 2
        np.testing.assert_allclose(forward(backward(z2)), z2, atol=1e-9)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_log_jacobian_matches_finite_differences(d):
    backward, _, logdet, _, _ = _compile(d)
    rng = np.random.default_rng(10 + d)
    k = d * (d - 1) // 2
    h = 1e-6
    for _ in range(4):
        z = rng.standard_normal(k) * 1.5
        J = np.column_stack([(backward(z + h * e) - backward(z - h * e)) / (2 * h) for e in np.eye(k)])
        assert logdet(z) == pytest.approx(np.linalg.slogdet(J)[1], abs=1e-6)


def test_extreme_values_stay_finite():
    _, _, logdet, chol_z, _ = _compile(3)
    z = np.array([25.0, -30.0, 40.0])
    assert np.isfinite(logdet(z))
    assert np.all(np.isfinite(chol_z(z)))


@pytest.mark.parametrize("d,eta", [(2, 2.0), (3, 1.0), (4, 3.0)])
def test_model_density_is_lkj_times_jacobian(d, eta):
    """PyMC's log-density of the unconstrained value = LKJ(C(z)) + log|dC/dz|, up to a constant."""
    with pm.Model() as m:
        pm.LKJCorr("c", n=d, eta=eta, default_transform=None, transform=CPCTransform(d))
    logp = m.compile_logp()
    backward, _, _, _, _ = _compile(d)
    rng = np.random.default_rng(20 + d)
    k = d * (d - 1) // 2
    h = 1e-6
    iu = np.triu_indices(d, 1)
    diffs = []
    for _ in range(4):
        z = rng.standard_normal(k)
        c = backward(z)
        C = np.eye(d)
        C[iu] = c
        C[iu[::-1]] = c
        J = np.column_stack([(backward(z + h * e) - backward(z - h * e)) / (2 * h) for e in np.eye(k)])
        ref = (eta - 1) * np.linalg.slogdet(C)[1] + np.linalg.slogdet(J)[1]
        diffs.append(logp({"c_cpc__": z}) - ref)
    assert np.ptp(diffs) < 1e-6
