"""The Laplace-marginal kernels against dense references, finite differences and quadrature.

References: the exact Gaussian marginal (ops/marginal.py) for the gaussian
family; a dense Newton + slogdet Laplace computation over the N x D matrix
Z Lambda (N <= 80) for the other families; central finite differences for
the implicit-function gradients; adaptive Gauss-Hermite quadrature
(reference/laplace_quadrature.py), whose one-node rule is the Laplace
approximation itself, for one-factor models.
"""

import importlib.util
from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from bayeslmm.model.design import ReBlock
from bayeslmm.ops import MarginalData, marginal_logp
from bayeslmm.ops.laplace import (
    Family,
    laplace_logp,
    laplace_mode,
    laplace_newton_info,
    laplace_recover,
    laplace_recover_batch,
    pointwise_loglik,
)

from test_marginal import CASES

_spec = importlib.util.spec_from_file_location(
    "laplace_quadrature", Path(__file__).parents[2] / "reference" / "laplace_quadrature.py")
quad = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quad)

GLMM_CASES = ["one_d1", "crossed_d2_d1", "nested", "three_factors", "offset_rows"]
FAMS = [("poisson", "log", None), ("binomial", "logit", 5), ("binomial", "probit", 3),
        ("bernoulli", "logit", None), ("negbinomial", "log", None)]


def _glmm(name, family, trials, seed=0, scale=1.0):
    """A case's design with a response drawn from the family; returns case, md, trials, phi."""
    case = CASES[name]()
    rng = np.random.default_rng(seed)
    eta = 0.4 * (case.y - case.y.mean()) / case.y.std()
    case.Ls = [scale * L for L in case.Ls]
    n = None
    if family == "poisson":
        y = rng.poisson(np.exp(eta + 0.5))
    elif family == "negbinomial":
        mu = np.exp(eta + 0.5)
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    else:
        n = np.full(eta.size, float(trials or 1))
        y = rng.binomial(n.astype(int), 1 / (1 + np.exp(-eta)))
    case.y = y.astype(float)
    case.beta = np.r_[0.2, -0.1 * np.ones(case.X.shape[1] - 1)]
    return case, case.md(False), n, (1.7 if family == "negbinomial" else None)


def dense_laplace(case, family, beta, Ls, offset, trials, phi):
    """Laplace value, mode (caller layout, level-major) and H, by dense Newton on Z Lambda."""
    ZL = jnp.asarray(case.Z()) @ jnp.asarray(case.Lam(Ls))
    fam = Family(*family).checked()
    base = case.X @ beta + (0.0 if offset is None else offset)

    def f(v):
        return jnp.sum(pointwise_loglik(fam, case.y, base + ZL @ v, trials, phi)) - 0.5 * v @ v

    f = jax.jit(f)
    hess, grad = jax.jit(jax.hessian(f)), jax.jit(jax.grad(f))
    v = jnp.zeros(ZL.shape[1])
    for _ in range(40):
        step = jnp.linalg.solve(-hess(v), grad(v))
        t = 1.0
        while f(v + t * step) < f(v) - 1e-12:
            t /= 2
        v = v + t * step
        if float(jnp.max(jnp.abs(t * step))) < 1e-13:
            break
    H = -hess(v)
    return f(v) - 0.5 * jnp.linalg.slogdet(H)[1], v, H


@pytest.mark.parametrize("name", ["one_d3_corr", "three_factors", "zero_sd"])
def test_gaussian_equals_exact_marginal(name):
    """(a) Identity link, gaussian: f is quadratic, one Newton step is exact: value and gradients."""
    case = CASES[name]()
    md = case.md(False)
    Ls = [jnp.asarray(L) for L in case.Ls]
    args = (jnp.asarray(case.beta), jnp.asarray(case.sigma), Ls)

    def exact(b, s, L):
        return marginal_logp(md, b, s, L, case.offset)

    def lap(b, s, L):
        return laplace_logp(md, "gaussian", b, L, case.offset, phi=s)

    a, b = jax.jit(exact)(*args), jax.jit(lap)(*args)
    assert abs(float(a - b)) < 1e-10 * abs(float(a))
    ga, gb = jax.grad(exact, (0, 1, 2))(*args), jax.grad(lap, (0, 1, 2))(*args)
    for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
        np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, family, link, trials",
                         [(c, *f) for c, f in zip(GLMM_CASES, FAMS)])
