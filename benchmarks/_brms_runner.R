# One brms fit (rstan backend), run by benchmarks/peers.py in its own process.
#
#     Rscript benchmarks/_brms_runner.R SPEC.json RESULT.json
#
# SPEC (JSON): data (CSV path), formula (lme4/brms syntax, correlated `|` or
# uncorrelated `||`; a binomial response as `s | trials(n)`), family (gaussian,
# bernoulli, binomial or poisson with brms's default links: identity, logit,
# logit, log; default gaussian), groups (grouping columns, read as factors), chains,
# tune, draws, seed, target_accept, and priors: bayeslmm's resolved priors as
# a list of {cls, group, coef, dist, args}, set here as explicit brms priors.
#
# RESULT (JSON), the same keys as the Python runners: wall_s (brm() call:
# Stan code generation, C++ compilation and sampling), compile_s (time before
# sampling started), sampling_s (warmup + sampling of the slowest chain, from
# rstan's get_elapsed_time; chains run in parallel), min_bulk_ess and max_rhat
# (posterior::ess_bulk and posterior::rhat, the same rank-normalised
# definitions ArviZ uses) over every parameter b_, sd_, cor_, sigma and r_,
# divergences, n_grad (n_leapfrog__ summed over the post-warm-up draws of every
# chain), the R process's own peak RSS (VmHWM), and 95% intervals of the
# fixed effects, SDs and sigma under canonical names (b[x], sd[g,x], sigma).

suppressPackageStartupMessages({
  library(jsonlite)
  library(brms)
  library(posterior)
})

# Debian's r-cran-bh is a virtual package (Boost lives in /usr/include/boost), so rstan's
# default boost_lib (BH's include folder) does not exist: point rstan at a folder holding a
# `boost` link. Not /usr/include itself: -I/usr/include breaks the compiler's #include_next.
if (!file.exists(rstan::rstan_options("boost_lib")) && dir.exists("/usr/include/boost")) {
  boost_dir <- file.path(tempdir(), "boost_include")
  dir.create(boost_dir, showWarnings = FALSE)
  file.symlink("/usr/include/boost", file.path(boost_dir, "boost"))
  invisible(rstan::rstan_options(boost_lib = boost_dir))
}

args <- commandArgs(trailingOnly = TRUE)
spec <- fromJSON(args[1], simplifyVector = FALSE)
out_path <- args[2]

vm_hwm_mb <- function() {
  st <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  line <- grep("^VmHWM:", st, value = TRUE)
  if (length(line) == 0) return(NA_real_)
  as.numeric(gsub("[^0-9]", "", line)) / 1024
}

num <- function(x) format(x, digits = 10, scientific = FALSE)

# bayeslmm's prior (dist, args) -> a Stan/brms prior string. SDs and sigma are
# bounded below by 0 in brms, so student_t(nu, 0, s) there is the half-t.
stan_prior <- function(dist, a) {
  a <- unlist(a)
  switch(dist,
    normal = sprintf("normal(%s, %s)", num(a[1]), num(a[2])),
    student_t = sprintf("student_t(%s, %s, %s)", num(a[1]), num(a[2]), num(a[3])),
    half_student_t = sprintf("student_t(%s, 0, %s)", num(a[1]), num(a[2])),
    half_normal = sprintf("normal(0, %s)", num(a[1])),
    half_cauchy = sprintf("cauchy(0, %s)", num(a[1])),
    cauchy = sprintf("cauchy(%s, %s)", num(a[1]), num(a[2])),
    exponential = sprintf("exponential(%s)", num(a[1])),
    lkj = sprintf("lkj(%s)", num(a[1])),
    flat = "",
    stop("no brms translation for prior ", dist))
}

build_priors <- function(priors) {
  out <- NULL
  for (p in priors) {
    txt <- stan_prior(p$dist, p$args)
    if (txt == "") next
    coef <- if (is.null(p$coef) || p$cls == "Intercept") "" else p$coef
    group <- if (is.null(p$group)) "" else p$group
    pr <- set_prior(txt, class = p$cls, coef = coef, group = group)
    out <- if (is.null(out)) pr else out + pr
  }
  out
}

res <- tryCatch({
  data <- read.csv(spec$data, stringsAsFactors = FALSE)
  for (g in unlist(spec$groups)) data[[g]] <- factor(as.character(data[[g]]))
  priors <- build_priors(spec$priors)
  fam <- if (is.null(spec$family)) "gaussian" else spec$family
  family <- switch(fam, gaussian = gaussian(), bernoulli = bernoulli(), binomial = binomial(),
                   poisson = poisson(), stop("no brms family for ", fam))
  t0 <- Sys.time()
  fit <- suppressWarnings(suppressMessages(brm(
    as.formula(spec$formula), data = data, family = family, prior = priors,
    chains = spec$chains, cores = min(spec$chains, parallel::detectCores()),
    iter = spec$tune + spec$draws, warmup = spec$tune, seed = spec$seed,
    control = list(adapt_delta = spec$target_accept), refresh = 0, silent = 2,
    backend = "rstan")))
  wall <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  el <- rstan::get_elapsed_time(fit$fit)
  sampling <- max(rowSums(el))
  draws <- as_draws_array(fit)
  keep <- grep("^(b_|sd_|cor_|sigma$|r_)", variables(draws), value = TRUE)
  draws <- subset_draws(draws, variable = keep)
  ess <- sapply(keep, function(v) ess_bulk(extract_variable_matrix(draws, v)))
  rh <- sapply(keep, function(v) rhat(extract_variable_matrix(draws, v)))
  np <- nuts_params(fit)
  div <- sum(np$Value[np$Parameter == "divergent__"])
  n_grad <- sum(np$Value[np$Parameter == "n_leapfrog__"])
  iv <- list()
  groups <- unlist(spec$groups)
  for (v in keep) {
    canon <- NULL
    if (v == "sigma") canon <- "sigma"
    else if (startsWith(v, "b_")) canon <- sprintf("b[%s]", sub("^b_", "", v))
    else if (startsWith(v, "sd_")) {
      rest <- sub("^sd_", "", v)
      for (g in groups) if (startsWith(rest, paste0(g, "__"))) {
        canon <- sprintf("sd[%s,%s]", g, sub(paste0("^", g, "__"), "", rest))
      }
    }
    if (!is.null(canon)) {
      x <- as.vector(extract_variable_matrix(draws, v))
      iv[[canon]] <- unname(quantile(x, c(0.025, 0.975)))
    }
  }
  list(wall_s = wall, sampling_s = sampling, compile_s = wall - sampling,
       min_bulk_ess = min(ess, na.rm = TRUE), max_rhat = max(rh, na.rm = TRUE),
       divergences = div, n_grad = n_grad, intervals = iv, n_parameters = length(keep),
       versions = list(brms = as.character(packageVersion("brms")),
                       rstan = as.character(packageVersion("rstan")),
                       R = paste(R.version$major, R.version$minor, sep = ".")))
}, error = function(e) list(error = paste("brms:", conditionMessage(e))))

res$self_peak_rss_mb <- vm_hwm_mb()
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, na = "null"), out_path)
