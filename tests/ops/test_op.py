"""The PyTensor Ops: value, gradient, shapes, JAX dispatch, pickling, and sampling.

Cases and dense references come from test_marginal_kernels.py.
"""

import pickle

import jax
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from test_marginal import CASE_MODES, CASES, NATURAL_MODES

from bayeslmm.model.design import ReBlock
from bayeslmm.ops import (
    MarginalData,
    MarginalGaussianLogp,
    MarginalGaussianLogpGrad,
    marginal_loglik,
    marginal_logp,
)


def _graph(case, md):
    """Symbolic inputs, their values, and the Op's output for a case."""
    op = MarginalGaussianLogp(md)
    inputs = [pt.dvector("beta"), pt.dscalar("sigma")]
    inputs += [pt.dmatrix(f"L_{f.name}") for f in case.factors]
    values = [case.beta, case.sigma, *case.Ls]
    if op.with_offset:
        inputs.append(pt.dvector("offset"))
        values.append(case.offset if case.offset is not None else np.zeros(case.y.size))
    return op, inputs, values, op(*inputs)


@pytest.mark.parametrize("name, mode, backend", [(*cm, None) for cm in CASE_MODES]
                         + [(*cm, "JAX") for cm in NATURAL_MODES])
def test_op_logp_matches_scipy(name, mode, backend):
    case = CASES[name]()
    _, inputs, values, out = _graph(case, case.md(mode == "sufficient"))
    value = pytensor.function(inputs, out, mode=backend)(*values)
    assert abs(value - case.dense_logpdf()) / abs(case.dense_logpdf()) < 1e-10


@pytest.mark.parametrize("name", ["one_d3_corr", "offset_rows", "large_mean", "zero_sd"])
def test_verify_grad(name):
    case = CASES[name]()
    op, _, values, _ = _graph(case, case.md())
    pytensor.gradient.verify_grad(lambda *x: op(*x), values, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name, mode", [("three_factors", "sufficient"), ("offset_rows", "rows")])
def test_op_grad_matches_jax_grad(name, mode):
    case = CASES[name]()
    md = case.md(mode == "sufficient")
    op, inputs, values, out = _graph(case, md)
    grads = pytensor.function(inputs, pytensor.grad(out, inputs), mode="FAST_RUN")(*values)
    k = md.n_factors

    def f(beta, sigma, *rest):
        return marginal_logp(md, beta, sigma, list(rest[:k]), rest[k] if op.with_offset else None)

    ref = jax.jit(jax.grad(f, argnums=tuple(range(len(values)))))(*values)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(r))))
    # The JAX backend differentiates the registered JAX function itself.
    grads_jax = pytensor.function(inputs, pytensor.grad(out, inputs), mode="JAX")(*values)
    for g, r in zip(grads_jax, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(r))))


def test_infer_shape_avoids_computation():
    case = CASES["crossed_d2_d1"]()
    _, inputs, values, out = _graph(case, case.md(False))
    grads = pytensor.grad(out, inputs)
    f = pytensor.function(inputs, [out.shape] + [g.shape for g in grads], on_unused_input="ignore")
    assert not any(isinstance(n.op, (MarginalGaussianLogp, MarginalGaussianLogpGrad))
                   for n in f.maker.fgraph.toposort())
    shapes = f(*values)
    assert [tuple(s) for s in shapes] == [()] + [np.shape(v) for v in values]


def test_props_equality_and_pickle():
    case = CASES["crossed_d2_d1"]()
    md = case.md(True)
    op = MarginalGaussianLogp(md)
    assert op == MarginalGaussianLogp(md) and hash(op) == hash(MarginalGaussianLogp(md))
    assert op != MarginalGaussianLogp(case.md(True))
    _, inputs, values, out = _graph(case, md)
    f = pytensor.function(inputs, out)
    expected = f(*values)
    op2 = pickle.loads(pickle.dumps(op))           # after a call: jitted functions are dropped
    f2 = pytensor.function(inputs, op2(*inputs))
    assert f2(*values) == expected
    f3 = pickle.loads(pickle.dumps(f))
    assert f3(*values) == expected


def test_make_node_checks_inputs():
    case = CASES["crossed_d2_d1"]()
    rows, suff = case.md(False), case.md(True)
    b, s, L = pt.dvector(), pt.dscalar(), pt.dmatrix()
    with pytest.raises(TypeError, match="beta must be 1-D"):
        MarginalGaussianLogp(suff)(pt.dmatrix(), s, L, L)
    with pytest.raises(TypeError, match="sigma must be 0-D"):
        MarginalGaussianLogp(suff)(b, pt.dvector(), L, L)
    with pytest.raises(TypeError, match="L\\[item\\] must be 2-D"):
        MarginalGaussianLogp(suff)(b, s, L, pt.dvector())
    with pytest.raises(TypeError, match="expects inputs"):
        MarginalGaussianLogp(rows)(b, s, L, L)             # offset missing
    with pytest.raises(TypeError, match="must have shape"):
        MarginalGaussianLogp(suff)(b, s, pt.matrix(shape=(3, 3), dtype="float64"), L)
    with pytest.raises(ValueError, match="offset"):
        MarginalGaussianLogp(suff, with_offset=True)
    # Rows mode may also be used without an offset.
    L2 = pt.dmatrix()
    out = marginal_loglik(rows, b, s, [L, L2])
    assert out.owner.op.with_offset is False
    value = pytensor.function([b, s, L, L2], out)(case.beta, case.sigma, *case.Ls)
    assert abs(value - case.dense_logpdf()) / abs(case.dense_logpdf()) < 1e-10


def _tiny_model():
    """y = b0 + b1 x + u[g] + eps with 12 groups, N = 200."""
    rng = np.random.default_rng(42)
    n, m = 200, 12
    g = rng.integers(0, m, n)
    x = rng.normal(size=n)
    X = np.c_[np.ones(n), x]
    beta_true = np.array([1.0, -0.5])
    y = X @ beta_true + rng.normal(0, 0.8, m)[g] + rng.normal(0, 0.5, n)
    md = MarginalData.build(y, X, [ReBlock.of(g, np.ones((n, 1)), m)], sufficient=True)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0, 5, shape=2)
        sigma = pm.HalfNormal("sigma", 2)
        tau = pm.HalfNormal("tau", 2)
        pm.Potential("lik", marginal_loglik(md, beta, sigma, [tau.reshape((1, 1))]))
    return model, beta_true


@pytest.mark.parametrize("sampler", ["numpyro", "pymc"])
def test_pymc_sampling_smoke(sampler):
    model, beta_true = _tiny_model()
    kw = dict(cores=1) if sampler == "pymc" else {}
    with model:
        idata = pm.sample(draws=100, tune=100, chains=1, nuts_sampler=sampler, random_seed=1,
                          progressbar=False, compute_convergence_checks=False, **kw)
    beta = idata.posterior["beta"].values.reshape(-1, 2)
    assert np.all(np.isfinite(beta))
    assert np.all(np.abs(beta.mean(0) - beta_true) < 0.6)
    assert 0.2 < idata.posterior["sigma"].values.mean() < 1.0
