#!/usr/bin/env bash
# The bayeslmm part of benchmarks/peers.py on a GPU machine: the InstEval-shaped
# and large-N sets, absolute times (issue #4). Run from the repository root with
# JAX's CUDA build installed; results go under $OUT (default benchmarks/results/gpu).
#
#   bash benchmarks/gpu_peers.sh
#
# Order: the fits worth most first, each with its own time limit, so that a
# short lease still returns them. "all" on the InstEval-shaped set, skipped on
# the CPU (0.34 s per gradient), is tried here. Each part's table ends up as
# $OUT/peers_<part>.json and .md.
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
T=${FIT_TIMEOUT:-150}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, numpyro, pymc, pytensor; print('jax', jax.__version__, jax.devices(), 'numpyro', numpyro.__version__, 'pymc', pymc.__version__, 'pytensor', pytensor.__version__)" || exit 1
run() {  # part name, then peers.py arguments
    local part=$1; shift
    python3 benchmarks/peers.py --tools bayeslmm --skip "" --timeout "$T" --uncorr-plans '' \
        ${PEERS_ARGS:-} --out "$OUT/$part" "$@"
    for ext in json md; do mv -f "$OUT/$part/peers.$ext" "$OUT/peers_$part.$ext" 2>/dev/null; done
    rm -rf "$OUT/$part"
}
run insteval --datasets insteval_shaped --plans auto,all
run large_n --datasets large_n --plans all,none
run insteval_none --datasets insteval_shaped --plans none
