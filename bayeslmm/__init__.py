"""bayeslmm: Bayesian linear mixed models from lme4/brms formulas, on PyMC,
with exact marginalization of the group-level effects inside HMC.

The user-facing driver is :class:`BayesLMM`; the stages it runs are public
too, in the order data flows through them::

    parse_formula -> build_design -> resolve_priors -> resolve_plan
        -> build_model -> sample -> recover_effects -> LMMFit

Importing the package changes nothing in the process: it adds a
``NullHandler`` to the ``bayeslmm`` logger (the plan a fit chose is logged
at INFO there, for users who configure logging), and a fit sets what it
needs (float64 in JAX, one BLAS thread) for its own duration only.
"""

import logging as _logging

from .api import BayesLMM
from .model import (
    Design,
    MarginalizationPlan,
    Prior,
    ReBlock,
    build_design,
    parse_formula,
    resolve_plan,
    resolve_priors,
)
from .posterior import LMMFit, compare, recover_effects
from .pymc_model import build_model
from .sampling import sample

_logging.getLogger("bayeslmm").addHandler(_logging.NullHandler())

load = LMMFit.load

__version__ = "0.1.0"

__all__ = [
    "BayesLMM",
    "Design",
    "LMMFit",
    "MarginalizationPlan",
    "Prior",
    "ReBlock",
    "__version__",
    "build_design",
    "build_model",
    "compare",
    "load",
    "parse_formula",
    "recover_effects",
    "resolve_plan",
    "resolve_priors",
    "sample",
]
