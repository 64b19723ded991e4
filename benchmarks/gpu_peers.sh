#!/usr/bin/env bash
# The bayeslmm part of benchmarks/peers.py on a GPU machine: the InstEval-shaped
# and large-N sets, absolute times (issue #4). Run from the repository root with
# JAX's CUDA build installed; results go under $OUT (default benchmarks/results/gpu).
#
#   bash benchmarks/gpu_peers.sh
#
# Order: the fits worth most first, each with its own time limit, so that a
# short lease still returns them. "all" on the InstEval-shaped set runs here
# (a dense 1,142 x 1,142 Schur complement per gradient is cheap on a GPU).
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
T=${FIT_TIMEOUT:-150}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, numpyro, pymc, pytensor; print('jax', jax.__version__, jax.devices(), 'numpyro', numpyro.__version__, 'pymc', pymc.__version__, 'pytensor', pytensor.__version__)" || exit 1
run() { python3 benchmarks/peers.py --tools bayeslmm --skip "" --timeout "$T" ${PEERS_ARGS:-} "$@"; }
run --datasets insteval_shaped --plans auto,all --uncorr-plans '' --out "$OUT/insteval"
run --datasets large_n --plans all,none --uncorr-plans '' --out "$OUT/large_n"
run --datasets insteval_shaped --plans none --uncorr-plans '' --out "$OUT/insteval_none"
rm -f "$OUT"/*/peers.png
