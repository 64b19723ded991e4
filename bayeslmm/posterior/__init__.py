"""After sampling: recovery of integrated-out effects, the fitted model, predictions, log-likelihood, plots, files.

- :mod:`~bayeslmm.posterior.recover`: exact draws of the marginalized effects;
- :mod:`~bayeslmm.posterior.results`: :class:`LMMFit` (lme4-named accessors,
  brms-style tables);
- :mod:`~bayeslmm.posterior.predict`: predictions, posterior and prior
  predictive draws;
- :mod:`~bayeslmm.posterior.loglik`: pointwise log-likelihood, LOO, compare;
- :mod:`~bayeslmm.posterior.r2`: Bayesian R2 (conditional and marginal) and LOO R2;
- :mod:`~bayeslmm.posterior.kfold`: K-fold cross-validation by refitting;
- :mod:`~bayeslmm.posterior.varcorr`: variance components, brms and lme4 layouts;
- :mod:`~bayeslmm.posterior.plots`: diagnostic and result plots;
- :mod:`~bayeslmm.posterior.store`: a fit saved to and read from one file.

May import every earlier room (model, ops, pymc_model, sampling), ArviZ and
matplotlib (inside the plotting functions only).
"""

from .kfold import KFold, kfold
from .loglik import compare, log_likelihood, loo
from .predict import posterior_predictive, predict, prior_predictive
from .r2 import bayes_R2, loo_R2
from .recover import recover_effects, start_compiling
from .results import FitSummary, LMMFit

__all__ = ["FitSummary", "KFold", "LMMFit", "bayes_R2", "compare", "kfold", "log_likelihood", "loo", "loo_R2",
           "posterior_predictive", "predict", "prior_predictive", "recover_effects", "start_compiling"]