def test_matches_dense_laplace(name, family, link, trials):
    case, md, n, phi = _glmm(name, family, trials)
    fam = (family, link)
    value = jax.jit(lambda b, L: laplace_logp(md, fam, b, L, case.offset, n, phi))(case.beta, case.Ls)
    ref, _, _ = dense_laplace(case, fam, case.beta, case.Ls, case.offset, n, phi)
    assert abs(float(value - ref)) < 1e-9 * abs(float(ref))
    _, steps, change = laplace_mode(md, fam, case.beta, case.Ls, case.offset, n, phi)
    assert float(change) < 1e-10 and int(steps) < 20


def test_damped_newton_converges_far_from_zero():
    """Large counts and large SDs: a full Newton step from v = 0 overshoots; halving must rescue it."""
    case, md, n, phi = _glmm("crossed_d2_d1", "poisson", None, scale=4.0)
    case.y = np.round(case.y * 20.0)
    md = case.md(False)
    _, steps, change = laplace_mode(md, "poisson", case.beta, case.Ls, None)
    assert float(change) < 1e-10 and int(steps) < 50
    value = laplace_logp(md, "poisson", case.beta, case.Ls)
    ref, _, _ = dense_laplace(case, ("poisson", "log"), case.beta, case.Ls, None, None, None)
    assert abs(float(value - ref)) < 1e-9 * abs(float(ref))


@pytest.mark.parametrize("name, family, link, trials",
                         [("crossed_d2_d1", *FAMS[2]), ("three_factors", *FAMS[4]), ("crossed_d2_d1", *FAMS[0])])
def test_gradient_matches_finite_differences(name, family, link, trials):
    """Implicit-function-theorem gradient vs central differences in beta, L, offset and phi."""
    case, md, n, phi = _glmm(name, family, trials)
    fam = (family, link)
    off = np.linspace(-0.3, 0.3, case.y.size)

    def lp(b, L, o, p):
        return laplace_logp(md, fam, b, L, o, n, p, tol=1e-13)

    p0 = 1.7 if phi is not None else None
    theta = (jnp.asarray(case.beta), [jnp.asarray(L) for L in case.Ls], jnp.asarray(off), p0)
    grads = jax.grad(lp, argnums=(0, 1, 2, 3) if phi else (0, 1, 2))(*theta)
    f = jax.jit(lp)
    flat, unravel = jax.flatten_util.ravel_pytree(theta[:3] + ((p0,) if phi else ()))
    gflat = jax.flatten_util.ravel_pytree(grads)[0]
    rng = np.random.default_rng(1)
    # beta, L (lower triangle only matters but all entries are inputs), a few offset rows, phi
    idx = rng.choice(flat.size, size=min(8, flat.size), replace=False)
    h = 1e-5
    for i in idx:
        e = jnp.zeros(flat.size).at[i].set(h)
        up, dn = unravel(flat + e), unravel(flat - e)
        if not phi:
            up, dn = tuple(up) + (None,), tuple(dn) + (None,)
        fd = (f(*up) - f(*dn)) / (2 * h)
        assert abs(float(fd - gflat[i])) < 1e-6 * (1 + abs(float(fd))), (i, fd, gflat[i])


@pytest.mark.parametrize("family, trials", [("poisson", None), ("binomial", 1), ("binomial", 10)])
def test_one_node_quadrature_is_laplace_and_error_shrinks(family, trials):
    """(b) AGQ with one node is the Laplace approximation; vs 100 nodes the error falls with n per level."""
    errs = []
    for n_per in (5, 60):
        y, X, beta, g, n = quad.simulate(family, n_per, 12, 1.0, seed=3, trials=trials or 1)
        f = ReBlock.of(g.astype(np.int64), np.ones((g.size, 1)), 12, name="g")
        md = MarginalData.build(y, X, [f], sufficient=False)
        lap = float(laplace_logp(md, family, beta, [np.array([[1.0]])], trials=n))
        one = quad.agq_loglik(family, y, X @ beta, g, 12, 1.0, n, n_nodes=1).sum()
        assert abs(lap - one) < 1e-10 * abs(one)
        errs.append(abs(lap - quad.agq_loglik(family, y, X @ beta, g, 12, 1.0, n, n_nodes=100).sum()))
    assert errs[1] < errs[0] / 2


