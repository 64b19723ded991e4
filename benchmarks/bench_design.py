"""Time and memory of building the design for an InstEval-shaped data set.

73,421 rows; 2,972 students, 1,128 lecturers, 14 departments (intercepts).
The design stores one group index and an N x d value matrix per factor; a
dense Z would be 73,421 x 4,114 doubles (2.4 GB). Writes results/design.json.

    python benchmarks/bench_design.py
"""

import time
import tracemalloc

from _common import print_table, simulate_insteval_shaped, write_json

from bayeslmm import BayesLMM


def main():
    data, _ = simulate_insteval_shaped(seed=4)
    tracemalloc.start()
    t0 = time.perf_counter()
    model = BayesLMM("y ~ 1 + (1 | s) + (1 | d) + (1 | dept)", data)
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
