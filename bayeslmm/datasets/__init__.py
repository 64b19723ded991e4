"""Real and simulated data sets shipped with the package, with lme4 reference fits.

Each data set comes with the model fitted to it in the literature (an lme4
formula that :func:`bayeslmm.model.formula.parse_formula` reads) and with lme4's
estimates for that model, computed once with R (``reference/lme4_reference.R``)
and stored in ``lme4_reference.json`` beside the data. See ``README.md`` in
this folder for sources, citations and licences.

>>> from bayeslmm.datasets import load_dataset, dataset_info, lme4_reference
>>> df = load_dataset("sleepstudy")
>>> info = dataset_info("sleepstudy")
>>> info.formula
'Reaction ~ Days + (Days | Subject)'
>>> round(lme4_reference("sleepstudy")["fixef"]["Days"], 2)
10.47
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["DatasetInfo", "DATASETS", "list_datasets", "load_dataset", "dataset_info", "lme4_reference"]

_BCOGSCI = ("R package bcogsci (Nicenboim, Schad & Vasishth, 2025: bcogsci: Datasets and models for "
            "Introduction to Bayesian Data Analysis for Cognitive Science, R package version 1.0.0, "
            "doi:10.5281/zenodo.15231704), object {obj}")
_BCOGSCI_LICENCE = "MIT (bcogsci; Copyright (c) 2020 Bruno Nicenboim)"
_LME4 = "R package lme4 1.1-31 (Bates, Maechler, Bolker & Walker), data set {obj}"
_LME4_LICENCE = "GPL (>= 2) (lme4)"
_SIM = "simulated by reference/make_simulated.py ({fn}, fixed seed)"


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about one shipped data set.

    ``formula`` is the model used in the literature, in lme4 syntax;
    ``family`` and ``link`` its response distribution ("gaussian" also for
    formulas that log-transform the response). ``groups`` maps each grouping
    factor of the formula (as our parser names it, e.g. ``batch:cask``) to its
    number of levels. ``columns`` are those of :func:`load_dataset`, derived
    columns included. ``truth`` holds the generating values of simulated sets.
    """

    name: str
    file: str
    description: str
    source: str
    citation: str
    licence: str
    rows: int
    columns: tuple[str, ...]
    groups: Mapping[str, int]
    formula: str
    family: str = "gaussian"
    link: str = "identity"
    simulated: bool = False
    truth: Mapping[str, float] | None = None
    derive: Callable[[pd.DataFrame], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        # Read-only views, so that callers cannot alter the registry through the info they get.
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))
        if self.truth is not None:
            object.__setattr__(self, "truth", MappingProxyType(dict(self.truth)))


def _centre(col: str, new: str):
    def derive(df):
        df[new] = df[col] - df[col].mean()
    return derive


def _contrast(col: str, new: str, level: str, hi: float, lo: float):
    def derive(df):
        df[new] = np.where(df[col] == level, hi, lo)
    return derive


def _factors(*cols: str):
    # Columns that lme4 treats as factors in the fixed part (period, YEAR,
    # service) are stored as integer codes; categories sort by value, like R's factor().
    def derive(df):
        for c in cols:
            df[c] = pd.Categorical(df[c])
    return derive


