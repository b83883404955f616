"""`make demo` over several seeds: how often it meets its bar, and the spread of its figures.

    .venv/bin/python benchmarks/demo_seeds.py OUT_DIR [--seeds 42 1 2 3 4] [--coca COCA_ROOT]
        [--experiment demo_ema]                                    # a variant of the recipe
    .venv/bin/python benchmarks/demo_seeds.py OUT_DIR --summarise      # re-read finished seeds

Each seed runs `cac-train experiment=demo seed=S paths.log_dir=OUT_DIR/seedS logger=csv` (or
the `--experiment` given; the cohort is generated once into ./data, as `make demo` does, and
reused), then, when the COCA sample is there, `../shared/tools/real_scan_check.py` on the
seed's best checkpoint. A finished seed (its metrics.json exists) is not run again. The table
gives each seed's held-out synthetic figures, whether it meets the demo's `quality_bar`
(conf/experiment/demo.yaml), its wall time and its real-scan figures, then the median and range
over the seeds: the figures the README quotes; then each seed's held-out synthetic scans in the
wrong risk category (marked ``stent`` when the scan holds a coronary stent, from the cohort's
synthetic.json). Nothing is chosen: every seed given is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECK = REPO.parent / "shared" / "tools" / "real_scan_check.py"
COCA = REPO.parent / "shared" / "data" / "coca-sample"
FIGURES = (
    ("test/icc_agatston_total", "ICC"),
    ("test/kappa_linear", "kappa_lin"),
    ("test/agatston_mae", "MAE"),
    ("test_zero/zero_cac_flagged_rate", "zero_flag"),
)


def run_seed(out: Path, seed: int, coca: Path | None, experiment: str = "demo") -> None:
    folder = out / f"seed{seed}"
    summary = folder / "demo" / "metrics.json"
    if not summary.is_file():
        t0 = time.perf_counter()
        cmd = [
            str(BIN / "cac-train"),
            f"experiment={experiment}",
            f"seed={seed}",
            f"paths.log_dir={folder}",
            "logger=csv",
        ]
        subprocess.run(cmd, check=True, cwd=REPO)
        (folder / "wall_s.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    real = folder / "real_scan_check.json"
    if coca is not None and CHECK.is_file() and not real.is_file():
        ckpt = folder / "demo" / "best.ckpt"
        res = subprocess.run(
            [sys.executable, str(CHECK), str(ckpt), "--bin", str(BIN), "--coca", str(coca)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        print(res.stdout, end="")
        if res.returncode == 0:
            real.write_text(res.stdout.strip().splitlines()[-1] + "\n")


def row(out: Path, seed: int) -> dict | None:
    folder = out / f"seed{seed}"
    summary = folder / "demo" / "metrics.json"
    if not summary.is_file():
        return None
    data = json.loads(summary.read_text())
    r = {"seed": seed, **{k: data["metrics"].get(k) for k, _ in FIGURES}}
    r["meets_bar"] = data.get("meets_bar")
    wall = folder / "wall_s.txt"
    r["wall_s"] = float(wall.read_text()) if wall.is_file() else None
    real = folder / "real_scan_check.json"
    r["real"] = json.loads(real.read_text()) if real.is_file() else None
    return r


def cohort_meta() -> dict[str, dict]:
    """Each synthetic scan's record (its hard negatives, stent vessel, ...) from the demo
    cohort's synthetic.json; empty when the cohort is not on disk."""
    from hydra import compose, initialize_config_dir

    from cac_lightning.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=demo"])
    path = REPO / str(cfg.data.data_dir) / "synthetic.json"
    if not path.is_file():
        return {}
    return {s["scan_id"]: s for s in json.loads(path.read_text())["scans"]}


def miscategorised(out: Path, seed: int, meta: dict[str, dict]) -> list[str]:
    """The held-out synthetic scans (test and zero-calcium test) a seed puts in the wrong risk
    category, each as ``ID ref->pred`` plus ``stent`` when the scan holds a coronary stent."""
    data = json.loads((out / f"seed{seed}" / "demo" / "metrics.json").read_text())
    wrong = []
    for split in ("test", "test_zero"):
        for rec in data.get("scans", {}).get(split, []):
            if rec["ref_risk"] != rec["pred_risk"]:
                stent = " stent" if meta.get(rec["scan_id"], {}).get("stent_vessel") else ""
                wrong.append(f"{rec['scan_id']} {rec['ref_risk']}->{rec['pred_risk']}{stent}")
    return wrong


def kappa_without_stents(out: Path, seed: int, meta: dict[str, dict]) -> float | None:
    """Linear kappa of the risk categories over the test scans that hold no coronary stent (a
    diagnostic beside the bar, which counts every test scan); None without the cohort."""
    from cac_lightning.evaluation.stats import cohen_kappa
    from cac_lightning.scoring.risk import RISK_CATEGORIES

    if not meta:
        return None
    data = json.loads((out / f"seed{seed}" / "demo" / "metrics.json").read_text())
    recs = [r for r in data["scans"]["test"] if not meta[r["scan_id"]].get("stent_vessel")]
    ref, pred = [r["ref_risk"] for r in recs], [r["pred_risk"] for r in recs]
    return float(cohen_kappa(ref, pred, RISK_CATEGORIES, weights="linear").kappa)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def report(rows: list[dict]) -> str:
    head = ["seed", *(name for _, name in FIGURES), "bar", "wall_s", "risk", "lesions", "FP/expert"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        real = r["real"] or {}
        cells = [str(r["seed"]), *(_fmt(r[k]) for k, _ in FIGURES)]
        cells += ["met" if r["meets_bar"] else "missed", _fmt(r["wall_s"])]
        cells += [
            real.get("risk_category_right", "n/a"),
            real.get("expert_lesions_found", "n/a"),
            _fmt(real.get("false_positive_share")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    met = sum(bool(r["meets_bar"]) for r in rows)
    lines.append("")
    lines.append(f"seeds meeting the bar: {met} of {len(rows)}")
    for key, name in FIGURES:
        values = [r[key] for r in rows if r[key] is not None]
        if values:
            lines.append(
                f"{name}: median {statistics.median(values):.3f}, "
                f"range {min(values):.3f}-{max(values):.3f}"
            )
    shares = [r["real"]["false_positive_share"] for r in rows if r["real"]]
    if shares:
        lines.append(
            f"real-scan false-positive share: median {statistics.median(shares):.3f}, "
            f"range {min(shares):.3f}-{max(shares):.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    ap.add_argument("--coca", type=Path, default=COCA)
    ap.add_argument("--summarise", action="store_true", help="only read finished seeds")
    ap.add_argument(
        "--experiment", default="demo", help="a variant of the demo recipe, e.g. demo_ema"
    )
    args = ap.parse_args(argv)
    coca = args.coca if (args.coca / "Gated_release_final").is_dir() else None
    if not args.summarise:
        for seed in args.seeds:
            run_seed(args.out, seed, coca, args.experiment)
    rows = [r for r in (row(args.out, s) for s in args.seeds) if r is not None]
    if not rows:
        print(f"no finished seed under {args.out}", file=sys.stderr)
        return 2
    print(report(rows))
    meta = cohort_meta()
    print("\nheld-out synthetic scans in the wrong risk category (test, zero-calcium test):")
    for r in rows:
        wrong = miscategorised(args.out, r["seed"], meta)
        kappa = _fmt(kappa_without_stents(args.out, r["seed"], meta))
        print(f"seed {r['seed']}: " + (", ".join(wrong) or "none"))
        print(f"  linear kappa over the test scans without a stent: {kappa}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
