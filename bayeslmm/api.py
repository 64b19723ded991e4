"""``BayesLMM``: the driver that runs the public stages in order.

    parse_formula -> build_design -> resolve_priors -> resolve_plan
        -> build_model -> sample -> recover_effects -> LMMFit

Each stage is a public function of the package (``bayeslmm.build_design``
and so on), and each intermediate result can be inspected, as with lme4's
``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``.
"""

from __future__ import annotations

import logging
import time
import warnings

from .model import build_design, prior_table, resolve_plan, resolve_priors
from .model.plan import laplace_accuracy_warning, run_seconds
from .model.checks import check_bool, check_choice, check_positive_int, check_probability, check_random_seed
from .distributed import check_dask_plan, dask_design, is_dask_frame
from .posterior import LMMFit, prior_predictive, recover_effects, start_compiling
from .posterior.prior import check_sample_prior, prior_draws
from .pymc_model import build_model, marginal_data
from .sampling import SAMPLERS, compilation_cache, resolve_cache_dir, sample
from .sampling.heap import release_freed_memory
from .sampling.interrupt import check_interrupt, interrupt_guard
from .sampling.xla import options_for

__all__ = ["BayesLMM", "Refit"]

log = logging.getLogger("bayeslmm")


class BayesLMM:
    """A Bayesian linear mixed model written as an lme4/brms formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"log(rt) ~ cond + (cond | subj) + (1 | item)"``;
        see docs/formula.md for everything supported.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        Not modified. A Dask frame (``pip install bayeslmm[dask]``) is read
        in two passes over its partitions on the active scheduler into
        sufficient statistics (docs/dask.md); it needs ``marginalize="all"``.
    family : {"gaussian", "lognormal", "student", "bernoulli", "binomial", "poisson", "negbinomial"}
        brms names and parametrizations (docs/families.md). Families other
        than gaussian and lognormal are fitted with marginalize="none".
    link : str, optional
        The family's link; None its default ("logit" for bernoulli and
        binomial, which also take "probit"; "log" for counts).
    weights : str or array-like, optional
        lme4's ``weights=``: a column name or one value per row (or
        ``y | weights(w) ~`` in the formula, brms; on a Dask frame a
        column name or the formula). gaussian/lognormal:
        precision weights (residual variance sigma^2 / w_i), which keep
        exact marginalization under every plan; other families: each
        log-likelihood term times w_i.
    priors : Prior or list of Prior, optional
        Overrides of the data-scaled defaults (see :mod:`bayeslmm.model.priors`).
    na_action : {"error", "drop"}
        What to do with rows that have NaN/inf in the model's columns.

    Each stage can be inspected: ``.design``, ``.get_priors()``,
    ``.plan(marginalize)``, ``.build_model(marginalize)``.
    """

    def __init__(self, formula, data, family="gaussian", priors=None, na_action="error", link=None, weights=None):
        self.is_dask = is_dask_frame(data)
        if self.is_dask:
            if na_action != "error":
                raise ValueError(f"na_action={na_action!r} is not supported for a Dask DataFrame; drop the "
                                 "rows with ddf.dropna() first.")
            if link is not None:
                raise ValueError("link= is not supported for a Dask DataFrame (gaussian and lognormal with "
                                 f"their default identity link only); got link={link!r}.")
            self.design = dask_design(formula, data, family=family, weights=weights)
        else:
            self.design = build_design(formula, data, family=family, na_action=na_action, link=link, weights=weights)
        self.priors = resolve_priors(self.design, priors)
        self.formula = self.design.spec.formula
        # What a refit (fit.update, fit.kfold) needs to rebuild this model on other data.
        self._model_args = dict(formula=formula, data=data, family=family, priors=priors, na_action=na_action,
                                link=link, weights=weights)
        self.family = self.design.family.name

    def get_priors(self):
        """Every prior in use, like brms ``get_prior``: a DataFrame (prior, class, coef, group, source)."""
        return prior_table(self.priors)

    def plan(self, marginalize="auto", approximation=None):
        """The :class:`~bayeslmm.model.plan.MarginalizationPlan` for ``marginalize``.

        On a Dask frame "auto" means "all", the only plan that reads no rows per gradient.
        """
        if self.is_dask and isinstance(marginalize, str) and marginalize == "auto":
            marginalize = "all"
        plan = resolve_plan(self.design, marginalize, approximation)
        if self.is_dask:
            check_dask_plan(plan)
        return plan

    def build_model(self, marginalize="auto"):
        """The ``pm.Model`` (for ``marginalize="none"``: non-centred, every effect sampled)."""
        return build_model(self.design, self.priors, self.plan(marginalize))

    def fit(self, draws=1000, tune=1000, chains=4, target_accept=0.8, random_seed=None,
            sampler="numpyro", marginalize="auto", progressbar=True, low_memory=None, approximation=None,
            compile_cache=None, sample_prior=False):
        """Sample the posterior with NUTS.

        Parameters
        ----------
        marginalize : "none" | "all" | "auto" | factor name | list of factor names
            Group-level effects integrated out of the likelihood (exactly) and
            recovered after sampling; "auto" picks the plan with the lowest
            estimated cost (see :func:`bayeslmm.model.plan.resolve_plan`).
            Only gaussian and lognormal can be integrated exactly: for the
            other families anything but "none"/"auto" is a ValueError unless
            ``approximation="laplace"``, and "auto" means "none".
        approximation : None or "laplace"
            None: exact integration only. "laplace": the marginalized factors
            are integrated out by a Laplace approximation at the conditional
            mode of the effects (bernoulli, binomial, poisson, negbinomial,
            and gaussian/lognormal where it is exact; not student), their
            effects drawn per posterior draw from that Gaussian; "auto" then
            chooses among "none" and the Laplace plans. Each gradient costs a
            Newton solve (typically 4-8 steps of O(N)); docs/marginalization.md
            gives the accuracy, which is poorest with few observations per
            level (the fit then warns).
        sampler : {"numpyro", "pymc", "blackjax", "nutpie"}
            With "numpyro", NUTS also checks for U-turns between the halves
            of each subtree, as Stan does (:mod:`bayeslmm.sampling.compat`).
        low_memory : bool or None
            numpyro only. None (the default) or True: run NUTS as short XLA
            executions, the chains in threads, warm-up started from the
            curvature at each chain's start (:mod:`bayeslmm.sampling.nuts`):
            memory bounded however long the run, interruptible at any time.
            False: NumPyro's own ``MCMC.run``, one execution over all chains.
        compile_cache : None, bool or path
            Where JAX keeps compiled programs on disk during the fit, so that
            the same model fitted again in a new process skips most of its
            compilation. None (the default): the environment variable
            ``BAYESLMM_JAX_CACHE`` (a directory, or ``0``/``off`` to turn
            it off), else ``bayeslmm/jax`` in the user's cache directory;
            True: that directory; False: no cache; a path: that directory
            (:mod:`bayeslmm.sampling.cache`). A cache directory configured
            for JAX itself takes precedence.
        sample_prior : {False, True, "no", "yes"}
            True/"yes" (brms ``sample_prior = "yes"``): also draw
            ``chains * draws`` values of every parameter from its prior into
            ``idata.prior`` (:func:`bayeslmm.posterior.prior.prior_draws`),
            which :meth:`LMMFit.hypothesis` needs for the Savage-Dickey
            ratio of point hypotheses; saved and loaded with the fit.

        Returns
        -------
        LMMFit

        Cost: the sampler's gradient evaluations (see docs/marginalization.md
        for what one costs under each plan), one compilation of the
        sampler's program, and one blocked factorization per draw to recover
        the integrated-out effects.
        """
        fit_args = dict(draws=draws, tune=tune, chains=chains, target_accept=target_accept, random_seed=random_seed,
                        sampler=sampler, marginalize=marginalize, progressbar=progressbar, low_memory=low_memory,
                        approximation=approximation, compile_cache=compile_cache)
        draws = check_positive_int(draws, "draws")
        tune = check_positive_int(tune, "tune")
        chains = check_positive_int(chains, "chains")
        check_choice(sampler, SAMPLERS, "sampler")
        if low_memory is not None and not isinstance(low_memory, bool):
            raise TypeError(f"low_memory must be True, False or None, got {low_memory!r}.")
        if low_memory and sampler != "numpyro":
            raise ValueError(f"low_memory=True needs sampler='numpyro' (got sampler={sampler!r}).")
        target_accept = check_probability(target_accept, "target_accept")
        random_seed = check_random_seed(random_seed)
        progressbar = check_bool(progressbar, "progressbar")
        sample_prior = check_sample_prior(sample_prior)
        if sample_prior and self.is_dask:
            raise ValueError("sample_prior=True is not supported for a Dask DataFrame (its prior draws need the "
                             "unmarginalized model, which reads every row); fit an in-memory sample for that.")
        cache_dir = resolve_cache_dir(compile_cache)
        plan = self.plan(marginalize, approximation)
        log.info("bayeslmm: %s", plan.describe())
        with interrupt_guard(), compilation_cache(cache_dir):
            idata, model, timings = self._sample(plan, draws, tune, chains, target_accept, random_seed, sampler,
                                                 progressbar, low_memory)
        if sample_prior:
            idata.add_groups(prior=prior_draws(self.design, self.priors, chains * draws, random_seed=random_seed))
        fit = LMMFit(idata, self.design, self.priors, plan, model, sampler, timings)
        fit.origin = Refit(self._model_args, fit_args)
        fit.check_convergence(stacklevel=2)
        note = laplace_accuracy_warning(self.design, plan)
        if note:
            warnings.warn(note, UserWarning, stacklevel=2)
        return fit

    def _sample(self, plan, draws, tune, chains, target_accept, random_seed, sampler, progressbar, low_memory):
        t0 = time.perf_counter()
        md = marginal_data(self.design, plan) if plan.marginalized else None
        model = build_model(self.design, self.priors, plan, md=md)
        check_interrupt()
        # A likelihood on sufficient statistics reads no rows per evaluation.
        options = options_for(0 if plan.sufficient else self.design.n, run_seconds(self.design, plan, tune, draws))
        prepared = start_compiling(self.design, plan, md, chains * draws, options) if md is not None else None
        idata, t_sample = sample(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                                 target_accept=target_accept, random_seed=random_seed, progressbar=progressbar,
                                 low_memory=low_memory is not False and sampler == "numpyro",
                                 compiler_options=options)
        t1 = time.perf_counter()
        check_interrupt()
        if md is not None:
            release_freed_memory()
            recover_effects(idata, self.design, plan, md, random_seed=random_seed, prepared=prepared,
                            compiler_options=options)
        t2 = time.perf_counter()
        return idata, model, {"sampling": t_sample, "recover": t2 - t1, "total": t2 - t0}

    def __repr__(self):
        return f"BayesLMM({self.formula!r}, family={self.family!r}, n={self.design.n})"

    def _repr_html_(self):
        """Notebook view before fitting: formula, family, data size, factors, the plan "auto" would choose, priors.

        The plan comes from the cost model alone (no compilation, no
        sampling); colours are inherited from the notebook theme.
        """
        from .posterior.html import facts_html, section_html, wrap_html

        d = self.design
        facts = [("Formula", self.formula), ("Family", f"{d.family.name} (link: {d.family.link})"),
                 ("Data", f"{d.n} observations" + (f" ({d.n_dropped} with NaN dropped)" if d.n_dropped else "")),
                 ("Fixed effects", ", ".join(d.fixed_names) or "none")]
        facts += [(f"Factor {b.name}", f"{b.n_levels} levels; effects {', '.join(b.terms)}") for b in d.blocks]
        try:
            facts.append(('Plan of marginalize="auto"', self.plan("auto").describe()))
        except ValueError as err:
            facts.append(('Plan of marginalize="auto"', f"unavailable: {err}"))
        return wrap_html([facts_html("BayesLMM (not fitted)", facts), section_html("Priors", self.get_priors())],
                         "model")

    def prior_predictive(self, draws=500, random_seed=None):
        """Prior and prior predictive draws (InferenceData); see :func:`bayeslmm.posterior.predict.prior_predictive`."""
        return prior_predictive(self.design, self.priors, draws=draws, random_seed=random_seed)


