#!/usr/bin/env bash
# The GPU profile of benchmarks/compare.py in one call, on a machine with an NVIDIA GPU whose
# image already has JAX with CUDA (plus flax, optax, chex, orbax) but not the rest.
#
#   bash benchmarks/gpu.sh download   # beforehand, anywhere with internet: wheels for the
#                                     # GPU machine's Python (PYTHON_VERSION, default 3.12)
#                                     # into $WHEELS (default .whl/)
#   bash benchmarks/gpu.sh            # on the GPU machine: installs $WHEELS (no internet
#                                     # needed) or, without them, `pip install -e .`; then
#                                     # runs the profile (a few minutes on one H100)
#
# The JSON goes to benchmarks/results/compare_gpu_default.json and benchmarks/RESULTS.md is
# regenerated; with $OUT set (a folder that is copied back), both are also copied there.
# Extra arguments are passed to compare.py (e.g. --quick for a short check).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}

# What distral_jax needs beyond a CUDA JAX image, pinned to the versions the CPU suite runs.
PACKAGES=(
  blinker==1.9.0 brax==0.14.2 decorator==5.3.1 distrax==0.1.9 dm-env==1.6 dm-tree==0.1.10
  docstring-parser==0.18.0 farama-notifications==0.0.6 flask==3.1.3 flask-cors==6.0.5
  gast==0.7.0 glfw==2.11.0 gymnasium==1.3.0 gymnax==1.0.1 itsdangerous==2.2.0 jaxopt==0.8.5
  ml-collections==1.1.0 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-mjx==3.17.0 pyopengl==3.1.10
  rlax==0.1.9 tensorboardx==2.6.5 tfp-nightly==0.26.0.dev20261027 trimesh==5.2.0
  typeguard==4.6.1 tyro==1.0.17 tzdata==2026.6 websockets==17.4 xminigrid==0.9.3
)

if [[ "${1:-}" == "download" ]]; then
  mkdir -p "$WHEELS"
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
  done
  "$PYTHON" -m pip download --no-deps --only-binary=:all: \
    --python-version "${PYTHON_VERSION:-3.12}" --implementation cp "${platforms[@]}" \
    -d "$WHEELS" "${PACKAGES[@]}"
  echo "wheels in $WHEELS ($(du -sh "$WHEELS" | cut -f1)); carry that folder to the GPU machine"
  exit 0
fi

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  site=${SITE:-/tmp/distral_site}
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$WHEELS"/*.whl
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  "$PYTHON" -m pip install -q -e .
fi
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" - <<'EOF'
import jax

if jax.default_backend() != "gpu":
    raise SystemExit(f"no GPU visible to JAX (backend {jax.default_backend()!r}): install "
                     "JAX with CUDA, e.g. pip install -U 'jax[cuda12]'")
print("jax", jax.__version__, jax.devices())
EOF

"$PYTHON" benchmarks/compare.py "$@"
if [[ -n "${OUT:-}" ]]; then
  cp benchmarks/results/compare_*.json benchmarks/RESULTS.md "$OUT"/
fi
