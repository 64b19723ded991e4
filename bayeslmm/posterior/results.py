"""The fitted model: lme4-named accessors and brms-style tables.

Every table is computed from the posterior draws in ``idata`` with ArviZ's
own diagnostics (``az.rhat``, ``az.ess``), so marginalized and
unmarginalized fits are read the same way.
"""

from __future__ import annotations

import contextlib
import warnings
from html import escape

import arviz as az
import numpy as np
import pandas as pd

from bayeslmm.model.checks import check_bool, check_probability
from bayeslmm.model.plan import laplace_accuracy_warning
from bayeslmm.model.priors import prior_table

from . import store
from .loglik import log_likelihood, loo
from .plots import plot_caterpillar, plot_fixef, plot_ppc, plot_rank, plot_trace
from .predict import posterior_predictive, predict, summarise_draws
from .kfold import kfold
from .r2 import bayes_R2, loo_R2
from .varcorr import varcorr_brms, varcorr_lme4

__all__ = ["LMMFit", "FitSummary", "draw_table"]

_COLS = ["Estimate", "Est.Error", "Q2.5", "Q97.5"]


@contextlib.contextmanager
def quiet_diagnostics():
    """ArviZ's Rhat and ESS computed with NumPy, their warnings silenced.

    With numba installed (PyTensor depends on it) ArviZ JIT-compiles its
    variance helper the first time a process calls ``az.rhat``, a cost paid
    inside ``fit`` by its convergence check, for arrays of a few thousand
    draws that NumPy reduces in a millisecond. Same values either way;
    ArviZ's setting is restored on leaving (through its public
    ``az.Numba.disable_numba`` / ``enable_numba``).
    """
    numba = getattr(az, "Numba", None)
    was_on = bool(getattr(numba, "numba_flag", False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if was_on:
            numba.disable_numba()
        try:
            yield
        finally:
            if was_on:
                numba.enable_numba()


def draw_table(draws: dict, prob: float = 0.95, diagnostics: bool = True) -> pd.DataFrame:
    """One row per named (chain, draw) array: mean, SD, central interval, Rhat, bulk and tail ESS."""
    prob = check_probability(prob, "prob")
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    rows = {}
    for name, a in draws.items():
        flat = a.reshape(-1)
        row = {"Estimate": flat.mean(), "Est.Error": flat.std(ddof=1) if flat.size > 1 else np.nan,
               f"Q{100 * lo:g}": np.quantile(flat, lo), f"Q{100 * hi:g}": np.quantile(flat, hi)}
        if diagnostics:
            with quiet_diagnostics():
                row["Rhat"] = float(az.rhat(a)) if a.shape[0] > 1 else np.nan
                row["Bulk_ESS"] = float(az.ess(a, method="bulk"))
                row["Tail_ESS"] = float(az.ess(a, method="tail"))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


class FitSummary:
    """brms-like summary; ``.tables`` holds every part as a DataFrame.

    Keys are brms' titles: ``"~subj (Number of levels: 18)"`` per factor
    (printed under "Multilevel Hyperparameters"), ``"Regression
    Coefficients"``, ``"Further Distributional Parameters"``; interval
    columns are ``l-95% CI`` / ``u-95% CI``.
    """

    def __init__(self, header: list[str], tables: dict, notes: list[str]):
        self.header, self.tables, self.notes = header, tables, notes

    def __getitem__(self, key):
        return self.tables[key]

    def _fmt(self, df):
        out = df.copy()
        for c in ("Bulk_ESS", "Tail_ESS"):
            if c in out:
                out[c] = out[c].map(lambda v: "NA" if not np.isfinite(v) else f"{v:.0f}")
        if "Rhat" in out:
            out["Rhat"] = out["Rhat"].map(lambda v: "NA" if not np.isfinite(v) else f"{v:.2f}")
        return out

    def _sections(self):
        """(brms section heading or None, table title, table) in print order."""
        group_done = False
        for title, df in self.tables.items():
            head = None
            if title.startswith("~") and not group_done:
                head, group_done = "Multilevel Hyperparameters:", True
            yield head, title, df

    def __str__(self):
        lines = list(self.header)
        for head, title, df in self._sections():
            lines += [""] + ([head] if head else []) + [f"{title}:",
                                                        self._fmt(df).to_string(float_format=lambda v: f"{v:.2f}")]
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self):
        plain = "color: inherit; background: transparent"
        parts = [f"<pre style='{plain}'>" + "\n".join(escape(h) for h in self.header) + "</pre>"]
        for head, title, df in self._sections():
            if head:
                parts.append(f"<h4 style='{plain}'>{escape(head)}</h4>")
            parts.append(f"<h5 style='{plain}'>{escape(title)}</h5>"
                         + self._fmt(df).to_html(float_format=lambda v: f"{v:.2f}", border=0))
        parts += [f"<p style='{plain}'><strong>{escape(n)}</strong></p>" for n in self.notes]
        return "<div>" + "\n".join(parts) + "</div>"


class LMMFit:
    """A fitted :class:`~bayeslmm.BayesLMM`.

    Attributes
    ----------
    idata : arviz.InferenceData
        Posterior with ``fixef`` (dims ``fixef_term``), ``sd_<g>`` and
        ``cor_<g>`` per factor, ``sigma``, and the group-level effects
        ``r_<g>`` (dims ``<g>__level``, ``<g>__effect``), sampled or recovered.
    plan : MarginalizationPlan
    timings : dict
        Seconds: ``sampling`` (compile included), ``recover``, ``total``.
    origin : bayeslmm.api.Refit or None
        The model and fit arguments this fit was made with (what
        :meth:`update` and :meth:`kfold` refit from); None for a loaded fit.
    """

    origin = None

    def __init__(self, idata, design, priors, plan, model, sampler, timings):
        self.idata, self.design, self.priors, self.plan = idata, design, priors, plan
        self.model, self.sampler, self.timings = model, sampler, timings

    @classmethod
    def load(cls, path) -> "LMMFit":
        """Read a fit written by :meth:`save` (``bayeslmm.load``).

        Tables, ``predict``, log-likelihood, LOO and plots work as on the
        original fit; ``fit.model`` is None (rebuild it with
        ``bayeslmm.build_model(fit.design, fit.priors, fit.plan)`` if needed).
        """
        idata, design, priors, plan, sampler, timings = store.read(path)
        return cls(idata, design, priors, plan, None, sampler, timings)

    # --- accessors -------------------------------------------------------
    @property
    def posterior(self):
        """``idata.posterior`` (xarray Dataset)."""
        return self.idata.posterior

    def _sel(self, name, **sel):
        return np.asarray(self.posterior[name].sel(**sel))

    def fixef(self, summary: bool = True, prob: float = 0.95):
        """Population-level effects, like lme4 ``fixef`` / brms ``fixef``.

        Returns a DataFrame indexed by term (as formulae writes it:
        ``Intercept``, ``c_int``, ``cond[b]``) with Estimate, Est.Error and
        the central ``prob`` interval; ``summary=False`` gives the draws
        (DataArray chain x draw x term).
        """
        if not summary:
            return self.posterior["fixef"]
        names = self.design.fixed_names
        return draw_table({n: self._sel("fixef", fixef_term=n) for n in names}, prob, diagnostics=False)

    def _level_table(self, blk, da, prob):
        """brms ``ranef``/``coef`` table: levels x (effect, stat), stats Estimate/Est.Error/Q2.5/Q97.5."""
        a = np.asarray(da.transpose("chain", "draw", f"{blk.name}__level", f"{blk.name}__effect"))
        # one row per (level, effect), the effect varying fastest
        stats = summarise_draws(a.reshape(a.shape[0] * a.shape[1], -1), None, prob)
        levels = pd.Index(np.asarray(da[f"{blk.name}__level"]), name=blk.name)
        effects = list(np.asarray(da[f"{blk.name}__effect"]))
        cols = pd.MultiIndex.from_product([effects, list(stats.columns)], names=["effect", "stat"])
        return pd.DataFrame(stats.to_numpy().reshape(len(levels), -1), index=levels, columns=cols)

    def ranef(self, summary: bool = True, prob: float = 0.95):
        """Group-level effects per factor, like brms ``ranef``: dict factor -> DataFrame.

        Rows are the factor's levels (index named after the factor), columns
        a (effect, stat) MultiIndex with stats Estimate, Est.Error and the
        central ``prob`` interval (Q2.5, Q97.5): ``ranef()["subj"]["cond"]``
        is brms' ``ranef(fit)$subj[, , "cond"]``. ``summary=False`` gives
        dict factor -> DataArray of draws (chain x draw x level x effect).
        Cost: one pass over the draws.
        """
        out = {}
        for blk in self.design.blocks:
            da = self.posterior[f"r_{blk.name}"]
            out[blk.name] = da if not summary else self._level_table(blk, da, prob)
        return out

    def coef(self, summary: bool = True, prob: float = 0.95):
        """Fixed plus group-level effects per level, like brms/lme4 ``coef``; same layout as :meth:`ranef`.

        Effects without a matching fixed term are the group effects alone.
        """
        out = {}
        fe = self.posterior["fixef"] if self.design.fixed_names else None
        for blk in self.design.blocks:
            r = self.posterior[f"r_{blk.name}"]
            parts = []
            for t in blk.terms:
                val = r.sel({f"{blk.name}__effect": t})
                if fe is not None and t in self.design.fixed_names:
                    val = val + fe.sel(fixef_term=t)
                parts.append(val.drop_vars("fixef_term", errors="ignore").transpose(*r.dims[:-1]))
            da = r.copy(data=np.stack([np.asarray(p) for p in parts], axis=-1))
            out[blk.name] = da if not summary else self._level_table(blk, da, prob)
        return out

    def _group_draws(self):
        draws = {}
        for blk in self.design.blocks:
            for t in blk.terms:
                draws[(blk.name, f"sd({t})")] = self._sel(f"sd_{blk.name}", **{f"{blk.name}__effect": t})
            for grp in blk.corr_groups:
                for a in range(len(grp)):
                    for b in range(a):
                        ta, tb = blk.terms[grp[b]], blk.terms[grp[a]]
                        draws[(blk.name, f"cor({ta},{tb})")] = self._sel(
                            f"cor_{blk.name}", **{f"{blk.name}__effect": ta, f"{blk.name}__effect_bis": tb})
        return draws

    def varcorr(self, summary: bool = True, prob: float = 0.95, layout: str = "brms"):
        """Variance components per factor and the residual SD (brms ``VarCorr`` / lme4 ``VarCorr``).

        ``layout="brms"`` (default, as brms ``VarCorr``): dict factor ->
        {"sd", "cor", "cov"} plus "residual__" -> {"sd"}, each a table of
        Estimate / Est.Error / Q2.5 / Q97.5, or with ``summary=False`` the
        draws (:func:`bayeslmm.posterior.varcorr.varcorr_brms`).
        ``layout="long"``: one DataFrame with a (group, parameter) index:
        ``sd(Intercept)``, ``cor(Intercept,c_int)``, and ("Residual",
        "sigma"); ``summary=False`` gives those draws as a dict.
        ``layout="lme4"``: lme4's Groups / Name / Variance / Std.Dev. / Corr
        table of posterior means, printing as lme4's ``print(VarCorr(fit))``
        (:func:`bayeslmm.posterior.varcorr.varcorr_lme4`).
        Cost O(S sum_g d_g^2).
        """
        if layout not in ("long", "brms", "lme4"):
            raise ValueError(f"layout must be 'brms', 'long' or 'lme4'; got {layout!r}.")
        if layout == "brms":
            return varcorr_brms(self, prob, summary=summary)
        if layout == "lme4":
            return varcorr_lme4(self)
        draws = self._group_draws()
        if "sigma" in self.design.family.aux:
            draws[("Residual", "sigma")] = self._sel("sigma")
        if not summary:
            return draws
        df = draw_table({k: v for k, v in draws.items()}, prob, diagnostics=False)
        df.index = pd.MultiIndex.from_tuples(list(draws), names=["group", "parameter"])
        return df

    def summary(self, prob: float = 0.95) -> FitSummary:
        """brms-style summary: group-level, population-level and family parameters with diagnostics.

        Warns once per fit (UserWarning) when a Laplace plan integrated out factors with few
        observations per level (:func:`bayeslmm.model.plan.laplace_accuracy_warning`).
        """
        prob = check_probability(prob, "prob")
        d = self.design
        note = laplace_accuracy_warning(d, self.plan)
        if note and not getattr(self, "_laplace_warned", False):
            self._laplace_warned = True
            warnings.warn(note, UserWarning, stacklevel=2)
        post = self.posterior
        n_draws = post.sizes["chain"] * post.sizes["draw"]
        header = [
            f" Family: {d.family.name}",
            f"Formula: {d.spec.formula}",
            f"   Data: {d.n} observations" + (f" ({d.n_dropped} rows with NaN dropped)" if d.n_dropped else ""),
            f"  Draws: {post.sizes['chain']} chains, each with {post.sizes['draw']} post-warmup draws; "
            f"total post-warmup draws = {n_draws}",
            f"Sampler: {self.sampler}; {self.plan.describe()}",
        ]
        tables = {}
        notes = []
        gd = self._group_draws()
        for blk in d.blocks:
            tab = draw_table({p: v for (g, p), v in gd.items() if g == blk.name}, prob)
            tables[f"~{blk.name} (Number of levels: {blk.n_levels})"] = tab
            notes += self._singularity_notes(blk.name, tab, gd)
        if d.fixed_names:
            tables["Regression Coefficients"] = draw_table(
                {n: self._sel("fixef", fixef_term=n) for n in d.fixed_names}, prob)
        if d.family.aux:
            tables["Further Distributional Parameters"] = draw_table({a: self._sel(a) for a in d.family.aux}, prob)
        if d.family.link != "identity":
            header[0] += f"\n  Links: mu = {d.family.link}"
        ci = {f"Q{100 * (1 - prob) / 2:g}": f"l-{100 * prob:g}% CI",
              f"Q{100 * (1 - (1 - prob) / 2):g}": f"u-{100 * prob:g}% CI"}
        tables = {k: v.rename(columns=ci) for k, v in tables.items()}
        n_div = self.n_divergences
        if n_div:
            notes.append(f"Warning: there were {n_div} divergent transitions after warmup.")
        return FitSummary(header, tables, notes)

    def _singularity_notes(self, group, tab, gd):
        """Bayesian counterpart of lme4's 'boundary (singular) fit' message."""
        notes = []
        for name, row in tab.iterrows():
            draws = gd[(group, name)].reshape(-1)
            # A well-identified SD has its 2.5% quantile at well over half its median
            # (dillonE1 sd(subj): 0.75); one whose posterior reaches down to 0 has it
            # at a small fraction (no group variance, 40 groups: 0.12).
            if name.startswith("sd(") and np.quantile(draws, 0.025) < 0.2 * np.median(draws):
                notes.append(f"Note: {group} {name} piles up near 0: the data barely inform this variance "
                             "(lme4 would report a singular fit). Consider dropping the term or a stronger prior.")
            if name.startswith("cor(") and abs(row["Estimate"]) > 0.8:
                notes.append(f"Note: {group} {name} is near {np.sign(row['Estimate']):+.0f}: consider an "
                             "uncorrelated term (||) or a stronger lkj prior.")
        return notes

    # --- diagnostics -----------------------------------------------------
    @property
    def n_divergences(self) -> int:
        """Number of divergent transitions after warmup, over all chains."""
        ss = getattr(self.idata, "sample_stats", None)
        if ss is None or "diverging" not in ss:
            return 0
        return int(np.asarray(ss["diverging"]).sum())

    def max_rhat(self) -> float:
        """Largest Rhat over fixed effects, SDs, correlations and sigma."""
        draws = [v for v in self._group_draws().values()] + [self._sel(a) for a in self.design.family.aux]
        if self.design.fixed_names:
            draws += [self._sel("fixef", fixef_term=n) for n in self.design.fixed_names]
        if self.posterior.sizes["chain"] < 2:
            return float("nan")
        with quiet_diagnostics():
            return float(np.nanmax([float(az.rhat(a)) for a in draws]))

    def check_convergence(self, stacklevel=1):
        """Warn (once per call) of divergent transitions and of Rhat > 1.01, as brms does after a fit."""
        n_div = self.n_divergences
        if n_div:
            warnings.warn(
                f"There were {n_div} divergent transitions after warmup. Increasing target_accept above "
                "the current value may help.", UserWarning, stacklevel=stacklevel + 1)
        rhat = self.max_rhat()
        if np.isfinite(rhat) and rhat > 1.01:
            warnings.warn(
                f"Parts of the model have not converged (largest Rhat {rhat:.3f} > 1.01). Be careful when "
                "analysing the results! Run more iterations and/or set stronger priors.", UserWarning,
                stacklevel=stacklevel + 1)

    # --- analysis: predictions, log-likelihood, plots, save (thin wrappers) ---
    def predict(self, newdata=None, re_formula=None, allow_new_levels=False, summary: bool = True,
                prob: float = 0.95, kind="response", sample_new_levels="gaussian", random_seed=None):
        """Posterior predictive per row, like brms ``predict`` (``posterior_predict``).

        ``summary=True`` (default, as brms): DataFrame indexed as ``newdata``
        (the training rows if None) with Estimate, Est.Error and the
        equal-tailed ``prob`` interval (Q2.5, Q97.5) of draws of new
        observations. ``summary=False``: the draws, ndarray (chains * draws,
        rows). ``kind="mean"`` / ``"link"`` switch to the expected response
        (brms ``posterior_epred``, also :meth:`fitted`) / the linear
        predictor (``posterior_linpred``). Other arguments: see
        :func:`bayeslmm.posterior.predict.predict`. Cost O(S n (p + sum_g d_g)).
        """
        check_bool(summary, "summary")
        draws = predict(self, newdata=newdata, re_formula=re_formula, allow_new_levels=allow_new_levels,
                        kind=kind, sample_new_levels=sample_new_levels, random_seed=random_seed)
        if summary and not isinstance(draws, np.ndarray):
            raise ValueError("summary=True would collect every draw of every row of a Dask frame on the driver; "
                             "pass summary=False for the lazy Dask array of draws.")
        return summarise_draws(draws, self._row_index(newdata), prob) if summary else draws

    def fitted(self, newdata=None, re_formula=None, allow_new_levels=False, summary: bool = True,
               prob: float = 0.95, scale: str = "response", random_seed=None):
        """Expected response per row, like brms ``fitted`` (``posterior_epred``).

        ``summary=True`` (default): DataFrame indexed as ``newdata`` (the
        training rows if None) with Estimate, Est.Error and the equal-tailed
        ``prob`` interval (Q2.5, Q97.5); ``summary=False``: the draws
        (draws x rows). ``scale="linear"`` gives the linear predictor.
        Cost: that of :meth:`predict`.
        """
        if scale not in ("response", "linear"):
            raise ValueError(f"scale must be 'response' or 'linear'; got {scale!r}")
        return self.predict(newdata, re_formula=re_formula, allow_new_levels=allow_new_levels, summary=summary,
                            prob=prob, kind="mean" if scale == "response" else "link", random_seed=random_seed)

    def predict_table(self, newdata=None, re_formula=None, allow_new_levels=False, prob: float = 0.95,
                      random_seed=None):
        """Same as :meth:`predict` with its defaults (``summary=True``, posterior predictive); kept for old code."""
        return self.predict(newdata, re_formula=re_formula, allow_new_levels=allow_new_levels, prob=prob,
                            random_seed=random_seed)

    def bayes_R2(self, re_formula=None, summary: bool = True, prob: float = 0.95):
        """Bayesian R2 (brms ``bayes_R2``); ``re_formula="NA"`` for the marginal R2. See :func:`bayeslmm.posterior.r2.bayes_R2`."""
        return bayes_R2(self, re_formula=re_formula, summary=summary, prob=prob)

    def loo_R2(self, summary: bool = True, prob: float = 0.95, random_seed=None):
        """LOO-adjusted R2 (brms ``loo_R2``); see :func:`bayeslmm.posterior.r2.loo_R2`."""
        return loo_R2(self, summary=summary, prob=prob, random_seed=random_seed)

    def kfold(self, K: int = 10, group=None, folds=None, random_seed=None, progressbar: bool = True, **fit_args):
        """K-fold cross-validation by K refits (brms ``kfold``); see :func:`bayeslmm.posterior.kfold.kfold`."""
        return kfold(self, K=K, group=group, folds=folds, random_seed=random_seed, progressbar=progressbar,
                     **fit_args)

    def update(self, formula=None, data=None, priors=None, **fit_args) -> "LMMFit":
        """Refit with some pieces changed, reusing the rest (brms ``update``).

        ``formula`` may use R's dots: ``". ~ . + x"``, ``". ~ . - (1 | item)"``,
        ``"log(y) ~ ."``; ``data``, ``priors`` (None keeps the original
        ones), ``family``/``link``/``weights``/``na_action`` and the
        arguments of :meth:`BayesLMM.fit` (``draws``, ``marginalize``...)
        default to those of this fit. Cost: one new fit.
        """
        if self.origin is None:
            raise ValueError("update needs the data and arguments this fit was made with; a fit loaded from a "
                             "file has none. Fit again with BayesLMM(...).fit().")
        return self.origin(formula=formula, data=data, priors=priors, **fit_args)

    def _row_index(self, newdata):
        if newdata is not None:
            return newdata.index
        return pd.RangeIndex(self.design.n)

    def posterior_predictive(self, random_seed=None):
        """Draw y for the training rows into ``idata``; see :func:`bayeslmm.posterior.predict.posterior_predictive`."""
        return posterior_predictive(self, random_seed=random_seed)

    def log_likelihood(self, **kwargs):
        """Pointwise log-likelihood into ``idata.log_likelihood``; see :func:`bayeslmm.posterior.loglik.log_likelihood`."""
        return log_likelihood(self, **kwargs)

    def loo(self, **kwargs):
        """PSIS-LOO (``az.loo``); see :func:`bayeslmm.posterior.loglik.loo`."""
        return loo(self, **kwargs)

    def save(self, path):
        """Write the fit to a netCDF file, atomically; read it back with :func:`bayeslmm.load`."""
        return store.save(self, path)

    def plot_trace(self, **kwargs):
        """See :func:`bayeslmm.posterior.plots.plot_trace`."""
        return plot_trace(self, **kwargs)

    def plot_rank(self, **kwargs):
        """See :func:`bayeslmm.posterior.plots.plot_rank`."""
        return plot_rank(self, **kwargs)

    def plot_fixef(self, **kwargs):
        """See :func:`bayeslmm.posterior.plots.plot_fixef`."""
        return plot_fixef(self, **kwargs)

    def plot_caterpillar(self, factor, effect="Intercept", **kwargs):
        """See :func:`bayeslmm.posterior.plots.plot_caterpillar`."""
        return plot_caterpillar(self, factor, effect=effect, **kwargs)

    def plot_ppc(self, kind="dens_overlay", **kwargs):
        """Posterior predictive check (brms ``pp_check``); see :func:`bayeslmm.posterior.plots.plot_ppc`."""
        return plot_ppc(self, kind=kind, **kwargs)

    def pp_check(self, kind="dens_overlay", **kwargs):
        """brms ``pp_check(type=kind)``: the same as :meth:`plot_ppc`."""
        return plot_ppc(self, kind=kind, **kwargs)

    # --- end analysis ---

    # --- effects, marginal means, hypotheses (thin wrappers) ---
    def conditional_effects(self, effects=None, conditions=None, re_formula="NA", prob=0.95,
                            method="posterior_epred", resolution=100, robust=True, plot=True, random_seed=None,
                            int_conditions=None, spaghetti=False, ndraws=None):
        """brms ``conditional_effects``; see :func:`bayeslmm.posterior.effects.conditional_effects`."""
        from .effects import conditional_effects

        return conditional_effects(self, effects=effects, conditions=conditions, re_formula=re_formula, prob=prob,
                                   method=method, resolution=resolution, robust=robust, plot=plot,
                                   random_seed=random_seed, int_conditions=int_conditions, spaghetti=spaghetti,
                                   ndraws=ndraws)

    def emmeans(self, specs, by=None, at=None, re_formula="NA", type="response", prob=0.95):
        """Estimated marginal means (emmeans ``emmeans``); see :func:`bayeslmm.posterior.emmeans.emmeans`."""
        from .emmeans import emmeans

        return emmeans(self, specs, by=by, at=at, re_formula=re_formula, type=type, prob=prob)

    def contrasts(self, specs, method="pairwise", by=None, at=None, re_formula="NA", type="response", prob=0.95):
        """Contrasts of marginal means (emmeans ``contrast``); see :func:`bayeslmm.posterior.emmeans.contrasts`."""
        from .emmeans import contrasts

        return contrasts(self, specs, method=method, by=by, at=at, re_formula=re_formula, type=type, prob=prob)

    def hypothesis(self, hypothesis, class_="b", group=None, alpha=0.05, robust=False):
        """brms ``hypothesis``; see :func:`bayeslmm.posterior.hypothesis.hypothesis`."""
        from .hypothesis import hypothesis as _hypothesis

        return _hypothesis(self, hypothesis, class_=class_, group=group, alpha=alpha, robust=robust)

    # --- end effects ---

    def _repr_html_(self):
        """Notebook view: formula, family, data, plan, the brms summary tables, warnings, priors; inherited colours."""
        from .html import facts_html, section_html, wrap_html

        d, post = self.design, self.posterior
        facts = [("Formula", d.spec.formula), ("Family", f"{d.family.name} (link: {d.family.link})"),
                 ("Data", f"{d.n} observations" + (f" ({d.n_dropped} with NaN dropped)" if d.n_dropped else "")
                  + "".join(f"; {b.name}: {b.n_levels} levels" for b in d.blocks)),
                 ("Draws", f"{post.sizes['chain']} chains x {post.sizes['draw']} draws, sampler {self.sampler}"),
                 ("Plan", self.plan.describe())]
        parts = [facts_html("LMMFit", facts), self.summary()._repr_html_()]
        if self.priors is not None:
            parts.append(section_html("Priors", prior_table(self.priors)))
        return wrap_html(parts, "fit")

    def __repr__(self):
        return f"<LMMFit {self.design.spec.formula!r}, {self.plan.label}, {self.sampler}>"