def _perm(md, case):
    """Index map: internal flat position -> caller dense (level-major) position."""
    offs = np.cumsum([0] + [f.n_levels * f.dim for f in case.factors])
    out = []
    for i, k in enumerate(md.order):
        m, d = md.levels[i], md.dims[i]
        a, j = np.divmod(np.arange(m * d), m)
        out.append(offs[k] + j * d + a)
    return np.concatenate(out)


@pytest.mark.parametrize("name", ["crossed_d2_d1", "three_factors"])
def test_recover_matches_dense_draw(name):
    """(c) u = Lambda (v_hat + C^{-T} xi), C the Cholesky of H in the internal order, vs dense algebra."""
    case, md, n, phi = _glmm(name, "binomial", 4)
    key = jax.random.PRNGKey(5)
    us = laplace_recover(md, "binomial", key, case.beta, case.Ls, case.offset, n)
    _, v, H = dense_laplace(case, ("binomial", "logit"), case.beta, case.Ls, case.offset, n, None)
    P = _perm(md, case)
    C = np.linalg.cholesky(np.asarray(H)[np.ix_(P, P)])
    xi = np.asarray(jax.random.normal(key, (P.size,), dtype=jnp.float64))
    v_draw = np.asarray(v).copy()
    v_draw[P] += np.linalg.solve(C.T, xi)
    u_ref = case.Lam() @ v_draw
    got = np.concatenate([np.asarray(u).reshape(-1) for u in us])
    np.testing.assert_allclose(got, u_ref, rtol=1e-9, atol=1e-10)


def test_recover_batch_equals_single_draws():
    case, md, n, phi = _glmm("nested", "negbinomial", None)
    S = 3
    rng = np.random.default_rng(2)
    beta = case.beta + 0.1 * rng.normal(size=(S, case.beta.size))
    Ls = [np.stack([L * (1 + 0.1 * s) for s in range(S)]) for L in case.Ls]
    phis = np.array([1.0, 2.0, 3.0])
    key = jax.random.PRNGKey(0)
    batch = laplace_recover_batch(md, "negbinomial", key, beta, Ls, phi=phis)
    keys = jax.random.split(key, S)
    for s in range(S):
        one = laplace_recover(md, "negbinomial", keys[s], beta[s], [L[s] for L in Ls], phi=phis[s])
        for b, o in zip(batch, one):
            np.testing.assert_allclose(b[s], o, rtol=1e-10, atol=1e-12)


def test_recover_batch_from_the_modes_draws_what_it_draws_from_zero():
    """Started at each draw's mode (what the sampler hands on), the recovery's solve confirms it in one step:
    the same draws as from v = 0, to the solve's tolerance; a start that is not finite falls back to 0."""
    case, md, n, phi = _glmm("crossed_d2_d1", "poisson", None)
    S = 4
    rng = np.random.default_rng(3)
    beta = case.beta + 0.1 * rng.normal(size=(S, case.beta.size))
    Ls = [np.stack([L * (1 + 0.1 * s) for s in range(S)]) for L in case.Ls]
    key = jax.random.PRNGKey(1)
    with jax.enable_x64(True):
        modes = np.stack([np.asarray(laplace_mode(md, "poisson", beta[s], [L[s] for L in Ls], None)[0])
                          for s in range(S)])
        modes[2] = np.nan
        cold = laplace_recover_batch(md, "poisson", key, beta, Ls, tol=1e-8)
        warm = laplace_recover_batch(md, "poisson", key, beta, Ls, tol=1e-8, starts=modes)
    for a, b in zip(cold, warm):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-7, atol=1e-8)


