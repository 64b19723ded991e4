"""Precision weights in the marginal density and the recovery, against dense references.

With lme4's precision weights ``eps_i ~ N(0, sigma^2 / w_i)`` the marginal
density of ``y`` is ``N(X beta + offset, Z Lambda Lambda^T Z^T + sigma^2 W^{-1})``;
rows of weight 0 have infinite variance and drop out. Every reference below
builds that covariance densely over the rows with ``w > 0`` (N <= 70) and
evaluates it with SciPy, or conditions on it for the effects.
"""

import jax
import numpy as np
import pytest
import scipy.stats as st
from test_marginal import _case

from bayeslmm.ops import MarginalData, conditional_mean, marginal_logp, recover_batch


def _weights(seed, n, zeros=0):
    rng = np.random.default_rng(100 + seed)
    w = rng.uniform(0.2, 3.0, n)
    w[rng.choice(n, zeros, replace=False)] = 0.0
    return w


# (case, weights): one and two factors, d = 1 and 2, an offset (rows mode), rows of weight 0.
CASES = {
    "one_d1": lambda: (_case("one_d1", 1, 40, [("g", 8, 1, [0.9])]), _weights(1, 40)),
    "one_d2": lambda: (_case("one_d2", 2, 50, [("g", 7, 2, [1.0, 0.5])]), _weights(2, 50)),
    "crossed_d2_d1": lambda: (_case("crossed_d2_d1", 3, 60, [("subj", 6, 2, [0.8, 0.4]), ("item", 9, 1, [0.6])]),
                              _weights(3, 60)),
    "crossed_d1_d2": lambda: (_case("crossed_d1_d2", 4, 60, [("a", 10, 1, [0.7]), ("b", 4, 2, [0.9, 0.3])]),
                              _weights(4, 60, zeros=5)),
    "three_factors": lambda: (_case("three_factors", 5, 70, [
        ("a", 5, 1, [0.5]), ("b", 8, 2, [0.9, 0.3]), ("c", 4, 1, [0.4])]), _weights(5, 70)),
    "offset_rows": lambda: (_case("offset_rows", 6, 50, [("g", 7, 2, [0.8, 0.5]), ("h", 5, 1, [0.6])], offset=True),
                            _weights(6, 50, zeros=3)),
    "large_mean": lambda: (_case("large_mean", 7, 60, [("subj", 8, 2, [1.0, 0.3]), ("item", 6, 1, [0.5])],
                                 mean=5000.0, scale=500.0), _weights(7, 60)),
}
CASE_MODES = [(c, m) for c in CASES for m in (["rows"] if c == "offset_rows" else ["rows", "sufficient"])]


def _md(case, w, sufficient):
    return MarginalData.build(case.y, case.X, case.factors, sufficient, weights=w)


def _dense_cov(case, w, Ls, sigma):
    keep = w > 0
    ZL = case.Z() @ case.Lam(Ls)
    return (ZL @ ZL.T + sigma**2 * np.diag(1.0 / np.where(keep, w, 1.0)))[np.ix_(keep, keep)], keep


def dense_logpdf(case, w, beta=None, sigma=None, Ls=None):
    sigma = case.sigma if sigma is None else sigma
    cov, keep = _dense_cov(case, w, case.Ls if Ls is None else Ls, sigma)
    return st.multivariate_normal.logpdf(case.y[keep], case.mean(beta)[keep], cov)


def dense_posterior(case, w):
    """Mean and covariance of u | y (flattened, caller order) by Gaussian conditioning."""
    keep = w > 0
    Z, Lam = case.Z()[keep], case.Lam()
    Su = Lam @ Lam.T
    V, _ = _dense_cov(case, w, case.Ls, case.sigma)
    K = Su @ Z.T @ np.linalg.inv(V)
    return K @ (case.y - case.mean())[keep], Su - K @ Z @ Su


