"""Response families: one place per family for its name, links, response checks and parameters.

``gaussian`` and ``lognormal`` are Gaussian on some scale, which is what makes
the random effects integrable in closed form: ``lognormal`` models log(y) as
Gaussian, its log-likelihood of the original y adding the Jacobian
-sum(log y). The other families (``bernoulli``, ``binomial``, ``poisson``,
``negbinomial``, ``student``, brms names and parametrizations) are fitted with
every group-level effect sampled (``marginalize="none"``): their likelihood is
not Gaussian in the effects, so no closed-form integral exists.

Each family names its auxiliary parameters (brms classes: ``sigma``,
``shape``, ``nu``); :mod:`bayeslmm.model.priors` gives them their default
priors, :mod:`bayeslmm.pymc_model.builder` the likelihood, and
:mod:`bayeslmm.posterior.loglik` / :mod:`bayeslmm.posterior.predict` the
pointwise density and the response-scale mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Family", "get_family", "FAMILIES"]


@dataclass(frozen=True)
class Family:
    """A response family with its link.

    ``gaussian``: True when the likelihood is Gaussian on the model scale
    (exact marginalization possible); ``aux``: the family's own parameters
    (brms classes); ``links``: the links it accepts, the first the default;
    ``counts``: the response must be non-negative integers; ``trials``: the
    response has a number of trials (binomial).
    """

    name: str
    log_scale: bool = False  # True: the Gaussian model is for log(y)
    link: str = "identity"
    links: tuple = ("identity",)
    gaussian: bool = True
    aux: tuple = ("sigma",)
    counts: bool = False
    trials: bool = False

    def to_model_scale(self, y: np.ndarray) -> np.ndarray:
        if not self.log_scale:
            return y
        if np.any(y <= 0):
            raise ValueError(
                f"family='lognormal' needs a strictly positive response; {int(np.sum(y <= 0))} values are <= 0."
            )
        return np.log(y)

    def log_jacobian(self, y_original: np.ndarray) -> float:
        """log |d model_scale / d y| summed over rows: -sum(log y) for lognormal."""
        return -float(np.sum(np.log(y_original))) if self.log_scale else 0.0

    def from_model_scale(self, x):
        return np.exp(x) if self.log_scale else x

    def with_link(self, link) -> "Family":
        if link is None:
            return self
        if not isinstance(link, str) or link not in self.links:
            raise ValueError(
                f"family={self.name!r} does not take link={link!r}; its links are: {', '.join(self.links)}."
            )
        return Family(self.name, self.log_scale, link, self.links, self.gaussian, self.aux, self.counts, self.trials)

    def check_response(self, y: np.ndarray, name: str, trials: np.ndarray | None = None) -> None:
        """Raise ValueError for response values the family cannot have (before anything compiles)."""
        y = np.asarray(y, dtype=float)
        if self.name == "bernoulli":
            bad = ~np.isin(y, (0.0, 1.0))
            if bad.any():
                raise ValueError(
                    f"family='bernoulli' needs a response of 0s and 1s; {name!r} has {int(bad.sum())} other "
                    f"value(s), e.g. {float(y[bad][0])!r}. For counts of successes out of n use family='binomial' "
                    "with 'successes | trials(n) ~ ...' or 'cbind(successes, failures) ~ ...'."
                )
        if self.counts:
            if np.any(y < 0):
                raise ValueError(
                    f"family={self.name!r} needs non-negative counts; {name!r} has {int(np.sum(y < 0))} negative "
                    f"value(s), e.g. {float(y[y < 0][0])!r}."
                )
            frac = y != np.round(y)
            if frac.any():
                raise ValueError(
                    f"family={self.name!r} needs integer counts; {name!r} has {int(frac.sum())} non-integer "
                    f"value(s), e.g. {float(y[frac][0])!r}."
                )
        if self.trials:
            if trials is None:
                raise ValueError(
                    "family='binomial' needs the number of trials: write 'successes | trials(n) ~ ...' (brms) "
                    "or 'cbind(successes, failures) ~ ...' (lme4)."
                )
            t = np.asarray(trials, dtype=float)
            if np.any(t != np.round(t)) or np.any(t < 0):
                bad = (t != np.round(t)) | (t < 0)
                raise ValueError(
                    f"family='binomial' needs non-negative integer trials; {int(bad.sum())} row(s) have e.g. "
                    f"{float(t[bad][0])!r} (with cbind(s, f), a negative number of failures)."
                )
            over = y > t
            if over.any():
                i = int(np.argmax(over))
                raise ValueError(
                    f"family='binomial': successes exceed trials in {int(over.sum())} row(s), e.g. row {i}: "
                    f"{float(y[i])!r} successes out of {float(t[i])!r} trials."
                )
        elif trials is not None:
            raise ValueError(
                f"trials()/cbind() give a number of trials, which only family='binomial' uses (got family={self.name!r})."
            )


FAMILIES = {
    "gaussian": Family("gaussian"),
    "lognormal": Family("lognormal", log_scale=True),
    "student": Family("student", gaussian=False, aux=("sigma", "nu")),
    "bernoulli": Family("bernoulli", link="logit", links=("logit", "probit"), gaussian=False, aux=()),
    "binomial": Family("binomial", link="logit", links=("logit", "probit"), gaussian=False, aux=(),
                       counts=True, trials=True),
    "poisson": Family("poisson", link="log", links=("log",), gaussian=False, aux=(), counts=True),
    "negbinomial": Family("negbinomial", link="log", links=("log",), gaussian=False, aux=("shape",), counts=True),
}


def get_family(name, link=None) -> Family:
    """The :class:`Family` called ``name`` (brms names), with ``link`` (None: the family's default)."""
    if isinstance(name, Family):
        return name.with_link(link)
    if not isinstance(name, str) or name.lower() not in FAMILIES:
        raise ValueError(f"Unknown family {name!r}; supported families are: {', '.join(FAMILIES)}.")
    return FAMILIES[name.lower()].with_link(link)
