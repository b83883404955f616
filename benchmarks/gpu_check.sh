#!/usr/bin/env bash
# GPU figures in one command (<= 8 minutes, every step time-boxed, figures to stdout), most
# important first (a step that would start after the budget is spent is skipped and says so):
#   1. paper U-Net++ FULL Lightning training steps (loader + Lightning + loss + metrics) at 512²,
#      bf16-mixed, channels_last, batch 4, 8 workers: eager and with CUDA graphs
#      (model.cuda_graphs=true);
#   2. 1, 2, 4 and 8 concurrent U-Net++ trials on the one GPU (hydra/launcher=gpu_shared's way):
#      aggregate slices/s, GPU memory per trial, CPU share (bench_concurrent_trials.py);
#   3. cac-score --device cuda over a folder of 100 scans of 60 slices of 512², with the
#      checkpoint of step 1, read-ahead off and on: scans/s and inference s/scan;
#   4. pytest -m gpu (bf16 step, cac-score on CUDA, CUDA graphs keep the 50-step loss curve);
#   5. training loader throughput at 512² (no augmentation, as in paper_*) with 8 and 16 workers.
#
# Runs from the repository root on a bare machine where only python3 is installed: the caller makes
# torch, lightning, torchmetrics, hydra-core, omegaconf, pydicom, scipy, pillow importable (e.g.
# PYTHONPATH=$PWD:/path/to/site-packages). The workplace's CUDA image has all but hydra-core,
# omegaconf (+ antlr4) and pydicom, which are pure Python: `bash benchmarks/gpu_check_deps.sh
# /work/main/.venv gpudeps` copies them (about 20 MB) for PYTHONPATH=$PWD:$PWD/gpudeps. Nothing is
# installed here; SimpleITK is not needed (cohorts are written straight into the scan cache, the
# scans for cac-score as DICOM). Scratch files go to a temporary folder that is removed at the end.
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
FIGURES='^(MISSING|train step|size [0-9]+|cache build|device|torch|lightning|scored|[0-9]+ (passed|failed|skipped)|.*(passed|failed|skipped|deselected).* in [0-9.]+s|.*s/scan|.*slices/s|.*seconds|cac-score|scan for|concurrent|folder|wrote)'

if [[ "$DRY" == 1 ]]; then
  TRAIN=(--dry)
  CONCURRENT=(--dry --trials 1 2)
  FOLDER=(--scans 3 --slices 8 --size 64 --device cpu)
  LOADER=(--size 64 --scans 3 --slices 8 --workers 0 2 --batches 5 --no-augment --prebuilt-cache)
else
  TRAIN=(--steps 50 --warmup 15)
  CONCURRENT=(--trials 1 2 4 8 --workers 2 --steps 40 --warmup 10)
  FOLDER=(--scans 100 --slices 60 --size 512 --device cuda --read-ahead 0 1)
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

# Most important first: a step that would start after the budget is spent is skipped.
step "training steps: paper U-Net++, eager and CUDA graphs" 150 \
  "$PY" benchmarks/bench_train_step.py --nets unetplusplus --compile off graphs "${TRAIN[@]}" \
  --ckpt-out "$WORK/paper.ckpt"

step "concurrent trials on one GPU" 200 \
  "$PY" benchmarks/bench_concurrent_trials.py "${CONCURRENT[@]}"

if [[ -f "$WORK/paper.ckpt" ]]; then
  step "cac-score over a folder" 150 \
    "$PY" benchmarks/bench_folder_inference.py --ckpt "$WORK/paper.ckpt" "${FOLDER[@]}"
else
  echo "== cac-score over a folder: skipped (no checkpoint from the training step)"
  FAILED=1
fi

step "pytest -m gpu" 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/gpu

step "loader throughput" 45 "$PY" benchmarks/bench_loader.py "${LOADER[@]}"

echo "gpu_check: done in ${SECONDS} s (budget ${BUDGET} s)$([[ $FAILED == 1 ]] && echo '; some steps failed')"
exit "$FAILED"
