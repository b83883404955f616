#!/usr/bin/env bash
# Copy the pure-Python packages gpu_check.sh needs beyond a CUDA PyTorch image (hydra-core,
# omegaconf, antlr4-python3-runtime, pydicom) from a virtual environment into DIR, to be put on
# PYTHONPATH on the GPU machine:   bash benchmarks/gpu_check_deps.sh VENV DIR
set -euo pipefail
VENV="${1:?usage: gpu_check_deps.sh VENV DIR}"
DEST="${2:?usage: gpu_check_deps.sh VENV DIR}"
SITE="$(ls -d "$VENV"/lib/python3*/site-packages | head -n 1)"
mkdir -p "$DEST"
for pkg in hydra omegaconf antlr4 pydicom; do
  [[ -d "$SITE/$pkg" ]] || { echo "gpu_check_deps: $pkg not in $SITE" >&2; exit 2; }
  rm -rf "${DEST:?}/$pkg"
  cp -r "$SITE/$pkg" "$DEST/$pkg"
done
find "$DEST" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "gpu_check_deps: $(du -sh "$DEST" | cut -f1) in $DEST (hydra, omegaconf, antlr4, pydicom)"
