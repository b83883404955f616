"""``cac-compare``: gather the runs of a multirun and compare architectures over seeds.

``cac-compare outputs/<task>/multiruns/<time> --out experiments/unet_vs_unetpp/results.md``
reads each job's ``metrics.json`` and ``.hydra/config.yaml`` and writes a markdown file with
two tables: mean ± sd per architecture (the paper's Table 3 metrics and the Table 6/7
headline figures), and per metric the paired difference U-Net++ − U-Net with a 95 %
bootstrap interval over test scans within each seed, then over seeds
(:mod:`cac_lightning.evaluation.paired`), "not distinguishable" when it covers 0, and the
seeds the observed seed-to-seed spread asks for. A PNG bar plot is written beside it, and the
paired table goes to W&B (offline unless configured) as a table in the sweep's group.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from cac_lightning.cli.common import run_cli
from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_write_text

__all__ = ["COLUMNS", "gather", "main"]

COLUMNS = (
    ("test/agatston_mae", "CAC error (MAE)"),
    ("test/precision", "Precision"),
    ("test/recall", "Recall"),
    ("test/dice", "Dice"),
    ("test/iou", "IoU"),
    ("test/icc_agatston_total", "ICC Agatston total"),
    ("test/kappa", "Risk kappa"),
    ("test/kappa_linear", "Risk kappa (linear)"),
    ("test_zero/zero_cac_flagged_rate", "Zero-CAC FP rate"),
)


def gather(root: Path) -> list[dict]:
    """One dict per finished job: net, seed and the metrics of its ``metrics.json``."""
    from omegaconf import OmegaConf

    runs = []
    for mfile in sorted(root.rglob("metrics.json")):
        cfg_file = mfile.parent / ".hydra" / "config.yaml"
        if not cfg_file.is_file():
            continue
        cfg = OmegaConf.load(cfg_file)
        summary = json.loads(mfile.read_text())
        metrics = summary.get("metrics", {})
        runs.append(
            {
                "net": str(cfg.model.net.name),
                "seed": int(cfg.seed),
                "group": str(OmegaConf.select(cfg, "group", default="") or ""),
                "dir": str(mfile.parent),
                "scans": summary.get("scans") or {},
                **{k: metrics.get(k) for k, _ in COLUMNS},
            }
        )
    if not runs:
        raise InputError(f"no finished runs (metrics.json + .hydra/config.yaml) under {root}")
    return runs


def _stat(values: list) -> tuple[float, float, int]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def table(runs: list[dict]) -> str:
    nets = sorted({r["net"] for r in runs})
    head = "| metric | " + " | ".join(f"{n} (n={sum(r['net'] == n for r in runs)})" for n in nets)
    lines = [head + " |", "|---|" + "---|" * len(nets)]
    for key, label in COLUMNS:
        cells = []
        for n in nets:
            m, s, k = _stat([r[key] for r in runs if r["net"] == n])
            cells.append("n/a" if k == 0 else f"{m:.3f} ± {s:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = {"test/agatston_mae", "test_zero/zero_cac_flagged_rate"}
PAIR = ("unet", "unetplusplus")
PAIRED_HEADER = (
    "metric", "U-Net++ − U-Net", "95% CI", "resampled", "seeds", "verdict", "seeds needed",
)  # fmt: skip


def _by_seed(runs: list[dict], net: str, key: str) -> dict:
    """seed -> per-scan records of the metric's split, or the run's number (voxel metrics)."""
    out = {}
    for r in runs:
        if r["net"] != net:
            continue
        recs = r["scans"].get(key.split("/")[0])
        out[r["seed"]] = list(recs) if key not in VOXEL_LEVEL and recs else r[key]
    return out


def paired_rows(runs: list[dict], n_boot: int = 1000) -> list[list]:
    """One row per metric: difference, interval, what was resampled, verdict, seeds needed."""
    from cac_lightning.evaluation.paired import bootstrap_paired, seeds_needed

    a_net, b_net = PAIR
    rows = []
    for key, label in COLUMNS:
        res = bootstrap_paired(
            _by_seed(runs, a_net, key), _by_seed(runs, b_net, key), key, n_boot=n_boot
        )
        if res.n_seeds == 0 or not math.isfinite(res.diff):
            rows.append([label, "n/a", "n/a", res.level, res.n_seeds, "n/a", "n/a"])
            continue
        if res.distinguishable:
            better = (res.diff < 0) == (key in LOWER_IS_BETTER)
            verdict = "U-Net++ better" if better else "U-Net better"
        elif math.isfinite(res.lo):
            verdict = "not distinguishable"
        else:
            verdict = "too few runs for an interval"
        need = seeds_needed(res.diff, res.sd_seed)
        rows.append(
            [
                label,
                f"{res.diff:+.3f}",
                f"[{res.lo:+.3f}, {res.hi:+.3f}]" if math.isfinite(res.lo) else "n/a",
                res.level,
                res.n_seeds,
                verdict,
                "n/a" if not math.isfinite(need) else f"{need:.0f}",
            ]
        )
    return rows


# Metrics without per-scan records in metrics.json: bootstrapped over seeds only.
VOXEL_LEVEL = {"test/precision", "test/recall", "test/dice", "test/iou"}


def paired_table(rows: list[list]) -> str:
    lines = ["| " + " | ".join(PAIRED_HEADER) + " |", "|---" * len(PAIRED_HEADER) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def log_wandb(rows: list[list], group: str, out_dir: Path) -> str | None:
    """The paired table as a W&B table in ``group`` (offline unless WANDB_MODE says otherwise)."""
    import os

    try:
        import wandb
    except ImportError:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project="cac-lightning",
        group=group or None,
        job_type="compare",
        name=f"{group or 'ablation'}-compare",
        dir=str(out_dir),
        mode=os.environ.get("WANDB_MODE", "offline"),
        reinit=True,
    )
    try:
        table = wandb.Table(columns=list(PAIRED_HEADER), data=[[str(c) for c in r] for r in rows])
        run.log({"compare/paired_differences": table})
        return str(run.dir)
    finally:
        run.finish()


def plot(runs: list[dict], path: Path) -> None:
    from cac_lightning.render import new_figure, save_png

    nets = sorted({r["net"] for r in runs})
    keys = [
        ("test/dice", "Dice"),
        ("test/icc_agatston_total", "ICC total"),
        ("test/kappa_linear", "kappa (linear)"),
    ]
    fig = new_figure(7, 3.2, layout=None)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(nets)
    for i, n in enumerate(nets):
        stats = [_stat([r[k] for r in runs if r["net"] == n]) for k, _ in keys]
        ax.bar(
            np.arange(len(keys)) + i * width,
            [s[0] for s in stats],
            width,
            yerr=[s[1] for s in stats],
            label=n,
            capsize=3,
        )
    ax.set_xticks(np.arange(len(keys)) + width * (len(nets) - 1) / 2, [k[1] for k in keys])
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("U-Net vs U-Net++ (mean ± sd over seeds)")
    fig.tight_layout()
    save_png(fig, path, tight=False)


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cac-compare", description=__doc__.splitlines()[0])
    p.add_argument("multirun", help="a multirun folder (or any folder holding runs)")
    p.add_argument("--out", required=True, help="markdown file to write (and <name>.png beside)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--no-wandb", action="store_true", help="do not log the table to W&B")
    a = p.parse_args(argv)
    root = Path(a.multirun)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    if a.n_boot < 100:
        raise InputError(f"--n-boot must be >= 100, got {a.n_boot}")
    runs = gather(root)
    md = table(runs)
    rows = paired_rows(runs, a.n_boot)
    paired = paired_table(rows)
    out = Path(a.out)
    text = (
        f"Runs gathered from `{root}`:\n\n{md}\nPaired difference U-Net++ − U-Net per metric "
        "(mean over seeds of the per-seed difference on the same test scans; 95 % percentile "
        "bootstrap over test scans within each seed, then over seeds; voxel metrics over seeds "
        "only; 'seeds needed': seeds for the interval to exclude 0 at the observed difference "
        f"and seed-to-seed sd):\n\n{paired}"
    )
    atomic_write_text(out, text)
    plot(runs, out.with_suffix(".png"))
    print(md)
    print(paired)
    if not a.no_wandb:
        groups = sorted({r["group"] for r in runs if r["group"]})
        group = groups[0] if groups else ""
        if log_wandb(rows, group, out.parent):
            print(f"W&B: table compare/paired_differences in group {group or '-'} ({out.parent})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-compare", exit_process=argv is None)
