"""Time and memory of building the design for lme4's InstEval model.

73,421 rows; 2,972 students, 1,128 lecturers, 28 department-by-service levels (intercepts).
The design stores one group index and an N x d value matrix per factor; a
dense Z would be 73,421 x 4,128 doubles (2.4 GB). Writes results/design.json.

    python benchmarks/bench_design.py
"""

import time
import tracemalloc

from _common import print_table, write_json
from registry import load

from bayeslmm import BayesLMM


def main():
    data, formula, _ = load("InstEval")
    tracemalloc.start()
    t0 = time.perf_counter()
    model = BayesLMM(formula, data)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    d = model.design
    stored = d.X.nbytes + d.y.nbytes + sum(b.group_index.nbytes + b.values.nbytes for b in d.blocks)
    levels = sum(b.n_levels for b in d.blocks)
    row = {"rows": d.n, "levels": levels, "build_s": secs, "peak_alloc_mb": peak / 2**20,
           "design_mb": stored / 2**20, "dense_Z_mb": d.n * levels * 8 / 2**20}
    print_table([row], list(row))
    print("wrote", write_json([row], "design.json"))


if __name__ == "__main__":
    main()
