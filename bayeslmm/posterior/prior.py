"""Prior draws of a model's parameters, kept with a fit (brms ``sample_prior = "yes"``).

The draws come from ``pymc.sample_prior_predictive`` on the unmarginalized
model of the same design and priors (the prior is the same whatever is
marginalized), restricted to the parameters that tables and hypotheses read:
``fixef``, ``sd_<g>``, ``cor_<g>`` and the family's own parameters
(``sigma``, ``nu``, ``shape``). Neither the response nor the group-level
effects are drawn, so the cost does not grow with the number of rows or
levels beyond the compilation of the forward graph.
"""

from __future__ import annotations

import contextlib
import logging

__all__ = ["prior_draws", "SAMPLE_PRIOR"]

SAMPLE_PRIOR = (False, True, "no", "yes")


def check_sample_prior(value) -> bool:
    """True for True/"yes", False for False/"no"; anything else is a ValueError (brms's "only" included)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("yes", "no"):
        return value == "yes"
    raise ValueError(f"sample_prior must be False, True, 'no' or 'yes' (brms's 'only' is "
                     f"BayesLMM.prior_predictive()); got {value!r}.")


def parameter_names(design) -> list[str]:
    """The posterior variables that hold the model's parameters (not the group-level effects)."""
    names = ["fixef"] if design.fixed_names else []
    for blk in design.blocks:
        names.append(f"sd_{blk.name}")
        if blk.correlated:
            names.append(f"cor_{blk.name}")
    return names + list(design.family.aux)


def prior_draws(design, priors, draws: int, random_seed=None):
    """xarray.Dataset of ``draws`` prior draws (dims chain=1, draw) of every parameter of :func:`parameter_names`.

    Cost: one compilation of the model's forward graph and O(draws (p + sum_g d_g^2)) sampling.
    """
    import pymc as pm

    from bayeslmm.model.checks import check_positive_int
    from bayeslmm.model.plan import resolve_plan
    from bayeslmm.pymc_model import build_model
    from bayeslmm.sampling.driver import _without_blas_notes

    draws = check_positive_int(draws, "draws")
    with _without_blas_notes(), _without_sampling_note():
        with build_model(design, priors, resolve_plan(design, "none")) as model:
            names = [n for n in parameter_names(design) if n in model.named_vars]
            idata = pm.sample_prior_predictive(draws=draws, var_names=names, random_seed=random_seed)
    return idata.prior[names]


@contextlib.contextmanager
def _without_sampling_note():
    """Drop PyMC's "Sampling: [...]" line: the prior draws are part of the fit, not a separate step."""
    def keep(record):
        return not record.getMessage().startswith("Sampling: [")

    logger = logging.getLogger("pymc.sampling.forward")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
