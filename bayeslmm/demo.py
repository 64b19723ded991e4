"""``python -m bayeslmm.demo``: fit simulated crossed subjects x items data and print the summary."""

from __future__ import annotations

import argparse

from . import BayesLMM
from .simulate import simulate_crossed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--marginalize", default="auto")
    args = ap.parse_args(argv)
    data, truth = simulate_crossed(n_subj=30, n_item=20, seed=1)
    print(f"Simulated {len(data)} rows: 30 subjects x 20 items; true fixef {truth['fixef']}")
    model = BayesLMM("y ~ cond + (cond | subj) + (cond | item)", data)
    print(model.get_priors().to_string())
    fit = model.fit(draws=args.draws, tune=args.draws, chains=args.chains, random_seed=1,
                    marginalize=args.marginalize)
    print(fit.summary())
    print(f"\nTimings (s): { {k: round(v, 1) for k, v in fit.timings.items()} }")
    return fit


if __name__ == "__main__":
    main()
