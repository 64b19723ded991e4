# Writes lme4's example data sets as gzipped CSVs into bayeslmm/datasets/.
# Run once from the repository root: Rscript reference/export_lme4_data.R
# (Debian: apt-get install r-cran-lme4). The files are committed; CI never runs this.
suppressPackageStartupMessages(library(lme4))

out_dir <- file.path("bayeslmm", "datasets")

write_gz <- function(df, name) {
  path <- file.path(out_dir, paste0(name, ".csv"))
  write.csv(df, path, row.names = FALSE, quote = FALSE)
  # -n: no name or timestamp in the header, so reruns give identical bytes
  system2("gzip", c("-9", "-n", "-f", shQuote(path)))
  cat(sprintf("%-12s %6d rows -> %s.gz\n", name, nrow(df), path))
}

write_gz(cbpp, "cbpp")
write_gz(Pastes, "Pastes")
write_gz(sleepstudy, "sleepstudy")
# Only the columns of the model fitted in the literature; factor labels are
# integers already, so the CSV holds integer codes.
write_gz(InstEval[, c("s", "d", "dept", "service", "y")], "InstEval")