def test_the_sampler_hands_on_the_mode_at_each_draw():
    """sample_nuts on a potential with a Laplace solve returns, per draw, that solve's mode at the draw."""
    from bayeslmm.sampling.nuts import sample_nuts

    case, md, n, phi = _glmm("crossed_d2_d1", "poisson", None)
    Ls = [jnp.asarray(L) for L in case.Ls]

    def logp(z):
        return laplace_logp(md, "poisson", z[0], Ls, None) - 0.5 * jnp.sum(z[0] ** 2)

    samples, stats = sample_nuts(logp, [np.tile(case.beta, (2, 1))], draws=6, tune=30, chains=2, random_seed=1)
    (modes,) = stats["inner_modes"]
    assert modes.shape == (2, 6, sum(md.sizes))
    with jax.enable_x64(True):
        for c in range(2):
            for d in range(6):
                ref = laplace_mode(md, "poisson", jnp.asarray(samples[0][c, d]), Ls, None)[0]
                np.testing.assert_allclose(modes[c, d], np.asarray(ref), atol=1e-6)


def test_unconverged_newton_is_minus_inf():
    """max_steps = 1 from v = 0 far from the mode: the last iterate is not the mode, so the log-density is -inf
    (NUTS: a divergence) and its gradient NaN, not the Laplace formula at the iterate; with the default budget
    the same point converges and matches the dense computation."""
    case, md, n, phi = _glmm("crossed_d2_d1", "poisson", None, scale=4.0)
    case.y = np.round(case.y * 20.0)
    md = case.md(False)
    info = laplace_newton_info(md, "poisson", case.beta, case.Ls, max_steps=1)
    assert not info["converged"] and info["steps"] == 1 and info["error"] > 1e-3
    value, grads = jax.value_and_grad(lambda b: laplace_logp(md, "poisson", b, case.Ls, max_steps=1))(
        jnp.asarray(case.beta))
    assert float(value) == -np.inf and np.all(np.isnan(grads))
    assert laplace_newton_info(md, "poisson", case.beta, case.Ls)["converged"]
    ref, _, _ = dense_laplace(case, ("poisson", "log"), case.beta, case.Ls, None, None, None)
    value = float(laplace_logp(md, "poisson", case.beta, case.Ls))
    assert abs(value - float(ref)) < 1e-9 * abs(float(ref))


def test_bad_input():
    case, md, n, phi = _glmm("one_d1", "poisson", None)
    with pytest.raises(ValueError, match="'weibull'"):
        laplace_logp(md, "weibull", case.beta, case.Ls)
    with pytest.raises(ValueError, match="'identity'.*poisson"):
        laplace_logp(md, ("poisson", "identity"), case.beta, case.Ls)
    with pytest.raises(ValueError, match="phi"):
        laplace_logp(md, "negbinomial", case.beta, case.Ls)
    with pytest.raises(ValueError, match="sufficient=False"):
        laplace_logp(case.md(True), "poisson", case.beta, case.Ls)
    with pytest.raises(ValueError, match="trials must have shape"):
        laplace_logp(md, "binomial", case.beta, case.Ls, trials=np.ones(3))


def _far_design(seed=0):
    """Locations with a location-level covariate of range ~130 (grouseticks' cHEIGHT) and broods nested in
    them; y from a moderate poisson model, so that a large slope puts eta ~ 60 at v = 0."""
    rng = np.random.default_rng(seed)
    n_loc, per_loc, per_brood = 8, 12, 3
    loc = np.repeat(np.arange(n_loc), per_loc)
    brood = np.arange(loc.size) // per_brood
    height = np.linspace(-60.0, 70.0, n_loc)[loc]
    y = rng.poisson(np.exp(1.0 + 0.3 * rng.normal(size=n_loc)[loc] + 0.3 * rng.normal(size=brood.max() + 1)[brood]))
    X = np.column_stack([np.ones(loc.size), height])
    return y.astype(float), X, brood, loc


def _damped_dense_mode(f, v):
    """Levenberg-Marquardt on the dense Hessian: robust from far away, independent of the engine's Newton."""
    grad, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))
    lam = 1.0
    for _ in range(2000):
        g, H = np.asarray(grad(v)), -np.asarray(hess(v))
        try:
            # Marquardt's scaling: the damping follows the curvature, which spans 1e-23 to 1e27 here.
            step = np.linalg.solve(H + lam * np.diag(1.0 + np.diag(H)), g)
        except np.linalg.LinAlgError:
            lam *= 10.0
            continue
        if float(f(v + step)) >= float(f(v)):
            v, lam = v + step, max(lam / 10.0, 1e-12)
            if np.max(np.abs(step)) < 1e-13:
                break
        else:
            lam *= 10.0
    return v


