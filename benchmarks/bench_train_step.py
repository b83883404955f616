"""Full Lightning training steps of the paper recipes: loader + Lightning + loss + metrics.

Composes ``experiment=paper_unet`` / ``paper_unetplusplus`` exactly as ``cac-train`` does
(512², bf16-mixed, channels_last, batch 4, focal loss, balanced sampler, 8 workers), points it
at a cohort of random volumes written here, and times ``trainer.fit`` steps after a warm-up
(``torch.cuda.synchronize`` at both ends), so the figure includes waiting for the loader, the
Lightning loop, the optimiser and the torchmetrics updates. Validation is off (a training-step
figure). Prints one line per setting; ``--ckpt-out`` keeps the last checkpoint (for
``cac-score --ckpt``):

    python benchmarks/bench_train_step.py --nets unet unetplusplus --compile off on --steps 60
    python benchmarks/bench_train_step.py --nets unetplusplus --compile graphs   # CUDA graphs

``--barrier DIR --barrier-n N`` makes N concurrent copies start their timed steps together
(``bench_concurrent_trials.py``).

``--dry`` runs the same code on CPU at tiny sizes (64², channels 4..64, fp32, 0 workers) to check
the script before spending GPU time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loader import write_cached_cohort  # noqa: E402


def wait_at_barrier(folder: Path, n: int, timeout_s: float = 300.0) -> None:
    """Mark this process ready in ``folder`` and wait until ``n`` processes are."""
    import os

    (folder / f"ready-{os.getpid()}").touch()
    end = time.monotonic() + timeout_s
    while len(list(folder.glob("ready-*"))) < n and time.monotonic() < end:
        time.sleep(0.05)


class StepTimer(Callback):
    """Wall time from the end of step ``warmup`` to the end of the last step (after the barrier,
    when one is given)."""

    def __init__(self, warmup: int, barrier: Path | None = None, barrier_n: int = 1) -> None:
        self.warmup = warmup
        self.barrier, self.barrier_n = barrier, barrier_n
        self.t0: float | None = None
        self.t1: float | None = None
        self.steps = 0

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self.warmup:
            self._sync()
            if self.barrier is not None:
                wait_at_barrier(self.barrier, self.barrier_n)
            self.t0 = time.perf_counter()
        elif step > self.warmup:
            self._sync()
            self.t1 = time.perf_counter()
            self.steps = step - self.warmup


def compose(experiment: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cac_lightning.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return hydra_compose("train", overrides=[f"experiment={experiment}", *overrides])


def run(net: str, compile_: str, data_dir: Path, args, ckpt_out: Path | None) -> str:
    import lightning as L
    from hydra.utils import instantiate

    overrides = [
        f"data.data_dir={data_dir}",
        f"paths.output_dir={data_dir.parent / 'out'}",
        f"model.compile={str(compile_ == 'on').lower()}",
        f"model.cuda_graphs={str(compile_ == 'graphs').lower()}",
    ]
    if args.workers is not None:
        overrides.append(f"data.num_workers={args.workers}")
    if args.dry:
        overrides += [
            "trainer=cpu",
            "model.net.channels=[4,8,16,32,64]",
            "model.channels_last=false",
            "data.num_workers=0",
            "data.pin_memory=false",
            "data.persistent_workers=false",
        ]
    cfg = compose(f"paper_{net}", overrides)
    L.seed_everything(0, workers=True)
    dm = instantiate(cfg.data)
    model = instantiate(cfg.model)
    timer = StepTimer(args.warmup, args.barrier, args.barrier_n)
    trainer = instantiate(
        cfg.trainer,
        max_epochs=-1,
        max_steps=args.warmup + args.steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, datamodule=dm)
    if ckpt_out is not None:
        trainer.save_checkpoint(ckpt_out)
    if timer.t0 is None or timer.t1 is None or timer.steps == 0:
        return f"{net} compile={compile_}: too few steps to time"
    dt = (timer.t1 - timer.t0) / timer.steps
    bs = int(cfg.data.batch_size)
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return (
        f"train step paper_{net} {cfg.trainer.precision} channels_last={cfg.model.channels_last} "
        f"compile={compile_} batch {bs} workers {cfg.data.num_workers}: {dt * 1e3:.1f} ms/step, "
        f"{bs / dt:.1f} slices/s, peak GPU memory {mem:.2f} GiB ({timer.steps} timed steps)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=["unet", "unetplusplus"])
    ap.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on", "graphs"])
    ap.add_argument("--workers", type=int, default=None, help="data.num_workers (default: 8)")
    ap.add_argument("--barrier", type=Path, default=None, help="folder of a start barrier")
    ap.add_argument("--barrier-n", type=int, default=1, help="processes at the barrier")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scans", type=int, default=4)
    ap.add_argument("--slices", type=int, default=40)
    ap.add_argument("--ckpt-out", type=Path, default=None, help="save the last run's checkpoint")
    ap.add_argument("--dry", action="store_true", help="CPU, tiny sizes: checks the script")
    args = ap.parse_args()
    if args.dry:
        args.size, args.scans, args.slices = 64, 3, 8
        args.steps, args.warmup = min(args.steps, 3), min(args.warmup, 2)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "cohort"
        data_dir.mkdir()
        write_cached_cohort(data_dir, args.scans, args.size, args.slices)
        runs = [(n, c) for n in args.nets for c in args.compile]
        for i, (net, compile_) in enumerate(runs):
            ckpt = args.ckpt_out if i == len(runs) - 1 else None
            t0 = time.perf_counter()
            line = run(net, compile_, data_dir, args, ckpt)
            print(f"{line}; run {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
