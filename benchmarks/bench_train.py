"""Training throughput (slices/s) of a network: forward + focal loss + backward + Adam step.

    python benchmarks/bench_train.py --net unetplusplus --size 512 --batch 4 --precision bf16
    python benchmarks/bench_train.py --net unetplusplus --size 96 --channels 8 16 32 64 --batch 12

Random inputs on the chosen device (CUDA when available); the first steps (warm-up, cuDNN
autotuning) are not timed. Prints one line. Data-loader throughput: bench_loader.py.
"""

from __future__ import annotations

import argparse
import time

import torch

from cac_lightning.models import build_criterion, build_net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="unetplusplus")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    p.add_argument("--precision", choices=("32", "bf16"), default="32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()

    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    net = build_net(a.net, channels=tuple(a.channels)).to(dev)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    if a.compile:
        net = torch.compile(net)
    crit = build_criterion("focal")
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(a.batch, 2, a.size, a.size, device=dev).to(memory_format=fmt)
    y = torch.randint(0, 5, (a.batch, a.size, a.size), device=dev)
    ctx = (
        torch.autocast(dev.type, dtype=torch.bfloat16)
        if a.precision == "bf16"
        else torch.autocast(dev.type, enabled=False)
    )

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx:
            loss = crit(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    name = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    )
    print(
        f"{a.net} {a.size}² batch {a.batch} channels {a.channels} precision {a.precision} "
        f"on {name}: {a.steps * a.batch / dt:.1f} slices/s ({dt / a.steps * 1000:.1f} ms/step)"
    )


if __name__ == "__main__":
    main()