def test_far_start_one_factor_matches_quadrature():
    """eta = 60 at v = 0 (exact Newton would crawl ~1 per step in eta): the value is the one-node AGQ rule
    (the Laplace approximation by independent code) and close to the 100-node one."""
    y, X, _, loc = _far_design()
    beta = np.array([-0.5, 0.9])
    tau = 0.8
    md = MarginalData.build(y, X, [ReBlock.of(loc, np.ones((loc.size, 1)), 8, name="loc")], sufficient=False)
    assert (X @ beta).max() > 60
    value = float(laplace_logp(md, "poisson", beta, [np.array([[tau]])]))
    _, steps, change = laplace_mode(md, "poisson", beta, [np.array([[tau]])])
    assert np.isfinite(value) and float(change) < 1e-10 and int(steps) < 100
    one = quad.agq_loglik("poisson", y, X @ beta, loc, 8, tau, n_nodes=1).sum()
    many = quad.agq_loglik("poisson", y, X @ beta, loc, 8, tau, n_nodes=100).sum()
    assert abs(value - one) < 1e-9 * abs(one)
    assert abs(value - many) < 0.05 * 8


def test_far_start_nested_factors_is_finite_and_matches_dense():
    """The grouseticks failure: two nested factors and eta ~ 64 at v = 0, where W = mu ~ 1e27 made the
    Schur complement of H lose positive definiteness (NaN). Value vs a dense Laplace computation."""
    y, X, brood, loc = _far_design()
    beta = np.array([0.3, 0.9])
    Ls = [np.array([[0.78]]), np.array([[0.59]])]
    nb = brood.max() + 1
    fs = [ReBlock.of(brood, np.ones((y.size, 1)), nb, name="brood"), ReBlock.of(loc, np.ones((y.size, 1)), 8,
                                                                                  name="loc")]
    md = MarginalData.build(y, X, fs, sufficient=False)
    assert (X @ beta).max() > 60
    value = float(laplace_logp(md, "poisson", beta, Ls))
    _, steps, change = laplace_mode(md, "poisson", beta, Ls)
    assert np.isfinite(value) and float(change) < 1e-10 and int(steps) < 100
    ZL = np.column_stack([Ls[0][0, 0] * np.eye(nb)[brood], Ls[1][0, 0] * np.eye(8)[loc]])
    fam = Family("poisson", "log")

    def f(v):
        return jnp.sum(pointwise_loglik(fam, y, X @ beta + ZL @ v)) - 0.5 * v @ v

    v = _damped_dense_mode(jax.jit(f), np.zeros(ZL.shape[1]))
    H = -np.asarray(jax.hessian(f)(v))
    ref = float(f(v)) - 0.5 * np.linalg.slogdet(H)[1]
    assert abs(value - ref) < 1e-9 * abs(ref)
    grads = jax.grad(lambda b, L: laplace_logp(md, "poisson", b, L), (0, 1))(jnp.asarray(beta), Ls)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(grads))


def test_elementwise_forms_match_jax_values_and_two_derivatives():
    """The engine's softplus, logaddexp and sigmoid pair against jax.nn's, at 0 and far out too.

    The gradient of the Laplace density differentiates g and w (first and second derivatives of the
    log-likelihood) by JAX, so both derivatives must be right, including at eta = 0.
    """
    from bayeslmm.ops import laplace as lp

    x = jnp.array([-800.0, -40.0, -3.0, -1e-9, 0.0, 1e-9, 2.5, 40.0, 800.0])
    cases = [(lp._softplus, jax.nn.softplus),
             (lambda t: lp._logaddexp(t, 0.7), lambda t: jnp.logaddexp(t, 0.7)),
             (lambda t: lp._sigmoid_pair(t)[0], jax.nn.sigmoid),
             (lambda t: lp._sigmoid_pair(t)[1], lambda t: jax.nn.sigmoid(t) * jax.nn.sigmoid(-t))]
    with jax.enable_x64(True):
        for f, ref in cases:
            for k in range(3):
                got, want = jax.vmap(f)(x), jax.vmap(ref)(x)
                assert np.all(np.isfinite(got))
                np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-15)
                f, ref = jax.grad(f), jax.grad(ref)


