#!/usr/bin/env bash
# GPU figures in one command (<= 8 minutes, every step time-boxed, figures to stdout):
#   1. paper U-Net and U-Net++ FULL Lightning training steps (loader + Lightning + loss + metrics)
#      at 512², bf16-mixed, channels_last, batch 4, 8 workers: without and with torch.compile;
#   2. training loader throughput at 512² (no augmentation, as in paper_*) with 8 and 16 workers;
#   3. cac-score --device cuda on a 60-slice 512² scan with the checkpoint from step 1;
#   4. pytest -m gpu.
#
# Runs from the repository root on a bare machine where only python3 is installed: the caller makes
# torch, lightning, torchmetrics, hydra-core, omegaconf, pydicom, scipy, pillow importable (e.g.
# PYTHONPATH=$PWD:/path/to/site-packages). The workplace's CUDA image has all but hydra-core,
# omegaconf (+ antlr4) and pydicom, which are pure Python: `bash benchmarks/gpu_check_deps.sh
# /work/main/.venv gpudeps` copies them (about 20 MB) for PYTHONPATH=$PWD:$PWD/gpudeps. Nothing is
# installed here; SimpleITK is not needed (cohorts are written straight into the scan cache, the
# scan for cac-score as DICOM). Scratch files go to a temporary folder that is removed at the end.
#
#   PYTHONPATH=$PWD:<deps> bash benchmarks/gpu_check.sh
#   GPU_CHECK_DRY=1 PYTHONPATH=$PWD bash benchmarks/gpu_check.sh   # CPU, tiny sizes: checks the script
#
# Environment: PYTHON (default python3), GPU_CHECK_DRY (1 = dry run), GPU_CHECK_BUDGET_S (default
# 470: steps that would start after the budget is spent are skipped and say so).
set -u -o pipefail

PY="${PYTHON:-python3}"
DRY="${GPU_CHECK_DRY:-0}"
BUDGET="${GPU_CHECK_BUDGET_S:-470}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT" || exit 2
export WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true PYTHONUNBUFFERED=1
export PYTHONPATH="${PYTHONPATH:-$ROOT}"
FAILED=0

# step NAME TIMEOUT_S CMD...: run CMD with a time limit, keep the lines that carry figures.
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$((BUDGET - SECONDS))
  if ((left < 15)); then
    echo "== $name: skipped (time budget of ${BUDGET} s spent)"
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit} s)"
  local t0=$SECONDS log="$WORK/$(echo "$name" | tr -c 'a-zA-Z0-9' _).log"
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  local rc=$?
  grep -E "$FIGURES" "$log" | sed 's/^/   /'
  if ((rc == 124 || rc == 137)); then
    echo "   TIMED OUT after ${limit} s (last lines:)"
    tail -n 5 "$log" | sed 's/^/   | /'
    FAILED=1
  elif ((rc != 0)); then
    echo "   FAILED (exit $rc; last lines:)"
    tail -n 15 "$log" | sed 's/^/   | /'
    FAILED=1
  fi
  echo "   ($((SECONDS - t0)) s)"
}
FIGURES='^(MISSING|train step|size [0-9]+|cache build|device|torch|lightning|scored|[0-9]+ (passed|failed|skipped)|.*(passed|failed|skipped|deselected).* in [0-9.]+s|.*s/scan|.*slices/s|.*seconds|cac-score|scan for)'

if [[ "$DRY" == 1 ]]; then
  SIZE=64 NSLICE=8 DEVICE=cpu
  TRAIN_OFF=(--dry --compile off)
  TRAIN_ON=()
  LOADER=(--size 64 --scans 3 --slices 8 --workers 0 2 --batches 5 --no-augment --prebuilt-cache)
else
  SIZE=512 NSLICE=60 DEVICE=cuda
  TRAIN_OFF=(--compile off --steps 50 --warmup 10)
  TRAIN_ON=(--compile on --steps 50 --warmup 15)
  LOADER=(--size 512 --scans 4 --slices 40 --workers 8 16 --batches 150 --no-augment --prebuilt-cache)
fi

