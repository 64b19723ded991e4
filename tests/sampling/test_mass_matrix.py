"""The starting inverse mass matrix from the curvature at a chain's start (bayeslmm.mass_matrix)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayeslmm.sampling.mass_matrix import COORDINATEWISE, curvature_and_gradient, curvature_inverse_mass


def test_small_arrays_get_the_inverse_hessian_diagonal_large_ones_keep_one():
    rng = np.random.default_rng(0)
    H = np.diag([4.0, 100.0, 0.25, 2.5e4])
    H[0, 1] = H[1, 0] = 3.0          # couplings do not enter the diagonal
    H[2, 3] = H[3, 2] = -1.0
    big = COORDINATEWISE + 1
    c = rng.normal(size=4)

    def potential(p):
        x = jnp.concatenate([jnp.atleast_1d(p[0]), p[1]]) - c
        return 0.5 * x @ jnp.asarray(H) @ x + 0.5 * jnp.sum(9.0 * p[2] ** 2)

    params = [jnp.asarray(0.3), jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=(big, 1)))]
    inv = np.asarray(jax.jit(lambda p: curvature_inverse_mass(potential, p))(params))
    assert inv.shape == (4 + big,)
    # second differences round off by about |U| 2e-16 / eps^2 (here |U| ~ 1e4)
    np.testing.assert_allclose(inv[:4], 1.0 / np.diag(H), rtol=1e-4)
    np.testing.assert_array_equal(inv[4:], 1.0)


def test_log_scale_coordinate_and_fallbacks():
    n, rss = 73_421, 1.4 * 73_421

    def potential(p):
        t, bad, flat = p[0], p[1], p[2]
        # -log p(y | sigma = e^t) up to a constant: curvature 2 rss e^{-2t}
        return n * t + 0.5 * rss * jnp.exp(-2.0 * t) - 0.5 * bad**2 + 0.0 * flat

    t = 0.2
    inv = np.asarray(curvature_inverse_mass(potential, [jnp.asarray(t), jnp.asarray(1.0), jnp.asarray(0.5)]))
    assert inv[0] == pytest.approx(1.0 / (2 * rss * np.exp(-2 * t)), rel=1e-5)
    assert inv[1] == 1.0   # negative curvature: NumPyro's default
    assert inv[2] == 1.0   # no curvature: 1, not 1 / 0


def test_non_finite_potential_and_clipping():
    def potential(p):
        return jnp.where(p[0] > 0.5001, jnp.inf, p[0] ** 2) + 1e14 * p[1] ** 2

    inv = np.asarray(curvature_inverse_mass(potential, [jnp.asarray(0.5), jnp.asarray(0.0)]))
    assert inv[0] == 1.0      # infinite on one side: no curvature read
    assert inv[1] == 1e-10    # 1 / 2e14, clipped


def test_curvature_and_gradient_gives_the_same_matrix_and_the_value_and_gradient_at_the_point():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 3))
    big = COORDINATEWISE + 2

    def potential(p):
        x = jnp.concatenate([jnp.atleast_1d(p[0]), p[1]])
        return jnp.sum(jnp.exp(0.3 * x)) + 0.5 * x @ jnp.asarray(A @ A.T) @ x + jnp.sum(jnp.sin(p[2]) ** 2)

    with jax.enable_x64(True):
        params = [jnp.asarray(0.4), jnp.asarray(rng.normal(size=2)), jnp.asarray(rng.normal(size=(big,)))]
        inv, u, grad = jax.jit(lambda p: curvature_and_gradient(potential, p))(params)
        np.testing.assert_allclose(np.asarray(inv), np.asarray(curvature_inverse_mass(potential, params)),
                                   rtol=1e-10)
        assert float(u) == pytest.approx(float(potential(params)), rel=1e-14)
        want = jax.grad(potential)(params)
        assert [np.shape(g) for g in grad] == [np.shape(g) for g in want]
        for g, w in zip(grad, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-13, atol=1e-14)
        # no small array: the matrix is all ones, the value and gradient still those at the point
        flat = [jnp.concatenate([jnp.atleast_1d(t) for t in params])]
        inv, u, grad = curvature_and_gradient(lambda p: potential([p[0][0], p[0][1:3], p[0][3:]]), flat,
                                              coordinatewise=0)
        np.testing.assert_array_equal(np.asarray(inv), 1.0)
        assert float(u) == pytest.approx(float(potential(params)), rel=1e-14)
