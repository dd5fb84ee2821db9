#!/usr/bin/env bash
# The same code on a GPU: unit tests, then the warm 2048² pipeline on the GPU and on the same machine's CPU.
#
#   bash benchmarks/gpu.sh [PYTHON]        # PYTHON: an interpreter whose jax sees the GPU (default python3)
#
# Installs motifgram into that interpreter without dependencies (the GPU image already has jax, numpy, scipy,
# scikit-image, networkx, matplotlib, ...); a wheel folder .gpu_wheels/ (git-ignored: lark, jsonschema) is
# installed first when present. Tests that need packages the image lacks (dask, rosettasciio) are left out.
# Results: benchmarks/results-gpu-*.json, or under $OUT when that is set.
set -uo pipefail
PY=${1:-python3}
OUTDIR=${OUT:-benchmarks}
cd "$(dirname "$0")/.."
if [ -d .gpu_wheels ]; then "$PY" -m pip install -q --no-deps --no-index .gpu_wheels/*.whl; fi
"$PY" -m pip install -q --no-deps --no-build-isolation -e . || exit 1
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

echo "== unit tests on the default (GPU) backend (8 workers share the GPU: no memory preallocation)"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
timeout 330 "$PY" -m pytest -q --maxfail=20 -p no:cacheprovider -n 8 tests --ignore=tests/test_real_data.py -k "not dask" 2>&1 | tail -40

echo "== warm 2048² pipeline: GPU, then CPU (same machine, same process settings)"
"$PY" benchmarks/tasks.py data --out "$OUTDIR/gpu-data.json" --options '{"sizes": [2048]}' >/dev/null
for platform in cuda cpu; do
    JAX_PLATFORMS=$platform timeout 150 "$PY" benchmarks/tasks.py mg_pipeline --size 2048 --repeats 3 \
        --out "$OUTDIR/results-gpu-$platform.json" && "$PY" - "$OUTDIR/results-gpu-$platform.json" "$platform" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
stages = " ".join(f"{k} {v:.3f}" for k, v in r["stage_s"].items())
print(f"{sys.argv[2]}: detect->parse {r['detect_to_parse_s']:.3f} s ({r['n_atoms']} atoms); {stages}")
EOF
done