_MODEL_ARGS = ("family", "link", "weights", "na_action")


class Refit:
    """How a fit was made (``fit.origin``): the :class:`BayesLMM` arguments and the ``fit`` arguments.

    Calling it refits with some of them changed (brms ``update``): the
    formula through :func:`bayeslmm.model.update.update_formula` (``". ~ . + x"``),
    ``data``, ``priors`` (None keeps the original ones; ``[]`` returns to
    the defaults), ``family``/``link``/``weights``/``na_action``, and any
    argument of :meth:`BayesLMM.fit`. An original ``marginalize`` that names
    factors keeps those the new formula still has ("auto" if none).
    Cost: one new fit.
    """

    def __init__(self, model_args: dict, fit_args: dict):
        self.model_args, self.fit_args = dict(model_args), dict(fit_args)

    def __call__(self, formula=None, data=None, priors=None, **kwargs):
        from .model.update import update_formula

        args = dict(self.model_args)
        if formula is not None:
            args["formula"] = update_formula(self.model_args["formula"], formula)
        if data is not None:
            args["data"] = data
        if priors is not None:
            args["priors"] = priors
        for k in _MODEL_ARGS:
            if k in kwargs:
                args[k] = kwargs.pop(k)
        unknown = set(kwargs) - set(self.fit_args)
        if unknown:
            raise TypeError(f"update got unknown argument(s) {sorted(unknown)}; it takes formula, data, "
                            f"priors, {', '.join(_MODEL_ARGS)} and the arguments of fit: {sorted(self.fit_args)}.")
        model = BayesLMM(**args)
        fit_args = {**self.fit_args, **kwargs}
        marg = fit_args["marginalize"]
        if "marginalize" not in kwargs and not (isinstance(marg, str) and marg in ("auto", "all", "none")):
            # Factors named in the original plan that the new formula dropped are dropped from it too.
            have = {b.name for b in model.design.blocks}
            kept = [m for m in ([marg] if isinstance(marg, str) else list(marg)) if m in have]
            fit_args["marginalize"] = kept if kept else "auto"
        return model.fit(**fit_args)

    def __repr__(self):
        return f"Refit({self.model_args['formula']!r}, fit_args={self.fit_args!r})"
