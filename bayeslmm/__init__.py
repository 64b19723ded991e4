"""bayeslmm: Bayesian linear mixed models from lme4/brms formulas, on PyMC,
with exact marginalization of the group-level effects inside HMC."""

import os as _os

# NumPyro runs chains in parallel only with one XLA host device per chain; the
# flag must be set before JAX starts, so it is set here, once, unless the user
# already chose.
if "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_os.cpu_count() or 1}"
    ).strip()

import logging as _logging  # noqa: E402

# Like PyMC's own logger: the plan that marginalize="auto" chose is shown by default.
_log = _logging.getLogger("bayeslmm")
if not _log.handlers:
    _h = _logging.StreamHandler()
    _h.setFormatter(_logging.Formatter("%(message)s"))
    _log.addHandler(_h)
    _log.setLevel(_logging.INFO)

from .lmm import BayesLMM  # noqa: E402
from .io import load  # noqa: E402
from .priors import Prior  # noqa: E402

__all__ = ["BayesLMM", "Prior", "load", "__version__"]
__version__ = "0.1.0"
