"""``cac-compare``: gather the runs of a multirun and compare architectures, mean ± sd over seeds.

``cac-compare outputs/<task>/multiruns/<time> --out experiments/unet_vs_unetpp/results.md``
reads each job's ``metrics.json`` and ``.hydra/config.yaml`` and writes a markdown table
(the paper's Table 3 metrics and the Table 6/7 headline figures) and a PNG bar plot.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
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
    ("test_zero/fp_rate", "Zero-CAC FP rate"),
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
        metrics = json.loads(mfile.read_text()).get("metrics", {})
        runs.append(
            {
                "net": str(cfg.model.net.name),
                "seed": int(cfg.seed),
                "dir": str(mfile.parent),
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


def plot(runs: list[dict], path: Path) -> None:
    from cac_lightning.evaluation.plots import new_figure, save_png

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
    a = p.parse_args(argv)
    root = Path(a.multirun)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    runs = gather(root)
    md = table(runs)
    out = Path(a.out)
    atomic_write_text(out, f"Runs gathered from `{root}`:\n\n{md}")
    plot(runs, out.with_suffix(".png"))
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    code = run_cli(lambda: _main(argv), "cac-compare")
    if argv is None:
        sys.exit(code)
    return code
