"""Does a checkpoint score the same scan the same on three pixel grids? (issue 9 acceptance)

For each COCA sample scan: the native DICOM series, and the same scan resampled in-plane to
0.7 mm and 0.5 mm pixels (:func:`cac_lightning.data.resample.resample_scan`: bilinear with
anti-aliasing) and written with the project's own writer
(:func:`cac_lightning.io.write_dicom_series`) under ``--work`` (default a new folder in /tmp,
never the repository). All nine series go through one ``cac-score --ckpt`` run (the console
command, in a subprocess); the script prints per grid the predicted per-vessel Agatston, the
``warnings`` of the JSON and the inference seconds, then per scan the largest relative spread
between the grids ((max - min) / max per vessel; goal <= 10 %) and the expert reference
(the COCA XML contours imported by :mod:`cac_lightning.sources.coca`, scored as
``cac-score --mask`` scores them), also on each resampled grid (``expert@0.7mm``: the label
map resampled nearest and gated like a training label map), which shows how much the Agatston
score itself moves with the grid, whatever the model.

    python benchmarks/grid_consistency.py --ckpt outputs/demo/best.ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KEYS = ("LM", "LAD", "CX", "RCA", "total")
DEFAULT_COCA = "/work/shared/data/coca-sample"


def _grids(rows, work: Path, spacings: list[float]) -> tuple[list[tuple[str, str, str]], dict]:
    """(scan_id, grid, series folder) for the native series and each resampled grid, and the
    expert Agatston per grid (the expert label map resampled like a training label map:
    nearest neighbour, kept where the resampled HU reach the threshold; scored on that grid)."""
    from cac_lightning.data.resample import resample_scan
    from cac_lightning.io import read_label_map, read_volume, write_dicom_series
    from cac_lightning.scoring import score_scan
    from cac_lightning.scoring.config import threshold_for_kvp

    out, expert = [], {}
    for row in rows:
        out.append((f"{row.scan_id}_native", "native", str(row.image)))
        vol = read_volume(row.image)
        labels = read_label_map(row.label, vol.geometry)
        thr = threshold_for_kvp(vol.kvp)
        for s in spacings:
            sid = f"{row.scan_id}_{s:g}mm"
            folder = work / "series" / sid
            hu, lab, geom = resample_scan(vol.hu, labels, vol.geometry, s, thr)
            sc = score_scan(hu, lab, geom, kvp=vol.kvp, mass_factor=vol.mass_factor)
            expert[sid] = [float(sc.vessels[k].agatston) for k in KEYS]
            if not folder.is_dir():
                write_dicom_series(
                    hu, geom, folder, patient_id=row.scan_id, kvp=vol.kvp or 120.0,
                    mass_factor=vol.mass_factor,
                    description=f"{row.scan_id} resampled to {s:g} mm pixels",
                )  # fmt: skip
            out.append((sid, f"{s:g} mm", str(folder)))
    return out, expert


def _score(ckpt: str, series: list[tuple[str, str, str]], work: Path, device: str) -> Path:
    from cac_lightning.io.manifest import ManifestRow, write_manifest

    manifest = work / "grids.csv"
    rows = [ManifestRow(sid, sid.split("_")[0], Path(p), None, "test") for sid, _, p in series]
    write_manifest(manifest, rows)
    out = work / "scores"
    cmd = [
        sys.executable, "-c", "from cac_lightning.cli.score import main; main()",
        str(manifest), "--ckpt", ckpt, "--out", str(out), "--device", device,
    ]  # fmt: skip
    print("$ cac-score", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="a cac-train checkpoint")
    p.add_argument("--coca-root", default=os.environ.get("CAC_COCA_ROOT", DEFAULT_COCA))
    p.add_argument("--work", default=None, help="work folder (default: a new one in /tmp)")
    p.add_argument("--spacings", type=float, nargs="+", default=[0.7, 0.5])
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    from cac_lightning.io.manifest import read_manifest
    from cac_lightning.sources.coca import import_coca

    work = Path(args.work or tempfile.mkdtemp(prefix="cac-grids-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "coca" / "manifest.csv"
    if not manifest.is_file():
        import_coca(args.coca_root, work / "coca")
    rows = read_manifest(manifest)
    series, expert = _grids(rows, work, args.spacings)
    out = _score(args.ckpt, series, work, args.device)

    print(f"\ncheckpoint: {args.ckpt}   work folder: {work}")
    print(f"{'scan':<16}{'grid':<9}" + "".join(f"{k:>9}" for k in KEYS) + "  infer s  warnings")
    worst = {}
    for row in rows:
        preds = []
        for sid, grid, _ in [s for s in series if s[0].startswith(row.scan_id + "_")]:
            (path,) = out.glob(f"{sid}-*.json")  # cac-score appends a key hash to the id
            rep = json.loads(path.read_text())
            a = [float(rep["scores"][k]["agatston"]) for k in KEYS]
            preds.append(a)
            warn = "; ".join(rep.get("warnings", [])) or "-"
            infer = rep.get("timing_s", {}).get("infer", float("nan"))
            print(f"{row.scan_id:<16}{grid:<9}" + "".join(f"{v:9.1f}" for v in a)
                  + f"  {infer:7.1f}  {warn}")  # fmt: skip
        ref = [float(row.ref.get(k, {}).get("agatston", float("nan"))) for k in KEYS]
        print(f"{row.scan_id:<16}{'expert':<9}" + "".join(f"{v:9.1f}" for v in ref))
        for sid, grid, _ in series:
            if sid in expert and sid.startswith(row.scan_id + "_"):
                label = "expert@" + grid.replace(" ", "")
                print(f"{row.scan_id:<16}{label:<9}" + "".join(f"{v:9.1f}" for v in expert[sid]))
        spread = []
        for i in range(len(KEYS)):
            vals = [pr[i] for pr in preds]
            top = max(vals)
            spread.append(0.0 if top == 0 else (top - min(vals)) / top)
        worst[row.scan_id] = spread
        print(f"{row.scan_id:<16}{'spread':<9}" + "".join(f"{100 * s:8.0f}%" for s in spread))
    ok = all(max(s) <= 0.10 for s in worst.values())
    print(f"\nlargest spread between grids: {100 * max(max(s) for s in worst.values()):.0f} % "
          f"(goal <= 10 %: {'met' if ok else 'not met'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