@pytest.mark.parametrize("name, family, link, trials", [("crossed_d2_d1", *FAMS[0]), ("three_factors", *FAMS[3])])
def test_warm_started_solve_gives_the_cold_value_and_gradient_in_fewer_steps(name, family, link, trials):
    """Inside bayeslmm.ops.warm.warm_started the Newton solve starts from the given vector and records its mode."""
    from bayeslmm.ops import laplace as lap
    from bayeslmm.ops.warm import warm_started

    case, md, n, phi = _glmm(name, family, trials)
    fam = Family(family, link)

    def lp(b, L):
        return laplace_logp(md, fam, b, L, case.offset, n, phi)

    def warm_lp(b, L, start):
        with warm_started([start]) as modes:
            out = lp(b, L)
        return out, modes[0]

    beta, Ls = jnp.asarray(case.beta), [jnp.asarray(L) for L in case.Ls]
    near = (beta + 0.05, [1.1 * L for L in Ls])  # another point, one small move away
    start = laplace_mode(md, fam, *near, case.offset, n, phi)[0]
    cold, cold_grad = jax.value_and_grad(lp, argnums=(0, 1))(beta, Ls)
    (warm, mode), warm_grad = jax.value_and_grad(warm_lp, argnums=(0, 1), has_aux=True)(beta, Ls, start)
    assert abs(float(warm - cold)) < 1e-9 * abs(float(cold))
    g_cold, g_warm = (jax.flatten_util.ravel_pytree(g)[0] for g in (cold_grad, warm_grad))
    np.testing.assert_allclose(g_warm, g_cold, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(mode, laplace_mode(md, fam, beta, Ls, case.offset, n, phi)[0], atol=1e-7)
    ctx, Lo = lap._setup(md, fam, Ls, case.offset, n, phi, 100, 1e-10)
    steps_cold = int(lap._newton(ctx, beta, Lo, case.offset, phi)[1])
    steps_warm = int(lap._newton(ctx, beta, Lo, case.offset, phi, start)[1])
    assert steps_warm < steps_cold
    # A failed earlier solve (NaN) is not used as a start.
    nan_value, _ = warm_lp(beta, Ls, jnp.full_like(start, jnp.nan))
    assert abs(float(nan_value - cold)) < 1e-9 * abs(float(cold))
    # Outside the context nothing is recorded and the solve starts from 0.
    with warm_started() as modes:
        pass
    assert modes == [] and float(lp(beta, Ls)) == float(cold)


def test_the_sampler_finds_the_laplace_solves_of_a_potential():
    """bayeslmm.sampling.nuts.warm_potential: one mode per Laplace kernel, carried from step to step."""
    from bayeslmm.sampling.nuts import warm_potential

    case, md, n, phi = _glmm("crossed_d2_d1", "poisson", None)
    Ls = [jnp.asarray(L) for L in case.Ls]

    def potential(z):
        return -laplace_logp(md, "poisson", z[0], Ls, case.offset) - laplace_logp(md, "poisson", z[0], Ls, None)

    beta = [jnp.asarray(case.beta)]
    with jax.enable_x64(True):
        fn, cold = warm_potential(potential, beta)
        assert [c.shape for c in cold] == [(sum(md.sizes),)] * 2 and not any(np.asarray(c).any() for c in cold)
        u, modes = fn(beta, cold)
        assert abs(float(u - potential(beta))) < 1e-9 * abs(float(u))
        np.testing.assert_allclose(modes[1], laplace_mode(md, "poisson", beta[0], Ls, None)[0], atol=1e-7)
        u_warm, _ = fn(beta, modes)
        assert abs(float(u_warm - u)) < 1e-9 * abs(float(u))
        # Sizes given by the caller take the place of the shape-only trace.
        fn_known, cold_known = warm_potential(potential, beta, [sum(md.sizes)] * 2)
        assert [c.shape for c in cold_known] == [c.shape for c in cold]
        np.testing.assert_allclose(np.asarray(fn_known(beta, modes)[1][1]), np.asarray(modes[1]), atol=1e-7)
