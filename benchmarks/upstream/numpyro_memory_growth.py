"""Reproducer, without bayeslmm or PyMC, for the memory growth of long NumPyro runs on the CPU.

    python benchmarks/upstream/numpyro_memory_growth.py [--rows N] [--chains C] [--iters K] [--method M]

A 2,972-dimensional Gaussian potential whose gradient gathers and scatters
over N rows through constant integer indices (the shape of the
InstEval model's sampled student effects), sampled by NumPyro's NUTS
with C chains ("parallel": one XLA host device per chain, as PyMC runs them;
"threads": one single-chain MCMC per device, each in its own Python thread).
Prints the resident set size every 4 s and the growth rate while sampling;
writes nothing else.

Measured on the 2-core benchmark CPU (JAX 0.10.2, NumPyro 0.22.0), K = 6,000
warmup + 6,000 draws: 2 parallel chains, N = 73,421 rows: +32 MB/s (0.8 GB
to 2.1 GB in 40 s), released when the run ends; 1 chain, same N: flat
(685 MB for 46 s); 2 parallel chains, N = 7,342: flat; 2 chains in 2 threads,
N = 73,421: +36 MB/s. ``malloc_trim(0)`` every 5 s does not return it, so
the memory is held, not fragmented.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

jax.config.update("jax_enable_x64", True)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=73_421)
    ap.add_argument("--levels", type=int, default=2_972)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--iters", type=int, default=6_000, help="warmup and draws, each")
    ap.add_argument("--method", choices=["parallel", "threads"], default="parallel")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    idx = rng.integers(args.levels, size=args.rows)
    y = rng.standard_normal(args.rows)

    def potential(z):
        x = z["x"]
        r = y - x[idx]  # numpy arrays: constants of the compiled program, as in PyMC's JAX graphs
        return 0.5 * jnp.sum(x * x) + 0.5 * jnp.sum(r * r)

    t0 = time.perf_counter()
    samples = []
    stop = threading.Event()

    def monitor():
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, rss_mb()))
            print(f"t = {samples[-1][0]:6.1f} s   RSS = {samples[-1][1]:7.0f} MB", flush=True)
            stop.wait(4.0)

    threading.Thread(target=monitor, daemon=True).start()
    x0 = jnp.full(args.levels, 0.1)

    def one(i, chains):
        with jax.default_device(jax.devices()[i % len(jax.devices())]):
            mcmc = MCMC(NUTS(potential_fn=potential), num_warmup=args.iters, num_samples=args.iters,
                        num_chains=chains, chain_method="parallel", progress_bar=False)
            init = {"x": jnp.tile(x0, (chains, 1)) if chains > 1 else x0}
            mcmc.run(jax.random.PRNGKey(i), init_params=init)
            jax.block_until_ready(mcmc.get_samples())

    if args.method == "threads":
        threads = [threading.Thread(target=one, args=(i, 1)) for i in range(args.chains)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        one(0, args.chains)
    stop.set()
    wall = time.perf_counter() - t0
    # growth while sampling: from the first sample after compilation to the peak
    peak_t, peak = max(samples, key=lambda s: s[1])
    start_t, start = samples[min(2, len(samples) - 1)]
    rate = (peak - start) / max(peak_t - start_t, 1e-9)
    print(f"rows {args.rows}, chains {args.chains} ({args.method}): {wall:.1f} s, peak RSS {peak:.0f} MB, "
          f"growth {rate:.1f} MB/s between t = {start_t:.0f} s and {peak_t:.0f} s")


if __name__ == "__main__":
    main()