echo "gpu_check: $(date -u +%FT%TZ) dry=$DRY repo=$ROOT"
ENV_T0=$SECONDS
step "environment" 60 "$PY" -c "
import importlib.util, platform
need = ['torch', 'lightning', 'torchmetrics', 'hydra', 'omegaconf', 'pydicom', 'scipy', 'PIL',
        'numpy', 'pytest', 'cac_lightning']
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    print('MISSING python packages:', ' '.join(missing),
          '(pure-Python ones: bash benchmarks/gpu_check_deps.sh VENV DIR, then PYTHONPATH=\$PWD:DIR)')
    raise SystemExit(4)
import torch, lightning
print('torch', torch.__version__, 'cuda', torch.version.cuda, '| lightning', lightning.__version__,
      '| python', platform.python_version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('device', torch.cuda.get_device_name(0), f'{p.total_memory / 2**30:.0f} GiB',
          'bf16', torch.cuda.is_bf16_supported())
else:
    print('device cpu (no CUDA)')
    raise SystemExit(0 if '$DRY' == '1' else 3)
"
if ((FAILED)); then
  echo "gpu_check: environment not usable, stopping after $((SECONDS - ENV_T0)) s"
  exit 1
fi

step "training steps, no torch.compile" 130 \
  "$PY" benchmarks/bench_train_step.py "${TRAIN_OFF[@]}" --ckpt-out "$WORK/paper.ckpt"
if ((${#TRAIN_ON[@]})); then
  step "training steps, torch.compile" 150 "$PY" benchmarks/bench_train_step.py "${TRAIN_ON[@]}"
else
  echo "== training steps, torch.compile: skipped in dry mode (CPU inductor builds take minutes)"
fi

step "loader throughput" 60 "$PY" benchmarks/bench_loader.py "${LOADER[@]}"

step "scan for cac-score" 60 "$PY" -c "
import numpy as np
from cac_lightning.io.dicom_write import write_dicom_series
from cac_lightning.volume import Geometry
rng = np.random.default_rng(0)
n, s = $NSLICE, $SIZE
hu = rng.normal(40, 15, size=(n, s, s)).astype(np.int16)
hu[:, :, : s // 10] = -1000                      # air at the side
hu[:, s // 2 : s // 2 + s // 8, s // 3 : s // 3 + s // 16] = 900   # spine-like bone
for z in range(5, n - 5, 7):                     # calcium-like blobs
    r, c = rng.integers(s // 4, s // 2, size=2)
    hu[z, r : r + 3, c : c + 3] = 450
g = Geometry(shape=hu.shape, pixel_spacing=(0.4, 0.4), slice_spacing=3.0,
             origin=(0.0, 0.0, 0.0), slice_thickness=3.0)
write_dicom_series(hu, g, '$WORK/scan', patient_id='GPUCHECK')
print(f'scan for cac-score: {n} slices of {s}x{s} (DICOM)')
"
if [[ -f "$WORK/paper.ckpt" && -d "$WORK/scan" ]]; then
  step "cac-score --device $DEVICE ($NSLICE slices of ${SIZE}²)" 90 "$PY" -c "
import subprocess, sys, time
cmd = [sys.executable, '-m', 'cac_lightning.cli.score', '$WORK/scan', '--ckpt',
       '$WORK/paper.ckpt', '--out', '$WORK/score', '--device', '$DEVICE']
t0 = time.perf_counter()
r = subprocess.run(cmd, capture_output=True, text=True)
dt = time.perf_counter() - t0
print('\n'.join('cac-score| ' + ln for ln in (r.stdout + r.stderr).splitlines()[-12:]))
print(f'cac-score wall time (process start to exit, incl. imports): {dt:.1f} seconds')
sys.exit(r.returncode)
"
else
  echo "== cac-score: skipped (no checkpoint or scan from the steps above)"
  FAILED=1
fi

step "pytest -m gpu" 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/gpu

echo "gpu_check: done in ${SECONDS} s (budget ${BUDGET} s)$([[ $FAILED == 1 ]] && echo '; some steps failed')"
exit "$FAILED"
