"""A COCA-scale run: the paper recipe on as many synthetic 512² scans as COCA's gated set.

800 synthetic gated scans (3 mm slices, 512², the paper's 70/10/20 split stratified by risk
category), ``experiment=paper_unetplusplus`` (batch 4, bf16, channels_last, Adam 1e-4 x 0.95,
focal loss, balanced slices) on one GPU. Prints and writes (``--out``, JSON) what sizing such a
run needs:

- cohort generation seconds, and the disk of the cohort folder (volumes + the training cache);
- per epoch: wall seconds and the validation share of it (``time/epoch_s``,
  ``time/val_share``, logged by the training-speed callback); the target share is <= 15 %;
- training slices/s; peak host RAM (the largest process: cac-train or a loader worker);
- the best checkpoint's epoch and the wall seconds until it was written.

    python experiments/coca_scale/run.py --out experiments/coca_scale/figures.json   # GPU
    python experiments/coca_scale/run.py --dry --out /tmp/coca_scale.json     # CPU: checks it
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from cac_lightning.evaluation.runs import EPOCH_SECONDS_KEY, SPEED_KEY, VAL_SHARE_KEY


def _disk_gib(path: Path) -> float:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 2**30


def _peak_rss_gib() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return me, kids


def _epoch_rows(log_dir: Path) -> list[dict[str, float]]:
    """Per-epoch wall seconds and validation share from the run's CSV log."""
    rows = []
    for path in sorted(log_dir.rglob("metrics.csv")):
        for row in csv.DictReader(path.open()):
            if row.get(EPOCH_SECONDS_KEY):
                rows.append(
                    {
                        "epoch": int(row["epoch"]),
                        "epoch_s": float(row[EPOCH_SECONDS_KEY]),
                        "val_share": float(row[VAL_SHARE_KEY]),
                    }
                )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=800)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="trainer.max_epochs (a sizing run)")
    ap.add_argument("--workers", type=int, default=8, help="data.num_workers")
    ap.add_argument("--work", type=Path, default=Path("outputs/coca_scale"))
    ap.add_argument("--out", type=Path, required=True, help="JSON of the figures")
    ap.add_argument("--dry", action="store_true", help="CPU, 12 tiny scans, tiny net")
    args = ap.parse_args()
    from cac_lightning.sources.synthetic import generate_cohort

    if args.dry:
        args.scans, args.size, args.epochs, args.workers = 12, 64, 2, 0
    cohort = (args.work / f"synthetic-s{args.size}-n{args.scans}").resolve()
    run_dir = (args.work / "run").resolve()
    t0 = time.perf_counter()
    if not cohort.exists():
        generate_cohort(cohort, args.scans, seed=0, size=args.size, split="paper")
    gen_s = time.perf_counter() - t0
    cmd = [
        sys.executable, "-m", "cac_lightning.cli.train", "experiment=paper_unetplusplus",
        f"data.data_dir={cohort}", f"data.synthetic.n_scans={args.scans}",
        f"data.synthetic.size={args.size}", f"data.num_workers={args.workers}",
        f"trainer.max_epochs={args.epochs}", "logger=csv", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    if args.dry:
        cmd += [
            "trainer=cpu", "model.net.channels=[4,8,16,32,64]", "model.channels_last=false",
            "data.pin_memory=false", "data.persistent_workers=false",
        ]  # fmt: skip
    t1 = time.perf_counter()
    done = subprocess.run(cmd, check=False)  # cac-train as a user runs it
    fit_s = time.perf_counter() - t1
    if done.returncode != 0:
        print(f"coca_scale: cac-train failed (exit {done.returncode})", file=sys.stderr)
        return 1
    metrics = json.loads(next(run_dir.rglob("metrics.json")).read_text())
    epochs = [
        int(m.group(1))
        for p in run_dir.glob("checkpoints/epoch*.ckpt")
        if (m := re.fullmatch(r"epoch(\d+)\.ckpt", p.name))
    ]
    best_epoch = max(epochs) if epochs else None  # the one kept (save_top_k 1)
    rows = _epoch_rows(run_dir)
    to_best = sum(r["epoch_s"] for r in rows if best_epoch is not None and r["epoch"] <= best_epoch)
    rss_me, rss_kids = _peak_rss_gib()
    figures = {
        "scans": args.scans,
        "size": args.size,
        "cohort_generation_s": round(gen_s, 1),
        "cohort_and_cache_disk_gib": round(_disk_gib(cohort), 2),
        "cac_train_wall_s": round(fit_s, 1),
        "epochs": rows,
        "max_val_share": max((r["val_share"] for r in rows), default=None),
        "train_slices_per_s": metrics["metrics"].get(SPEED_KEY),
        "best_epoch": best_epoch,
        "seconds_to_best_checkpoint": round(to_best, 1) if rows else None,
        "peak_rss_gib": {"this_script": round(rss_me, 2), "largest_child": round(rss_kids, 2)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"coca_scale {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