_ENGLISH_DUTCH = "NP1 ~ 1 + condition + (1 + condition | subject) + (1 + condition | item)"

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo(
        "dillonE1", "dillonE1.csv.gz",
        "Eye tracking: total reading times (ms) at the auxiliary verb, high vs low interference, "
        "ungrammatical subject-verb agreement (Experiment 1).",
        _BCOGSCI.format(obj="df_dillonE1"),
        "Dillon, B., Mishler, A., Sloggett, S., & Phillips, C. (2013). Contrasting intrusion profiles for "
        "agreement and anaphora: Experimental and modeling evidence. Journal of Memory and Language, 69(2), 85-103.",
        _BCOGSCI_LICENCE, 2855, ("subj", "item", "rt", "int", "expt", "c_int"), {"subj": 40, "item": 48},
        "log(rt) ~ 1 + c_int + (1 + c_int | subj) + (1 + c_int | item)",
        derive=_contrast("int", "c_int", "low", 0.5, -0.5)),
    DatasetInfo(
        "english", "english.csv.gz",
        "Self-paced reading: log reading times at the NP after the final verb of English double centre "
        "embeddings; condition +1 grammatical, -1 ungrammatical.",
        _BCOGSCI.format(obj="df_english"),
        "Vasishth, S., Suckow, K., Lewis, R. L., & Kern, S. (2010). Short-term forgetting in sentence "
        "comprehension: Crosslinguistic evidence from verb-final structures. Language and Cognitive "
        "Processes, 25(4), 533-567.",
        _BCOGSCI_LICENCE, 768, ("subject", "item", "condition", "NP1"), {"subject": 48, "item": 16},
        _ENGLISH_DUTCH),
    DatasetInfo(
        "dutch", "dutch.csv.gz",
        "Self-paced reading: log reading times at the NP after the final verb of Dutch double centre "
        "embeddings; condition +1 grammatical, -1 ungrammatical.",
        _BCOGSCI.format(obj="df_dutch"),
        "Frank, S. L., Trompenaars, T., & Vasishth, S. (2016). Cross-linguistic differences in processing "
        "double-embedded relative clauses: Working-memory constraints or language statistics? "
        "Cognitive Science, 40(3), 554-578.",
        _BCOGSCI_LICENCE, 372, ("subject", "item", "condition", "NP1"), {"subject": 24, "item": 16},
        _ENGLISH_DUTCH),
    DatasetInfo(
        "pupil", "pupil.csv.gz",
        "Trial-averaged pupil size (arbitrary units) under attentional load 0-5 in a multiple object "
        "tracking task (control experiment).",
        _BCOGSCI.format(obj="df_pupil_complete"),
        "Wahn, B., Ferris, D. P., Hairston, W. D., & Koenig, P. (2016). Pupil sizes scale with attentional "
        "load and task experience in a multiple object tracking task. PLOS ONE, 11(12), e0168087.",
        _BCOGSCI_LICENCE, 2228, ("subj", "trial", "load", "p_size", "c_load"), {"subj": 20},
        "p_size ~ 1 + c_load + (1 + c_load | subj)", derive=_centre("load", "c_load")),
    DatasetInfo(
        "stroop", "stroop.csv.gz",
        "Stroop task: reaction times (ms) of correct answers of 50 participants, congruent vs incongruent.",
        _BCOGSCI.format(obj="df_stroop"),
        "Ebersole, C. R., et al. (2016). Many Labs 3: Evaluating participant pool quality across the "
        "academic semester via replication. Journal of Experimental Social Psychology, 67, 68-82.",
        _BCOGSCI_LICENCE, 3058, ("subj", "trial", "condition", "RT", "c_cond"), {"subj": 50},
        "log(RT) ~ 1 + c_cond + (1 + c_cond | subj)",
        derive=_contrast("condition", "c_cond", "Incongruent", 1.0, -1.0)),
    DatasetInfo(
        "eeg", "eeg.csv.gz",
        "EEG: average N400 amplitude (microvolts) at the noun, with the noun's cloze probability "
        "(one lab, Edinburgh).",
        _BCOGSCI.format(obj="df_eeg"),
        "Nieuwland, M. S., et al. (2018). Large-scale replication study reveals a limit on probabilistic "
        "prediction in language comprehension. eLife, 7, e33468.",
        _BCOGSCI_LICENCE, 2863, ("subj", "cloze", "item", "n400", "cloze_ans", "N", "c_cloze"),
        {"subj": 37, "item": 80},
        "n400 ~ 1 + c_cloze + (1 + c_cloze | subj) + (1 + c_cloze | item)", derive=_centre("cloze", "c_cloze")),
    DatasetInfo(
        "grouseticks", "grouseticks.csv.gz",
        "Ticks on the heads of red grouse chicks; YEAR as a number (95-97), cHEIGHT = altitude (m) centred.",
        _LME4.format(obj="grouseticks"),
        "Elston, D. A., Moss, R., Boulinier, T., Arrowsmith, C., & Lambin, X. (2001). Analysis of "
        "aggregation, a worked example: numbers of ticks on red grouse chicks. Parasitology, 122(5), 563-569.",
        _LME4_LICENCE, 403, ("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT"),
        {"BROOD": 118, "LOCATION": 63},
        "log(TICKS + 1) ~ 1 + YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"),
    DatasetInfo(
        "grouseticks_poisson", "grouseticks.csv.gz",
        "The grouseticks data (same file) for the Poisson GLMM of the raw counts; YEAR a factor "
        "(categorical 95, 96, 97).",
        _LME4.format(obj="grouseticks"),
        "Elston, D. A., Moss, R., Boulinier, T., Arrowsmith, C., & Lambin, X. (2001). Analysis of "
        "aggregation, a worked example: numbers of ticks on red grouse chicks. Parasitology, 122(5), 563-569.",
        _LME4_LICENCE, 403, ("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION", "cHEIGHT"),
        {"BROOD": 118, "LOCATION": 63},
        "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", family="poisson", link="log",
        derive=_factors("YEAR")),
    DatasetInfo(
        "cbpp", "cbpp.csv.gz",
        "Contagious bovine pleuropneumonia in zebu cattle: new serological cases (incidence) out of size "
        "animals, per herd and period (a factor 1-4).",
        _LME4.format(obj="cbpp"),
        "Lesnoff, M., Laval, G., Bonnet, P., et al. (2004). Within-herd spread of contagious bovine "
        "pleuropneumonia in Ethiopian highlands. Preventive Veterinary Medicine, 64, 27-40.",
        _LME4_LICENCE, 56, ("herd", "incidence", "size", "period"), {"herd": 15},
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", family="binomial", link="logit",
        derive=_factors("period")),
    DatasetInfo(
        "Pastes", "Pastes.csv.gz",
        "Strength of a chemical paste: two assays per cask, three casks per delivery batch (nested).",
        _LME4.format(obj="Pastes"),
        "Davies, O. L., & Goldsmith, P. L. (eds) (1972). Statistical Methods in Research and Production, "
        "4th ed. Oliver and Boyd, section 6.5.",
        _LME4_LICENCE, 60, ("strength", "batch", "cask", "sample"), {"batch": 10, "batch:cask": 30},
        "strength ~ 1 + (1 | batch/cask)"),
    DatasetInfo(
        "sleepstudy", "sleepstudy.csv.gz",
        "Average reaction time (ms) per day of sleep deprivation (3 h time in bed), days 0-9.",
        _LME4.format(obj="sleepstudy"),
        "Belenky, G., Wesensten, N. J., Thorne, D. R., et al. (2003). Patterns of performance degradation "
        "and restoration during sleep restriction and subsequent recovery: a sleep dose-response study. "
        "Journal of Sleep Research, 12, 1-12.",
        _LME4_LICENCE, 180, ("Reaction", "Days", "Subject"), {"Subject": 18},
        "Reaction ~ Days + (Days | Subject)"),
    DatasetInfo(
        "InstEval", "InstEval.csv.gz",
        "ETH Zurich lecture evaluations: rating y (1-5) of lecturer d by student s; dept of the lecture; "
        "service (factor 0/1) = held for another department. Columns studage and lectage are not shipped.",
        _LME4.format(obj="InstEval"),
        "Anonymized ETH Zurich lecture evaluations, as distributed with lme4 (Bates, D., Maechler, M., "
        "Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models using lme4. Journal of "
        "Statistical Software, 67(1), 1-48).",
        _LME4_LICENCE, 73421, ("s", "d", "dept", "service", "y"), {"s": 2972, "d": 1128, "dept:service": 28},
        "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", derive=_factors("service")),
    DatasetInfo(
        "sim_bernoulli", "sim_bernoulli.csv.gz",
        "Simulated crossed binary responses: 300 subjects x 30 items, each subject sees 20 random items, "
        "cond = +-0.5 (10 items each).",
        _SIM.format(fn="simulate_bernoulli"), "Simulated for bayeslmm; no publication.",
        "MIT (bayeslmm)", 6000, ("subj", "item", "cond", "correct"), {"subj": 300, "item": 30},
        "correct ~ 1 + cond + (1 + cond | subj) + (1 | item)", family="bernoulli", link="logit",
        simulated=True,
        truth={"Intercept": 0.5, "cond": 0.6, "sd_subj_Intercept": 0.8, "sd_subj_cond": 0.4,
               "cor_subj": 0.3, "sd_item_Intercept": 0.6}),
    DatasetInfo(
        "sim_student", "sim_student.csv.gz",
        "Simulated heavy-tailed reaction times (ms): 40 subjects x 40 trials, cond alternating +-0.5, "
        "Student-t noise with 4 degrees of freedom.",
        _SIM.format(fn="simulate_student"), "Simulated for bayeslmm; no publication.",
        "MIT (bayeslmm)", 1600, ("subj", "trial", "cond", "rt"), {"subj": 40},
        "rt ~ 1 + cond + (1 | subj)", family="student", simulated=True,
        truth={"Intercept": 600.0, "cond": 40.0, "sd_subj_Intercept": 80.0, "sigma": 50.0, "nu": 4.0}),
]}


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown data set {name!r}; valid names are: {', '.join(DATASETS)}.") from None


