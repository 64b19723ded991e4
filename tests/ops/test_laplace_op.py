"""The Laplace PyTensor Ops: value and gradient against laplace_logp, finite differences, pickling.

Cases come from test_laplace.py (GLMM responses on test_marginal.py's designs).
"""

import pickle

import jax
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from test_laplace import FAMS, _glmm

from bayeslmm.ops.laplace import laplace_logp
from bayeslmm.ops.laplace_op import LaplaceData, LaplaceLogp, LaplaceLogpGrad, laplace_loglik


def _graph(name, fam):
    family, link, trials = fam
    case, md, n, phi = _glmm(name, family, trials)
    ld = LaplaceData.build(md, (family, link), n)
    off = np.linspace(-0.3, 0.3, case.y.size)
    inputs = [pt.dvector("beta")] + [pt.dmatrix(f"L_{f.name}") for f in case.factors] + [pt.dvector("off")]
    values = [case.beta, *case.Ls, off]
    if phi is not None:
        inputs.append(pt.dscalar("phi"))
        values.append(phi)
    out = laplace_loglik(ld, inputs[0], inputs[1:1 + len(case.Ls)], inputs[1 + len(case.Ls)],
                         inputs[-1] if phi is not None else None)
    return case, md, ld, n, phi, off, inputs, values, out


@pytest.mark.parametrize("name, fam", [("crossed_d2_d1", FAMS[0]), ("three_factors", FAMS[4]),
                                       ("nested", FAMS[2])])
def test_value_and_grad_match_kernel(name, fam):
    case, md, ld, n, phi, off, inputs, values, out = _graph(name, fam)
    f = pytensor.function(inputs, [out] + pytensor.grad(out, inputs), mode="FAST_RUN")
    value, *grads = f(*values)

    def ref(b, Ls, o, p):
        return laplace_logp(md, (fam[0], fam[1]), b, Ls, o, n, p, ld.max_steps, ld.tol)

    with jax.enable_x64(True):
        want = float(ref(case.beta, case.Ls, off, phi))
        gw = jax.grad(ref, argnums=(0, 1, 2, 3) if phi is not None else (0, 1, 2))(case.beta, case.Ls, off, phi)
    assert abs(value - want) < 1e-12 * abs(want)
    for g, r in zip(grads, jax.tree.leaves(gw)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)
    # The JAX backend runs the registered kernel and differentiates it itself.
    fj = pytensor.function(inputs, [out] + pytensor.grad(out, inputs), mode="JAX")
    vj, *gj = fj(*values)
    assert abs(float(vj) - want) < 1e-12 * abs(want)
    for g, r in zip(gj, jax.tree.leaves(gw)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, fam", [("one_d1", FAMS[1]), ("three_factors", FAMS[4])])
def test_verify_grad(name, fam):
    """Central finite differences of the Op's value against its gradient Op (PyTensor's check)."""
    _, _, ld, _, _, _, _, values, _ = _graph(name, fam)
    op = LaplaceLogp(ld)
    pytensor.gradient.verify_grad(lambda *x: op(*x), values, rng=np.random.default_rng(0), abs_tol=1e-6,
                                  rel_tol=1e-6)


def test_ops_merge_and_pickle():
    _, _, ld, _, _, _, inputs, values, out = _graph("crossed_d2_d1", FAMS[0])
    assert LaplaceLogp(ld) == LaplaceLogp(ld) and hash(LaplaceLogp(ld)) == hash(LaplaceLogp(ld))
    op = pickle.loads(pickle.dumps(LaplaceLogpGrad(ld)))
    f = pytensor.function(inputs, pytensor.grad(out, inputs))
    for a, b in zip(f(*values), op(*inputs, return_list=True)[0].owner.op._run(values)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_bad_inputs():
    case, md, ld, n, phi, off, inputs, values, out = _graph("crossed_d2_d1", FAMS[0])
    with pytest.raises(TypeError, match="expects inputs"):
        LaplaceLogp(ld)(*inputs[:-1])
    with pytest.raises(TypeError, match="offset must be 1-D"):
        LaplaceLogp(ld)(*inputs[:-1], pt.dmatrix())
    with pytest.raises(ValueError, match="takes no phi"):
        laplace_loglik(ld, inputs[0], inputs[1:3], inputs[3], pt.dscalar())
    with pytest.raises(ValueError, match="sufficient=False"):
        LaplaceData.build(case.md(True), "poisson")
    with pytest.raises(ValueError, match="only meaningful for the binomial"):
        LaplaceData.build(md, "poisson", np.ones(case.y.size))
