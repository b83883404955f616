#!/usr/bin/env bash
# Leave-one-out fine-tuning on the COCA sample (issue 12 (b)): for each patient, fine-tune
# INIT_CKPT on the other patients (experiment=finetune_coca, fixed before any fold was scored)
# and score the held-out one with evaluate_coca.py. Nothing is tuned per fold.
#
#   experiments/sim_to_real/loo_finetune.sh COCA_ROOT INIT_CKPT OUT_DIR [PATIENT...]
#
# COCA_ROOT holds Gated_release_final. Each fold writes OUT_DIR/fold<P>/ (data manifest, run,
# eval.json); the patients default to every folder under Gated_release_final/patient.
# The training scans are also the validation scans (data.validate_on=train): with two scans
# none can be spared, and the held-out scan must not choose the checkpoint.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    sed -n 5p "$0" | sed 's/^# *//' >&2
    exit 2
fi
coca=$1 init=$2 out=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
if [[ $# -gt 0 ]]; then
    patients=("$@")
else
    mapfile -t patients < <(ls "$coca/Gated_release_final/patient")
fi
for held in "${patients[@]}"; do
    train=()
    for p in "${patients[@]}"; do [[ $p != "$held" ]] && train+=("$p"); done
    fold=$out/fold$held
    echo "== fold $held: fine-tune on ${train[*]}, score $held"
    cac-import-coca "$coca" --out "$fold/data" --patients "${train[@]}" --split train
    cac-train experiment=finetune_coca init_from="$init" data.data_dir="$fold/data" \
        data.validate_on=train paths.log_dir="$fold" test=false logger=csv
    python "$here/evaluate_coca.py" --ckpt "$fold/finetune_coca/best.ckpt" --coca "$coca" \
        --patients "$held" --json "$fold/eval.json"
done
python - "$out" "${patients[@]}" <<'PY'
import json, sys
from pathlib import Path
out, patients = Path(sys.argv[1]), sys.argv[2:]
rows = [json.loads((out / f"fold{p}" / "eval.json").read_text())[0] for p in patients]
right = sum(r["pred_risk"] == r["expert_risk"] for r in rows)
found, total = sum(r["found"] for r in rows), sum(r["lesions"] for r in rows)
print(f"leave-one-out: risk category right {right}/{len(rows)}; expert lesions found {found}/{total}")
(out / "loo.json").write_text(json.dumps(rows, indent=2))
PY
