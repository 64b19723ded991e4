"""bayeslmm.pymc_model.builder._row_effects: each row's sampled-effect sum, against NumPy."""

import numpy as np
import pytensor.tensor as pt

from bayeslmm.model.design import ReBlock
from bayeslmm.pymc_model.builder import _row_effects


def test_row_effects_match_numpy():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 7, 50)
    values = np.column_stack([np.ones(50), rng.normal(size=50), rng.choice([-0.5, 0.5], 50)])
    blk = ReBlock.of(g, values, 7)
    r = rng.normal(size=(7, 3))
    got = _row_effects(blk, pt.as_tensor_variable(r)).eval()
    np.testing.assert_allclose(got, np.einsum("nd,nd->n", values, r[g]), rtol=1e-14, atol=1e-14)
