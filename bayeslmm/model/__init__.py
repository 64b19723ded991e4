"""Model specification: formula -> design -> priors -> plan. NumPy, pandas and formulae only.

- :mod:`~bayeslmm.model.formula`: lme4/brms formula text -> :class:`FormulaSpec`;
- :mod:`~bayeslmm.model.design`: data + formula -> :class:`Design` (y, X, one
  :class:`ReBlock` per grouping factor, never a dense Z);
- :mod:`~bayeslmm.model.checks`: validators that run before anything is built;
- :mod:`~bayeslmm.model.families`: response families;
- :mod:`~bayeslmm.model.priors`: data-scaled defaults and user overrides;
- :mod:`~bayeslmm.model.plan`: which grouping factors are integrated out;
- :mod:`~bayeslmm.model.moments`: quick least-squares and moment estimates
  that choose the plan and the parameterization.

Nothing here imports PyMC, PyTensor or JAX, nor any later room of the package.
"""

from .design import Design, ReBlock, build_design
from .families import Family, get_family
from .formula import FormulaSpec, RandomTerm, parse_formula
from .plan import MarginalizationPlan, resolve_plan
from .priors import Prior, ResolvedPrior, prior_table, resolve_priors

__all__ = ["Design", "Family", "FormulaSpec", "MarginalizationPlan", "Prior", "RandomTerm", "ReBlock",
           "ResolvedPrior", "build_design", "get_family", "parse_formula", "prior_table", "resolve_plan",
           "resolve_priors"]
