"""CPU time per training sample of the loader path, single thread (contention-robust).

Times ``SliceDataset.__getitem__`` + ``default_collate`` + the int64 conversion of the
targets on the device side (``CACDataModule.on_after_batch_transfer``) with
``time.process_time``, and prints the bytes one sample carries between a loader worker
and the GPU copy:

    python benchmarks/bench_item_cost.py [--augment] [--size 512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loader import AUGMENT, write_cohort  # noqa: E402

from cac_lightning.data.datamodule import CACDataModule  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--samples", type=int, default=240)
    ap.add_argument("--augment", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cohort(root, 3, args.size, 40)
        dm = CACDataModule(str(root), augment=AUGMENT if args.augment else None, batch_size=4)
        dm.prepare_data()
        dm.setup("fit")
        ds = dm.train_dataloader().dataset
        keys = [(i % len(ds), 1000 + i) for i in range(args.samples)]
        for k in keys[:8]:
            ds[k]
        t0 = time.process_time()
        for j in range(0, len(keys), 4):
            batch = dm.on_after_batch_transfer(default_collate([ds[k] for k in keys[j : j + 4]]), 0)
        dt = (time.process_time() - t0) / len(keys)
        item = ds[keys[0]]
        nbytes = sum(item[k].numel() * item[k].element_size() for k in ("image", "target"))
        print(
            f"size {args.size} augment {args.augment}: {dt * 1e3:.2f} ms CPU per sample, "
            f"{nbytes / 2**20:.2f} MiB per sample (target {item['target'].dtype} -> "
            f"{batch['target'].dtype})"
        )


if __name__ == "__main__":
    main()
