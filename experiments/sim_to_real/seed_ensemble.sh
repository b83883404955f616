#!/usr/bin/env bash
# The demo recipe trained with several seeds, each seed and their ensemble scored on the COCA
# sample (issue 12 (a), run-to-run spread). Nothing is chosen: every seed given is trained, scored
# and ensembled (cac-score --ckpt A --ckpt B ..., mean log-probabilities).
#
#   experiments/sim_to_real/seed_ensemble.sh COCA_ROOT OUT_DIR [SEED...]     (default: 42 1 2)
#
# Seed 42 is `make demo`'s. Each seed writes OUT_DIR/seed<S>/demo/{best.ckpt,metrics.json} and
# OUT_DIR/seed<S>/coca.json; the ensemble OUT_DIR/ensemble_coca.json and OUT_DIR/ensemble_eval
# (cac-eval on the synthetic validation and test scans). The cohort is generated once
# into ./data (as make demo does) and reused. About 13 minutes a seed on 2 cores.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n 5p "$0" | sed 's/^# *//' >&2
    exit 2
fi
coca=$1 out=$2
shift 2
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(42 1 2)
here=$(cd "$(dirname "$0")" && pwd)
files=()
for s in "${seeds[@]}"; do
    echo "== seed $s"
    cac-train experiment=demo seed="$s" paths.log_dir="$out/seed$s" logger=csv
    python "$here/evaluate_coca.py" --ckpt "$out/seed$s/demo/best.ckpt" --coca "$coca" \
        --json "$out/seed$s/coca.json"
    files+=("$out/seed$s/demo/best.ckpt")
done
echo "== ensemble of seeds ${seeds[*]}"
python "$here/evaluate_coca.py" "${files[@]/#/--ckpt=}" --coca "$coca" \
    --json "$out/ensemble_coca.json"
# The ensemble on the demo's synthetic validation and test scans (the data definition the
# checkpoints record: experiment/demo.yaml and recipe/cpu_grid.yaml), report in
# OUT_DIR/ensemble_eval.
cac-eval "ckpt_path=[$(IFS=,; echo "${files[*]}")]" "splits=[val,test,test_zero]" \
    report_dir="$out/ensemble_eval" device=cpu
