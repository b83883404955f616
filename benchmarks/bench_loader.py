"""Training data-loader throughput (slices/s) of CACDataModule.

Writes a small cohort of random .nii.gz volumes (soft tissue, bone, calcium on a
third of the slices) with SimpleITK, caches it, then times the training loader:

    python benchmarks/bench_loader.py --size 512 --workers 0 2 4 --batches 100

The first batches (worker start-up) are not timed. Prints one line per setting.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cac_lightning.data.datamodule import CACDataModule
from cac_lightning.io.manifest import ManifestRow, write_manifest

AUGMENT = {"p": 0.8, "rotate_deg": 10.0, "scale": 0.1, "hu_shift": 20.0, "hu_scale": 0.05,
           "noise_sd": 10.0}  # fmt: skip


def random_scan(k: int, size: int, n_slices: int) -> tuple[np.ndarray, np.ndarray]:
    """Scan ``k``: noise, an unlabelled bone block and a labelled 400 HU lesion every 3rd slice."""
    rng = np.random.default_rng(k)
    hu = rng.normal(40, 20, size=(n_slices, size, size)).astype(np.int16)
    s = size // 16
    hu[:, 12 * s : 14 * s, 7 * s : 9 * s] = 900
    labels = np.zeros(hu.shape, dtype=np.uint8)
    for z in range(0, n_slices, 3):
        r, c = rng.integers(3 * s, 10 * s, size=2)
        hu[z, r : r + s // 2 + 1, c : c + s // 2 + 1] = 400
        labels[z, r : r + s // 2 + 1, c : c + s // 2 + 1] = 1 + z % 4
    return hu, labels


def write_cohort(root: Path, n_scans: int, size: int, n_slices: int) -> None:
    """Random scans with unlabelled bone and labelled calcium; ``root/manifest.csv``."""
    rows = []
    splits = ["val"] + ["train"] * (n_scans - 1)
    for k in range(n_scans):
        hu, labels = random_scan(k, size, n_slices)
        import SimpleITK as sitk

        for name, arr in ((f"s{k}.nii.gz", hu), (f"s{k}_label.nii.gz", labels)):
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing((200.0 / size, 200.0 / size, 3.0))
            sitk.WriteImage(img, str(root / name))
        image, label = root / f"s{k}.nii.gz", root / f"s{k}_label.nii.gz"
        rows.append(ManifestRow(f"s{k}", f"P{k}", image, label, splits[k]))
    write_manifest(root, rows)


def write_cached_cohort(root: Path, n_scans: int, size: int, n_slices: int) -> None:
    """The same cohort written straight into the scan cache (no SimpleITK, no DICOM).

    The manifest points at small placeholder files; each scan's cache entry
    (``hu.npy``, ``labels.npy``, ``meta.json``, keyed by :func:`cache_key` of its row)
    is written directly, so the loader reads exactly what it reads after a real cache
    build. For machines without SimpleITK (the GPU check).
    """
    import json

    from cac_lightning.data.cache import PREPROCESS_VERSION, cache_key

    rows = []
    splits = ["val"] + ["train"] * (n_scans - 1)
    for k in range(n_scans):
        hu, labels = random_scan(k, size, n_slices)
        image, label = root / f"s{k}.placeholder", root / f"s{k}_label.placeholder"
        image.write_text("see .cache")
        label.write_text("see .cache")
        row = ManifestRow(f"s{k}", f"P{k}", image, label, splits[k])
        rows.append(row)
        entry = root / ".cache" / cache_key(row)
        entry.mkdir(parents=True)
        np.save(entry / "hu.npy", hu)
        np.save(entry / "labels.npy", labels)
        sp = 200.0 / size
        geometry = {"shape": list(hu.shape), "pixel_spacing": [sp, sp], "slice_spacing": 3.0,
                    "origin": [0.0, 0.0, 0.0], "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
                    "slice_thickness": 3.0}  # fmt: skip
        meta = {"version": PREPROCESS_VERSION, "scan_id": row.scan_id, "patient_id": row.patient_id,
                "split": row.split, "geometry": geometry, "kvp": 120.0, "mass_factor": None,
                "ref": {}, "positive": (labels > 0).any(axis=(1, 2)).tolist()}  # fmt: skip
        (entry / "meta.json").write_text(json.dumps(meta))
    write_manifest(root, rows)


def throughput(dm: CACDataModule, batches: int, warmup: int = 3) -> float:
    """Slices per second over ``batches`` training batches after ``warmup``."""
    loader = dm.train_dataloader()
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scans", type=int, default=4)
    ap.add_argument("--slices", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[0])
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument(
        "--prebuilt-cache", action="store_true", help="write the cache directly (no SimpleITK)"
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        writer = write_cached_cohort if args.prebuilt_cache else write_cohort
        writer(root, args.scans, args.size, args.slices)
        t0 = time.perf_counter()
        CACDataModule(str(root)).prepare_data()
        n = args.scans * args.slices
        print(f"cache build: {args.scans} scans x {args.slices} slices of {args.size}^2 "
              f"in {time.perf_counter() - t0:.2f} s")  # fmt: skip
        for workers in args.workers:
            dm = CACDataModule(
                str(root),
                batch_size=args.batch_size,
                num_workers=workers,
                persistent_workers=workers > 0,
                samples_per_epoch=max(n, args.batch_size * (args.batches + 10)),
                augment=None if args.no_augment else AUGMENT,
                crop=args.crop,
            )
            dm.setup("fit")
            rate = throughput(dm, args.batches)
            item = dm.train_dataloader().dataset[0]
            nbytes = sum(item[k].numel() * item[k].element_size() for k in ("image", "target"))
            print(
                f"size {args.size} crop {args.crop} augment {not args.no_augment} "
                f"workers {workers} batch {args.batch_size}: {rate:.0f} slices/s, "
                f"{1e3 / rate:.2f} ms/slice, {nbytes / 2**20:.2f} MiB/sample "
                f"(target {item['target'].dtype}; {os.cpu_count()} CPUs)"
            )


if __name__ == "__main__":
    main()