def _rel(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


@pytest.mark.parametrize("name, mode", CASE_MODES)
def test_weighted_logp_matches_dense_density(name, mode):
    case, w = CASES[name]()
    md = _md(case, w, mode == "sufficient")
    value = jax.jit(lambda *a: marginal_logp(md, *a))(*case.args())
    ref = dense_logpdf(case, w)
    assert _rel(value, ref) < 1e-10
    # The weights matter: the unweighted density is far from the reference.
    unweighted = marginal_logp(MarginalData.build(case.y, case.X, case.factors, mode == "sufficient"), *case.args())
    assert abs(float(unweighted) - ref) > 0.1


def test_unit_weights_change_nothing():
    case, _ = CASES["crossed_d2_d1"]()
    for sufficient in (False, True):
        a = marginal_logp(_md(case, np.ones(case.y.size), sufficient), *case.args())
        b = marginal_logp(MarginalData.build(case.y, case.X, case.factors, sufficient), *case.args())
        assert _rel(a, b) < 1e-13


def test_weight_two_is_a_row_seen_twice_up_to_a_constant():
    """Two copies of a row (weight 1 each) and one row of weight 2 give the same cross-products,
    so their densities differ only in the normalizing terms: one more row's ``log(2 pi sigma^2)``
    against ``1/2 log 2``, a difference of ``-1/2 log(4 pi sigma^2)``, effects included."""
    case, _ = CASES["crossed_d2_d1"]()
    n = case.y.size
    w = np.ones(n)
    w[0] = 2.0
    dup = np.r_[0, np.arange(n)]
    fd = [type(f).of(f.group_index[dup], f.values[dup], f.n_levels, name=f.name) for f in case.factors]
    for sufficient in (False, True):
        md_w = _md(case, w, sufficient)
        md_dup = MarginalData.build(case.y[dup], case.X[dup], fd, sufficient)
        for sigma in (0.5, 1.3):
            a = float(marginal_logp(md_w, case.beta, sigma, case.Ls))
            b = float(marginal_logp(md_dup, case.beta, sigma, case.Ls))
            np.testing.assert_allclose(b - a, -0.5 * np.log(4 * np.pi * sigma**2), rtol=1e-9)


@pytest.mark.parametrize("name, mode", [("crossed_d2_d1", "sufficient"), ("crossed_d1_d2", "rows"),
                                        ("offset_rows", "rows"), ("one_d2", "sufficient")])
def test_weighted_gradient_matches_finite_differences(name, mode):
    case, w = CASES[name]()
    md = _md(case, w, mode == "sufficient")
    k = len(case.Ls)
    sizes = [case.beta.size, 1] + [L.size for L in case.Ls]
    cuts = np.cumsum(sizes)[:-1]

    def unpack(theta):
        parts = np.split(theta, cuts) if isinstance(theta, np.ndarray) else jax.numpy.split(theta, cuts)
        return parts[0], parts[1][0], [p.reshape(L.shape) for p, L in zip(parts[2:2 + k], case.Ls)]

    def f(theta):
        beta, sigma, Ls = unpack(theta)
        return marginal_logp(md, beta, sigma, Ls, case.offset)

    theta = np.concatenate([case.beta, [case.sigma]] + [L.ravel() for L in case.Ls])
    grad = np.asarray(jax.jit(jax.grad(f))(theta))
    fj = jax.jit(f)
    h = 1e-5
    fd = np.array([(float(fj(theta + h * e)) - float(fj(theta - h * e))) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * (1 + np.abs(fd).max()))
    # The finite differences are of the dense density itself, not only of the kernel.
    dense = np.array([(dense_logpdf(case, w, *_dense_args(unpack(theta + h * e)))
                       - dense_logpdf(case, w, *_dense_args(unpack(theta - h * e)))) / (2 * h)
                      for e in np.eye(theta.size)[:3]])
    np.testing.assert_allclose(grad[:3], dense, rtol=1e-5, atol=1e-5)


def _dense_args(parts):
    beta, sigma, Ls = parts
    return beta, sigma, Ls


@pytest.mark.parametrize("name", list(CASES))
def test_weighted_conditional_mean_matches_dense(name):
    case, w = CASES[name]()
    mean, _ = dense_posterior(case, w)
    md = _md(case, w, case.offset is None)
    got = jax.jit(lambda *a: conditional_mean(md, *a))(*case.args())
    np.testing.assert_allclose(np.concatenate([u.ravel() for u in got]), mean,
                               rtol=1e-8, atol=1e-8 * np.max(np.abs(mean)))


@pytest.mark.parametrize("name, sufficient", [("crossed_d1_d2", True), ("offset_rows", False)])
def test_weighted_recovered_draws_match_dense_posterior(name, sufficient):
    case, w = CASES[name]()
    S = 4000
    md = _md(case, w, sufficient)
    rep = lambda x: None if x is None else np.broadcast_to(x, (S,) + np.shape(x))  # noqa: E731
    draws = recover_batch(md, jax.random.PRNGKey(0), rep(case.beta), rep(case.sigma),
                          [rep(L) for L in case.Ls], rep(case.offset))
    u = np.concatenate([np.asarray(d).reshape(S, -1) for d in draws], axis=1)
    mean, cov = dense_posterior(case, w)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    assert np.all(np.abs(u.mean(0) - mean) <= 5 * sd / np.sqrt(S) + 1e-12)
    cov_se = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / S)
    assert np.all(np.abs(np.cov(u.T) - cov) <= 5 * cov_se + 1e-12)


def test_level_with_only_zero_weights_is_drawn_from_its_prior():
    case, w = CASES["one_d1"]()
    g = case.factors[0].group_index
    w = w.copy()
    w[g == 3] = 0.0
    md = _md(case, w, True)
    mean = conditional_mean(md, *case.args())[0]
    np.testing.assert_allclose(mean[3], 0.0, atol=1e-14)
    assert np.all(np.abs(np.delete(mean, 3, axis=0)) > 1e-6)
    assert _rel(marginal_logp(md, *case.args()), dense_logpdf(case, w)) < 1e-10


@pytest.mark.parametrize("bad, phrase", [
    (lambda n: np.ones(n - 1), "shape"),
    (lambda n: np.r_[-1.0, np.ones(n - 1)], "non-negative"),
    (lambda n: np.r_[np.nan, np.ones(n - 1)], "finite"),
    (lambda n: np.zeros(n), "all zero"),
])
def test_bad_weights_raise(bad, phrase):
    case, _ = CASES["one_d1"]()
    with pytest.raises(ValueError, match=phrase):
        _md(case, bad(case.y.size), True)
