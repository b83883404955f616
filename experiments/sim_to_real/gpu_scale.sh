#!/usr/bin/env bash
# Does more synthetic data and a wider network transfer better? One GPU, one command (<= 9 min):
#   1. pytest -m gpu;
#   2. `cac-train experiment=demo` exactly as `make demo` runs it (timing on a GPU);
#   3. "scaled": the demo's grid and loss (1.0 mm, 128 mm window, Dice + focal on the candidates)
#      with 3x the synthetic scans (240), the paper's channel widths (U-Net++ 32..512), batch 32,
#      40 epochs x 4000 slices (lr 1e-3, x0.95 per epoch, as the paper's 5 % decay), stopped by
#      Lightning's max_time at 3 minutes of fitting.
# Each run's log streams into OUTDIR (so a run cut off by a time limit still leaves it), then its
# metrics.json and a weights-only copy of its best checkpoint (split in 15 MiB parts where larger;
# `cat NAME.ckpt.part_* > best.ckpt` joins them): at most 8 files, to be scored on the COCA scans
# where they are (experiments/sim_to_real/evaluate_coca.py): the scans never travel. Each run is
# time-boxed (GPU_SCALE_BUDGET_S, default 480 s in all).
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
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_scale.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export WANDB_MODE=offline PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1

if [[ "$DRY" == 1 ]]; then
  DEMO=(data.synthetic.n_scans=10 data.synthetic.size=128 trainer.max_epochs=1
        data.samples_per_epoch=32 trainer.check_val_every_n_epoch=1 trainer.accelerator=cpu)
  SCALED=(data.synthetic.n_scans=12 data.synthetic.size=128 trainer.max_epochs=1
          data.samples_per_epoch=64 trainer.check_val_every_n_epoch=1 trainer.accelerator=cpu
          data.num_workers=1)
else
  DEMO=()
  SCALED=(trainer=gpu data.synthetic.n_scans=240 data.num_workers=12 trainer.max_epochs=40
          data.samples_per_epoch=4000 trainer.check_val_every_n_epoch=5
          +trainer.max_time=00:00:03:00)
fi

# keep NAME DIR: metrics and a weights-only best checkpoint of the run in DIR, into OUT.
keep() {
  local name="$1" dir="$2"
  cp "$dir/demo/metrics.json" "$OUT/${name}_metrics.json" 2>/dev/null || echo "$name: no metrics.json"
  "$PY" - "$dir/demo/best.ckpt" "$OUT/${name}.ckpt" <<'EOF'
import sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
keep = ("hyper_parameters", "state_dict", "epoch", "global_step", "pytorch-lightning_version")
torch.save({k: ckpt[k] for k in keep if k in ckpt}, sys.argv[2])
EOF
  local size
  size=$(stat -c %s "$OUT/${name}.ckpt")
  if ((size > 15 * 1024 * 1024)); then
    split -b 15M -d "$OUT/${name}.ckpt" "$OUT/${name}.ckpt.part_" && rm "$OUT/${name}.ckpt"
  fi
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
  grep -E "^(Agatston (ICC|MAE), total|Risk kappa)|max_time|Error" "$OUT/${name}.log" | tail -n 6
  ((rc == 0)) && keep "$name" "$WORK/$name"
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
if [[ "$DRY" != 1 ]]; then
  t0=$SECONDS
  timeout 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/gpu 2>&1 | tail -n 3
  echo "== pytest -m gpu: $((SECONDS - t0)) s"
fi
run demo_gpu 150 "${DEMO[@]}"
run scaled 420 "${SCALED[@]}" model.net.channels=[32,64,128,256,512] data.batch_size=32 \
  model.optimizer.lr=1e-3 model.scheduler.gamma=0.95
ls -la "$OUT"
