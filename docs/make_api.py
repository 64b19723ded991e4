"""Write docs/api.md from the docstrings of the public API: ``python docs/make_api.py``.

tests/test_docs.py fails when docs/api.md is out of date.
"""

import inspect
from pathlib import Path

import bayeslmm
from bayeslmm import io, loglik, plan, plots, predict, priors, results
from bayeslmm import datasets, lkj, ops

SECTIONS = [
    ("Model", [bayeslmm.BayesLMM, priors.Prior]),
    ("Fit", [results.LMMFit, results.FitSummary]),
    ("Marginalization plan", [plan.resolve_plan, plan.MarginalizationPlan, plan.grad_seconds,
                              plan.level_information, plan.grads_per_draw_factor, plan.plan_cost]),
    ("LKJ correlations (sampled apart from the SDs)", [lkj.CPCTransform, lkj.corr_cholesky, lkj.cholesky_of_corr]),
    ("Predictions", [predict.predict, predict.posterior_predictive, predict.prior_predictive]),
    ("Log-likelihood and LOO", [loglik.log_likelihood, loglik.loo]),
    ("Plots", [getattr(plots, n) for n in sorted(dir(plots)) if n.startswith("plot_")]),
    ("Save and load", [io.save, io.load]),
    ("Data sets", [datasets.list_datasets, datasets.load_dataset, datasets.dataset_info, datasets.DatasetInfo,
                   datasets.lme4_reference]),
    ("Marginal log-density (ops)", [ops.MarginalData, ops.FactorData, ops.marginal_logp, ops.recover_batch,
                                    ops.conditional_mean, ops.MarginalGaussianLogp, ops.marginal_loglik]),
]


def _entry(obj, prefix="", level="###"):
    name = prefix + obj.__name__
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = ""
    doc = inspect.getdoc(obj) or "(no docstring)"
    out = [f"{level} `{name}{sig if not inspect.isclass(obj) else ''}`", "", "```text", doc, "```", ""]
    if inspect.isclass(obj):
        for mname, m in inspect.getmembers(obj):
            if mname.startswith("_") or not (inspect.isfunction(m) or isinstance(m, property)):
                continue
            if inspect.isfunction(m) and m.__qualname__.split(".")[0] != obj.__name__:
                continue
            fn = m.fget if isinstance(m, property) else m
            out += _entry(fn, f"{obj.__name__}.", "####")
    return out


def render() -> str:
    lines = ["# API reference", "", "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.", ""]
    for title, objs in SECTIONS:
        lines += [f"## {title}", ""]
        for obj in objs:
            lines += _entry(obj)
    return "\n".join(lines)


if __name__ == "__main__":
    Path(__file__).with_name("api.md").write_text(render())
    print("wrote docs/api.md")