def list_datasets() -> list[str]:
    """Names of the shipped data sets, in registry order."""
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Source, citation, licence, size, grouping factors and literature model of a data set."""
    return _info(name)


def load_dataset(name: str) -> pd.DataFrame:
    """A fresh DataFrame of the data set, with the derived columns its formula uses."""
    info = _info(name)
    with resources.files(__name__).joinpath(info.file).open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip")
    if info.derive is not None:
        info.derive(df)
    return df


@cache
def _references() -> dict:
    return json.loads(resources.files(__name__).joinpath("lme4_reference.json").read_text())


def lme4_reference(name: str) -> dict:
    """lme4's estimates for the data set's literature model (a fresh copy).

    Keys: fixef and fixef_se (by lme4 term name, e.g. "(Intercept)",
    "period2"), varcorr (list of {grp, var1[, var2], vcov, sdcor}; sdcor is
    the SD, or for rows with var2 the correlation, None where an SD is 0),
    sigma (Gaussian and Student-t), singular, nobs, ngrps, logLik, method
    (REML or ML), family, link, software, converged, messages (lme4's, such as
    a singular fit), warnings (R's, during the fit), formula, and for some sets
    variants (the same model with another link or family, same layout).
    sim_student's is glmmTMB's Student-t fit, with nu (degrees of freedom).
    """
    _info(name)
    return copy.deepcopy(_references()[name])
