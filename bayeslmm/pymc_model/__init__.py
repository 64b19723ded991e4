"""Design + priors + plan -> ``pm.Model``: the PyMC model bayeslmm samples.

- :mod:`~bayeslmm.pymc_model.builder`: the model (fixed effects with brms's
  centring, scale factors ``L = diag(sd) R`` per grouping factor, sampled
  effects non-centred or partially centred, the marginal likelihood of
  :mod:`bayeslmm.ops` for integrated-out factors);
- :mod:`~bayeslmm.pymc_model.centring`: how far each sampled effect is centred;
- :mod:`~bayeslmm.pymc_model.lkj`: the LKJ correlation prior on an
  unconstrained scale, apart from the SDs.

May import PyMC, PyTensor, :mod:`bayeslmm.model` and :mod:`bayeslmm.ops`;
nothing about samplers or posterior analysis.
"""

from .builder import build_model, coords_of, marginal_data

__all__ = ["build_model", "coords_of", "marginal_data"]
