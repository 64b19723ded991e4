"""Samplers: from a ``pm.Model`` to posterior draws (ArviZ InferenceData).

- :mod:`~bayeslmm.sampling.driver`: :func:`sample`, the one entry point, for
  ``numpyro``, ``blackjax``, ``nutpie`` and ``pymc``; the model's JAX
  translation through PyTensor's public ``jax_funcify``;
- :mod:`~bayeslmm.sampling.nuts`: NumPyro's NUTS in short XLA executions,
  chains in threads;
- :mod:`~bayeslmm.sampling.mass_matrix`: warm-up started from the curvature
  at each chain's start;
- :mod:`~bayeslmm.sampling.compat`: the only private names of another
  library the package uses (NumPyro's tree pieces, for Stan's U-turn
  checks), with the versions they were checked on;
- :mod:`~bayeslmm.sampling.cache`: the persistent JAX compilation cache,
  on for the duration of a fit;
- :mod:`~bayeslmm.sampling.xla`: XLA compile options;
  :mod:`~bayeslmm.sampling.heap`: freed memory handed back to the system.

May import PyMC, PyTensor, JAX, NumPyro (and blackjax, nutpie when asked
for); nothing of the posterior analysis.
"""

from .cache import CACHE_ENV, compilation_cache, default_cache_dir, resolve_cache_dir
from .driver import SAMPLERS, JaxModel, drop_internal, jax_model, sample

__all__ = ["CACHE_ENV", "SAMPLERS", "JaxModel", "compilation_cache", "default_cache_dir", "drop_internal",
           "jax_model", "resolve_cache_dir", "sample"]
