# lme4 (and glmmTMB) estimates for the model of each data set shipped in
# bayeslmm/datasets/, written to bayeslmm/datasets/lme4_reference.json.
#
# Run once from the repository root:  Rscript reference/lme4_reference.R
# Debian: apt-get install r-cran-lme4 r-cran-glmmtmb r-cran-jsonlite
# The JSON is committed; CI never needs R. The formulas here must equal the
# registry's in bayeslmm/datasets/__init__.py (tests/test_datasets.py checks).
#
# Gaussian models: lmer, REML. Binomial, Poisson and Bernoulli: glmer, Laplace
# (nAGQ = 1). Student-t: glmmTMB's t_family, maximum likelihood (lme4 has no
# t family), with lmer REML on the same data as a variant.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
has_tmb <- requireNamespace("glmmTMB", quietly = TRUE)

data_dir <- file.path("bayeslmm", "datasets")
out_file <- file.path(data_dir, "lme4_reference.json")

# Derived columns: the same as load_dataset() adds in Python.
read_set <- function(file, factors = character(), derive = identity) {
  df <- read.csv(file.path(data_dir, file), stringsAsFactors = FALSE)
  for (f in factors) df[[f]] <- factor(df[[f]])
  derive(df)
}

specs <- list(
  dillonE1 = list(file = "dillonE1.csv.gz",
                  formula = "log(rt) ~ 1 + c_int + (1 + c_int | subj) + (1 + c_int | item)",
                  derive = function(d) transform(d, c_int = ifelse(int == "low", 0.5, -0.5))),
  english = list(file = "english.csv.gz",
                 formula = "NP1 ~ 1 + condition + (1 + condition | subject) + (1 + condition | item)"),
  dutch = list(file = "dutch.csv.gz",
               formula = "NP1 ~ 1 + condition + (1 + condition | subject) + (1 + condition | item)"),
  pupil = list(file = "pupil.csv.gz", formula = "p_size ~ 1 + c_load + (1 + c_load | subj)",
               derive = function(d) transform(d, c_load = load - mean(load))),
  stroop = list(file = "stroop.csv.gz", formula = "log(RT) ~ 1 + c_cond + (1 + c_cond | subj)",
                derive = function(d) transform(d, c_cond = ifelse(condition == "Incongruent", 1, -1))),
  eeg = list(file = "eeg.csv.gz", formula = "n400 ~ 1 + c_cloze + (1 + c_cloze | subj) + (1 + c_cloze | item)",
             derive = function(d) transform(d, c_cloze = cloze - mean(cloze))),
  grouseticks = list(file = "grouseticks.csv.gz",
                     formula = "log(TICKS + 1) ~ 1 + YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"),
  grouseticks_poisson = list(file = "grouseticks.csv.gz", factors = "YEAR", family = "poisson",
                             formula = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"),
  cbpp = list(file = "cbpp.csv.gz", factors = "period", family = "binomial",
              formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
              variants = list(probit = list(link = "probit"))),
  Pastes = list(file = "Pastes.csv.gz", factors = c("batch", "cask"),
                formula = "strength ~ 1 + (1 | batch/cask)"),
  sleepstudy = list(file = "sleepstudy.csv.gz", formula = "Reaction ~ Days + (Days | Subject)"),
  InstEval = list(file = "InstEval.csv.gz", factors = c("s", "d", "dept", "service"),
                  formula = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"),
  sim_bernoulli = list(file = "sim_bernoulli.csv.gz", family = "binomial",
                       formula = "correct ~ 1 + cond + (1 + cond | subj) + (1 | item)"),
  sim_student = list(file = "sim_student.csv.gz", family = "student",
                     formula = "rt ~ 1 + cond + (1 | subj)",
                     variants = list(lmer_gaussian = list(family = "gaussian")))
)

# Variance components as in as.data.frame(VarCorr(.)) of lme4: per group its
# variances, then its covariances (sdcor: the correlation, null where an SD is
# 0); var2 only for those.
varcorr_rows <- function(vc) {
  rows <- list()
  for (g in names(vc)) {
    S <- as.matrix(vc[[g]])
    g_name <- sub("\\.[0-9]+$", "", g)  # lme4 suffixes repeated factor names (.1)
    nm <- colnames(S)
    for (i in seq_along(nm))
      rows[[length(rows) + 1]] <- list(grp = g_name, var1 = nm[i], vcov = S[i, i], sdcor = sqrt(S[i, i]))
    if (length(nm) > 1) for (i in 1:(length(nm) - 1)) for (j in (i + 1):length(nm))
      rows[[length(rows) + 1]] <- list(grp = g_name, var1 = nm[i], var2 = nm[j], vcov = S[i, j],
                                       sdcor = S[i, j] / sqrt(S[i, i] * S[j, j]))
  }
  rows
}

named <- function(x) as.list(setNames(as.numeric(x), names(x)))

fit_one <- function(df, formula, family, link) {
  f <- as.formula(formula)
  t0 <- proc.time()[["elapsed"]]
  warn <- character()
  fit <- withCallingHandlers(suppressMessages(
    if (family == "gaussian") {
      lmer(f, data = df, REML = TRUE)
    } else if (family == "student") {
      glmmTMB::glmmTMB(f, data = df, family = glmmTMB::t_family(link = link), REML = FALSE)
    } else {
      glmer(f, data = df, family = get(family)(link = link), nAGQ = 1)
    }),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  if (family == "student") {
    fe <- glmmTMB::fixef(fit)$cond
    out <- list(fixef = named(fe), fixef_se = named(sqrt(diag(vcov(fit)$cond))),
                varcorr = varcorr_rows(glmmTMB::VarCorr(fit)$cond),
                sigma = sigma(fit), nu = unname(glmmTMB::family_params(fit)[["Student-t df"]]),
                singular = any(sapply(glmmTMB::VarCorr(fit)$cond, function(S) any(diag(as.matrix(S)) < 1e-8))),
                nobs = nobs(fit), ngrps = as.list(sapply(fit$modelInfo$reTrms$cond$flist, nlevels)),
                logLik = as.numeric(logLik(fit)), method = "ML (Laplace)",
                software = paste("glmmTMB", packageVersion("glmmTMB")),
                converged = fit$fit$convergence == 0 && fit$sdr$pdHess, messages = list())
  } else {
    vc <- VarCorr(fit)
    out <- list(fixef = named(fixef(fit)), fixef_se = named(sqrt(diag(as.matrix(vcov(fit))))),
                varcorr = varcorr_rows(vc))
    if (family == "gaussian") {
      s <- sigma(fit)
      out$varcorr[[length(out$varcorr) + 1]] <- list(grp = "Residual", vcov = s^2, sdcor = s)
      out$sigma <- s
    }
    msgs <- as.character(fit@optinfo$conv$lme4$messages)
    out <- c(out, list(singular = isSingular(fit), nobs = nobs(fit), ngrps = as.list(ngrps(fit)),
                       logLik = as.numeric(logLik(fit)),
                       method = if (family == "gaussian") "REML" else "ML (Laplace, nAGQ = 1)",
                       software = paste("lme4", packageVersion("lme4")),
                       # a singular fit has converged; lme4 lists it among its messages all the same
                       converged = fit@optinfo$conv$opt == 0 && all(grepl("singular", msgs)),
                       messages = as.list(msgs)))
  }
  out$family <- family
  out$link <- link
  out$formula <- formula
  out$warnings <- as.list(unique(warn))
  attr(out, "seconds") <- proc.time()[["elapsed"]] - t0  # printed, not stored: reruns give the same JSON
  out
}

default_link <- c(gaussian = "identity", student = "identity", binomial = "logit", poisson = "log")

result <- list()
for (name in names(specs)) {
  s <- specs[[name]]
  family <- if (is.null(s$family)) "gaussian" else s$family
  if (family == "student" && !has_tmb) {
    result[[name]] <- list(formula = s$formula, family = family, fixef = NULL,
                           note = "no R reference: glmmTMB not installed")
    next
  }
  df <- read_set(s$file, if (is.null(s$factors)) character() else s$factors,
                 if (is.null(s$derive)) identity else s$derive)
  res <- fit_one(df, s$formula, family, default_link[[family]])
  for (v in names(s$variants)) {
    vs <- s$variants[[v]]
    vf <- if (is.null(vs$family)) family else vs$family
    res$variants[[v]] <- fit_one(df, s$formula, vf, if (is.null(vs$link)) default_link[[vf]] else vs$link)
  }
  result[[name]] <- res
  cat(sprintf("%-20s %6d rows  %6.2f s  singular=%s\n", name, res$nobs, attr(res, "seconds"), res$singular))
}
result[["_meta"]] <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                          glmmTMB = if (has_tmb) as.character(packageVersion("glmmTMB")) else NULL,
                          Matrix = as.character(packageVersion("Matrix")),
                          script = "reference/lme4_reference.R")

writeLines(toJSON(result, auto_unbox = TRUE, digits = I(11), pretty = TRUE, null = "null", na = "null"), out_file)
cat("wrote", out_file, "\n")
