"""The marginal log-density kernels against an obviously correct dense reference.

Every case builds Z, Lambda and Cov(y) = sigma^2 I + Z Lambda Lambda^T Z^T densely
(N <= 80) and compares: the log-density (SciPy), its gradient (JAX through a
dense Cholesky), the conditional mean of the effects (Gaussian conditioning)
and the moments of recovered draws. The helpers here are shared with
test_op.py.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from scipy.linalg import block_diag

from bayeslmm.model.design import ReBlock
from bayeslmm.ops import (
    MarginalData,
    conditional_mean,
    marginal_logp,
    recover,
    recover_batch,
)


@dataclass
class Case:
    name: str
    y: np.ndarray
    X: np.ndarray
    factors: list
    Ls: list
    beta: np.ndarray
    sigma: float
    offset: np.ndarray | None = None

    def md(self, sufficient=None):
        if sufficient is None:
            sufficient = self.offset is None
        return MarginalData.build(self.y, self.X, self.factors, sufficient)

    @property
    def modes(self):
        return ["rows"] if self.offset is not None else ["rows", "sufficient"]

    def Z(self):
        """Dense Z, factors in caller order, column j * d + a within a factor."""
        n = self.y.size
        blocks = []
        for f in self.factors:
            Zk = np.zeros((n, f.n_levels * f.dim))
            for a in range(f.dim):
                Zk[np.arange(n), f.group_index * f.dim + a] = f.values[:, a]
            blocks.append(Zk)
        return np.hstack(blocks)

    def Lam(self, Ls=None):
        Ls = self.Ls if Ls is None else Ls
        return block_diag(*[np.kron(np.eye(f.n_levels), L) for f, L in zip(self.factors, Ls)])

    def mean(self, beta=None):
        mu = self.X @ (self.beta if beta is None else beta)
        return mu if self.offset is None else mu + self.offset

    def dense_logpdf(self, beta=None):
        ZL = self.Z() @ self.Lam()
        cov = self.sigma**2 * np.eye(self.y.size) + ZL @ ZL.T
        return st.multivariate_normal.logpdf(self.y, self.mean(beta), cov)

    def dense_posterior(self):
        """Mean and covariance of u | y (flattened, caller order) by Gaussian conditioning."""
        Z, Lam = self.Z(), self.Lam()
        Su = Lam @ Lam.T
        V = Z @ Su @ Z.T + self.sigma**2 * np.eye(self.y.size)
        K = Su @ Z.T @ np.linalg.inv(V)
        return K @ (self.y - self.mean()), Su - K @ Z @ Su

    def args(self):
        return self.beta, self.sigma, self.Ls, self.offset


def dense_logp_jax(case, beta, sigma, Ls, offset):
    """The same density written densely in JAX, for reference gradients."""
    Z = jnp.asarray(case.Z())
    Lam = jax.scipy.linalg.block_diag(
        *[jnp.kron(jnp.eye(f.n_levels), L) for f, L in zip(case.factors, Ls)])
    ZL = Z @ Lam
    cov = sigma**2 * jnp.eye(case.y.size) + ZL @ ZL.T
    r = case.y - case.X @ beta - (0.0 if offset is None else offset)
    C = jnp.linalg.cholesky(cov)
    w = jax.scipy.linalg.solve_triangular(C, r, lower=True)
    return -0.5 * (r.size * np.log(2 * np.pi) + 2 * jnp.sum(jnp.log(jnp.diag(C))) + w @ w)


def _corr_chol(rng, d, tau):
    """diag(tau) R with R the Cholesky factor of a random correlation matrix."""
    A = rng.normal(size=(d, 2 * d))
    S = A @ A.T
    s = np.sqrt(np.diag(S))
    return np.diag(tau) @ np.linalg.cholesky(S / np.outer(s, s))


def _factor(rng, name, g, d, m=None):
    n = g.size
    values = np.c_[np.ones(n), rng.normal(size=(n, d - 1))] if d > 1 else np.ones((n, 1))
    return ReBlock.of(g.astype(np.int64), values, int(g.max() + 1 if m is None else m), name=name)


def _case(name, seed, n, specs, mean=0.0, scale=1.0, offset=False, zero_tau=False, p=2):
    """specs: list of (factor name, group index or number of levels, d, tau)."""
    rng = np.random.default_rng(seed)
    X = np.c_[np.ones(n), rng.normal(size=(n, p - 1))]
    factors, Ls = [], []
    for fname, g, d, tau in specs:
        g = rng.integers(0, g, n) if np.isscalar(g) else g
        factors.append(_factor(rng, fname, g, d))
        Ls.append(_corr_chol(rng, d, np.asarray(tau, dtype=float) * scale))
    beta = np.r_[mean, rng.normal(size=p - 1) * scale]
    case = Case(name, np.zeros(n), X, factors, Ls, beta, 0.7 * scale)
    u = [rng.normal(size=(f.n_levels, f.dim)) @ L.T for f, L in zip(factors, Ls)]
    eta = X @ beta + sum(np.sum(f.values * uk[f.group_index], 1) for f, uk in zip(factors, u))
    if offset:
        case.offset = rng.normal(size=n) * scale
        eta = eta + case.offset
    case.y = eta + case.sigma * rng.normal(size=n)
    # Evaluate away from the truth so that every term matters.
    case.beta = beta + 0.3 * scale
    case.sigma = 0.9 * scale
    return case


def _nested(seed):
    rng = np.random.default_rng(seed)
    n = 48
    ab = rng.integers(0, 9, n)                 # 9 levels of a:b, three per level of a
    return _case("nested", seed, n, [("a", ab // 3, 1, [0.8]), ("a:b", ab, 2, [0.5, 0.3])])


def _singletons(seed):
    n = 30
    return _case("singletons", seed, n, [("obs", np.arange(n), 1, [0.6]), ("g", 5, 1, [1.0])])


def _zero_sd(seed):
    case = _case("zero_sd", seed, 50, [("g", 6, 2, [1.0, 0.5]), ("h", 4, 1, [0.7])])
    case.Ls[0][1, :] = 0.0                     # slope SD exactly 0
    case.Ls[1][:] = 0.0                        # a whole factor with SD 0
    return case


CASES = {
    "one_d1": lambda: _case("one_d1", 1, 40, [("g", 8, 1, [0.9])]),
    "one_d3_corr": lambda: _case("one_d3_corr", 2, 60, [("g", 7, 3, [1.0, 0.6, 0.4])], p=3),
    "crossed_d2_d1": lambda: _case("crossed_d2_d1", 3, 60,
                                   [("subj", 6, 2, [0.8, 0.4]), ("item", 9, 1, [0.6])]),
    "nested": lambda: _nested(4),
    "three_factors": lambda: _case("three_factors", 5, 70, [
        ("a", 5, 1, [0.5]), ("b", 8, 2, [0.9, 0.3]), ("c", 4, 1, [0.4])]),
    "offset_rows": lambda: _case("offset_rows", 6, 50, [
        ("g", 7, 2, [0.8, 0.5]), ("h", 5, 1, [0.6])], offset=True),
    "large_mean": lambda: _case("large_mean", 7, 60, [
        ("subj", 8, 2, [1.0, 0.3]), ("item", 6, 1, [0.5])], mean=5000.0, scale=500.0),
    "zero_sd": lambda: _zero_sd(8),
    "singletons": lambda: _singletons(9),
    "big_d_lapack": lambda: _case("big_d_lapack", 10, 80, [("g", 6, 5, [1, .5, .5, .3, .3]),
                                                           ("h", 3, 5, [1, .4, .4, .2, .2])], p=5),
}
CASE_MODES = [(c, m) for c, make in CASES.items() for m in make().modes]
# Each case in the mode it would be fitted in, plus rows mode for two no-offset cases:
# the modes differ only in how r^T r and Z^T r are formed.
NATURAL_MODES = [(c, make().modes[-1]) for c, make in CASES.items()] + [
    ("crossed_d2_d1", "rows"), ("three_factors", "rows")]
# Eager (unjitted) evaluation compiles every small op separately: two cases suffice.
EAGER = [("crossed_d2_d1", "rows", False), ("big_d_lapack", "sufficient", False)]


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return CASES[request.param]()


def _rel(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


@pytest.mark.parametrize("name, mode, jit", [(*cm, True) for cm in CASE_MODES] + EAGER)
def test_logp_matches_scipy(name, mode, jit):
    case = CASES[name]()
    md = case.md(mode == "sufficient")
    f = lambda *a: marginal_logp(md, *a)  # noqa: E731
    value = (jax.jit(f) if jit else f)(*case.args())
    assert _rel(value, case.dense_logpdf()) < 1e-10


def test_sufficient_equals_rows_with_large_mean():
    case = CASES["large_mean"]()
    rows, suff = (jax.jit(lambda *a, md=case.md(s): marginal_logp(md, *a)) for s in (False, True))
    assert abs(case.y.mean()) > 4000
    for shift in [0.0, 3.0, -250.0]:
        beta = case.beta + shift
        a = rows(beta, case.sigma, case.Ls)
        b = suff(beta, case.sigma, case.Ls)
        ref = case.dense_logpdf(beta)
        assert _rel(a, b) < 1e-10 and _rel(a, ref) < 1e-10 and _rel(b, ref) < 1e-10


@pytest.mark.parametrize("name, mode", NATURAL_MODES)
def test_grad_matches_dense_autodiff(name, mode):
    case = CASES[name]()
    md = case.md(mode == "sufficient")
    argnums = (0, 1, 2) if case.offset is None else (0, 1, 2, 3)
    got = jax.jit(jax.grad(lambda *a: marginal_logp(md, *a), argnums=argnums))(*case.args())
    ref = jax.jit(jax.grad(lambda *a: dense_logp_jax(case, *a), argnums=argnums))(*case.args())
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(g, r, rtol=1e-7, atol=1e-9 * (1 + np.max(np.abs(r))))


def test_conditional_mean_matches_dense(case):
    mean, _ = case.dense_posterior()
    md = case.md()
    got = jax.jit(lambda *a: conditional_mean(md, *a))(*case.args())
    np.testing.assert_allclose(np.concatenate([u.ravel() for u in got]), mean,
                               rtol=1e-8, atol=1e-8 * np.max(np.abs(mean)))


@pytest.mark.parametrize("name", ["one_d3_corr", "three_factors", "offset_rows", "zero_sd"])
def test_recovered_draws_match_dense_posterior(name):
    case = CASES[name]()
    S = 4000
    md = case.md()
    rep = lambda x: None if x is None else np.broadcast_to(x, (S,) + np.shape(x))  # noqa: E731
    draws = recover_batch(md, jax.random.PRNGKey(0), rep(case.beta), rep(case.sigma),
                          [rep(L) for L in case.Ls], rep(case.offset))
    assert [u.shape for u in draws] == [(S, f.n_levels, f.dim) for f in case.factors]
    u = np.concatenate([np.asarray(d).reshape(S, -1) for d in draws], axis=1)
    mean, cov = case.dense_posterior()
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    assert np.all(np.abs(u.mean(0) - mean) <= 5 * sd / np.sqrt(S) + 1e-12)
    # Monte Carlo sd of a sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / S).
    cov_se = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / S)
    assert np.all(np.abs(np.cov(u.T) - cov) <= 5 * cov_se + 1e-12)


def test_recover_single_draw_in_caller_order():
    case = CASES["three_factors"]()
    md = case.md()
    assert md.order != tuple(range(3))         # internal order differs from caller order
    draw = jax.jit(lambda *a: recover(md, *a))
    draws = draw(jax.random.PRNGKey(1), *case.args())
    assert [u.shape for u in draws] == [(f.n_levels, f.dim) for f in case.factors]
    again = draw(jax.random.PRNGKey(1), *case.args())
    for a, b in zip(draws, again):
        np.testing.assert_array_equal(a, b)


def test_zero_sd_gives_finite_value_and_gradient():
    case = CASES["zero_sd"]()
    R = [np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 1.0]])), np.eye(1)]
    taus = [np.array([1.0, 0.0]), np.array([0.0])]
    for md in (case.md(False), case.md(True)):
        def f(beta, sigma, taus):
            return marginal_logp(md, beta, sigma, [t[:, None] * r for t, r in zip(taus, R)])
        vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
        value, grads = vg(case.beta, case.sigma, taus)
        assert np.isfinite(value)
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_empty_levels():
    rng = np.random.default_rng(0)
    n = 20
    f = ReBlock.of(np.arange(n) % 7, np.ones((n, 1)), 9)   # levels 7 and 8 have no rows
    case = Case("empty", rng.normal(size=n), np.ones((n, 1)), [f], [np.array([[0.8]])],
                np.array([0.1]), 0.6)
    assert _rel(marginal_logp(case.md(), *case.args()), case.dense_logpdf()) < 1e-10
    # Posterior of an empty level is its prior: mean 0.
    np.testing.assert_allclose(conditional_mean(case.md(), *case.args())[0][7:], 0.0, atol=1e-14)


def test_no_fixed_effects():
    case = CASES["crossed_d2_d1"]()
    case.X, case.beta = case.X[:, :0], np.zeros(0)
    for sufficient in (False, True):
        assert _rel(marginal_logp(case.md(sufficient), *case.args()), case.dense_logpdf()) < 1e-10


def test_invalid_inputs_raise():
    n = 10
    with pytest.raises(ValueError, match="group_index"):
        ReBlock.of(np.array([0, 1, 5]), np.ones((3, 1)), 3)
    with pytest.raises(ValueError, match="values"):
        ReBlock.of(np.zeros(n, int), np.ones((n - 1, 1)), 1)
    case = CASES["crossed_d2_d1"]()
    md = case.md(True)
    with pytest.raises(ValueError, match="offset"):
        marginal_logp(md, case.beta, case.sigma, case.Ls, np.zeros(case.y.size))
    with pytest.raises(ValueError, match="scale factors"):
        marginal_logp(md, case.beta, case.sigma, case.Ls[:1])
    with pytest.raises(ValueError, match="at least one"):
        MarginalData.build(case.y, case.X, [], True)


def test_recovery_forms_sampled_row_means_itself():
    """``sampled=(terms, rs)``: the row means of sampled effects, formed draw by draw inside the
    loop, give the draws that the same means passed as an offset give (same keys)."""
    case = CASES["offset_rows"]()
    md = case.md()
    rng = np.random.default_rng(5)
    n, S = md.n_obs, 7
    terms = [(rng.integers(0, 9, n), rng.normal(size=(n, 2))), (rng.integers(0, 4, n), np.ones((n, 1)))]
    rs = [rng.normal(size=(S, 9, 2)), rng.normal(size=(S, 4, 1))]
    offset = np.stack([sum((v * r[s][g]).sum(axis=1) for (g, v), r in zip(terms, rs)) for s in range(S)])
    rep = lambda x: np.broadcast_to(x, (S,) + np.shape(x))  # noqa: E731
    args = (md, jax.random.PRNGKey(3), rep(case.beta), rep(case.sigma), [rep(L) for L in case.Ls])
    want = recover_batch(*args, offset)
    got = recover_batch(*args, None, (terms, rs))
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    # Both at once: the row means are added to the offset.
    both = recover_batch(*args, 0.5 * offset, (terms, [0.5 * r for r in rs]))
    for a, b in zip(both, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
