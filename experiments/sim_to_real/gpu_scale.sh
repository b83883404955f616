#!/usr/bin/env bash
# Several draws of the demo recipe and one with more data, on one GPU, in one command (<= 9 min):
#   1. pytest -m gpu (GPU_PYTEST=0 skips it);
#   2. `cac-train experiment=demo seed=S` for each seed of GPU_SEEDS (default "42 1 2 3"), exactly
#      as `make demo` runs it, on one shared synthetic cohort: how widely does the recipe spread?
#   3. "more_data": the same recipe and network on 3x the synthetic scans (240) with 3x the
#      slices per epoch (so each scan is seen as often), for each seed of GPU_MORE_SEEDS (default
#      "42"): does more synthetic data transfer better? (Either list may be empty: GPU_SEEDS=.)
#      (A run at the paper's channel widths would not come back: its checkpoint, ~140 MB, is over
#      what the GPU machine returns.)
# Each run's log streams into OUTDIR (so a run cut off by a time limit still leaves it); the runs'
# metrics.json and weights-only best checkpoints come back as OUTDIR/results.tgz (one file, ~2.3 MB
# a run), to be scored on the COCA scans where they are (experiments/sim_to_real/evaluate_coca.py):
# the scans never travel. Each run is time-boxed (GPU_SCALE_BUDGET_S, default 480 s in all).
#
#   bash experiments/sim_to_real/gpu_scale.sh OUTDIR            # on the GPU machine
#   GPU_SCALE_DRY=1 bash experiments/sim_to_real/gpu_scale.sh OUTDIR   # CPU, tiny: checks the script
#
# Needs torch, lightning, torchmetrics, hydra-core, omegaconf, pydicom, SimpleITK, scipy, pytest
# importable and this repository on PYTHONPATH (python -m cac_lightning.cli.train is run).
set -u -o pipefail
OUT="${1:?usage: gpu_scale.sh OUTDIR}"
PY="${PYTHON:-python3}"
DRY="${GPU_SCALE_DRY:-0}"
BUDGET="${GPU_SCALE_BUDGET_S:-480}"
SEEDS="${GPU_SEEDS-42 1 2 3}"
MORE_SEEDS="${GPU_MORE_SEEDS-42}"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_scale.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/keep"
export WANDB_MODE=offline PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1

if [[ "$DRY" == 1 ]]; then
  DEMO=(data.synthetic.n_scans=10 data.synthetic.size=128 trainer.max_epochs=1
        data.samples_per_epoch=32 trainer.check_val_every_n_epoch=1 trainer.accelerator=cpu)
  MORE=(data.synthetic.n_scans=12 data.synthetic.size=128 trainer.max_epochs=1
        data.samples_per_epoch=48 trainer.check_val_every_n_epoch=1 trainer.accelerator=cpu)
else
  DEMO=()
  MORE=(data.synthetic.n_scans=240 data.samples_per_epoch=1440 data.num_workers=6)
fi

# keep NAME DIR: metrics and a weights-only best checkpoint of the run in DIR, into WORK/keep.
keep() {
  local name="$1" dir="$2"
  cp "$dir/demo/metrics.json" "$WORK/keep/${name}_metrics.json" 2>/dev/null ||
    echo "$name: no metrics.json"
  "$PY" - "$dir/demo/best.ckpt" "$WORK/keep/${name}.ckpt" <<'EOF'
import sys
from cac_lightning.models import checkpoint
record = checkpoint.read(sys.argv[1])
keep = ("epoch", "global_step", "pytorch-lightning_version")
checkpoint.write(record.replace(lightning={k: record.lightning[k] for k in keep if k in record.lightning}), sys.argv[2])
EOF
  tar -czf "$OUT/results.tgz" -C "$WORK/keep" .  # rewritten after each run: a cut-off leaves it
}

# run NAME LIMIT_S OVERRIDES...: cac-train experiment=demo with the overrides, time-boxed (at most
# what is left of the budget), log streamed to OUT/NAME.log, run folder WORK/NAME.
run() {
  local name="$1" limit="$2"
  shift 2
  local left=$((BUDGET - SECONDS)) t0=$SECONDS
  ((limit > left)) && limit=$left
  ((limit < 30)) && { echo "== $name: skipped (budget of $BUDGET s spent)"; return 0; }
  timeout --kill-after=10 "$limit" "$PY" -m cac_lightning.cli.train experiment=demo logger=csv \
    "paths.log_dir=$WORK/$name" "paths.data_dir=$WORK/data" "$@" >"$OUT/${name}.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc, $((SECONDS - t0)) s of its $limit s (cohort generation included)"
  grep -E "^(Agatston (ICC|MAE), total|Risk kappa)|Error" "$OUT/${name}.log" | tail -n 6
  ((rc == 0)) && keep "$name" "$WORK/$name"
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
if [[ "$DRY" != 1 && "${GPU_PYTEST:-1}" == 1 ]]; then
  t0=$SECONDS
  timeout 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/gpu 2>&1 | tail -n 3
  echo "== pytest -m gpu: $((SECONDS - t0)) s"
fi
first=1
for seed in $SEEDS; do
  # the first run also generates and caches the shared cohort
  run "demo_seed$seed" $((first ? 150 : 75)) "${DEMO[@]}" "seed=$seed"
  first=0
done
first=1
for seed in $MORE_SEEDS; do
  run "more_data_seed$seed" $((first ? 260 : 120)) "${MORE[@]}" "seed=$seed"
  first=0
done
ls -la "$OUT"
