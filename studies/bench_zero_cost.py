"""Time every zero-cost score at the target profile (224 px, 3 channels, 1000 classes) on this CPU.

Usage::

    .venv/bin/python studies/bench_zero_cost.py                       # poolformer_s12, batch 16, 3 repeats
    .venv/bin/python studies/bench_zero_cost.py --arch deit_tiny --batch-size 32 --repeats 5

The inputs are one seeded batch of Gaussian images with random labels (the target profile
has no dataset; the scores' cost does not depend on pixel values). Each score runs on a
freshly built, seeded model (building is timed separately and excluded); the table gives
the median and min over repeats. synflow and dss use one all-ones image by definition,
so the batch size does not change their cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.evaluators.dss import dss_score
from vitsearch.evaluators.grad_norm import grad_norm_score
from vitsearch.evaluators.jacob_cov import jacob_cov_score
from vitsearch.evaluators.naswot import naswot_score
from vitsearch.evaluators.snip import snip_score
from vitsearch.evaluators.synflow import synflow_score
from vitsearch.space import build_model, resolve_arch

SCORES = {
    "naswot": naswot_score,
    "synflow": synflow_score,
    "snip": snip_score,
    "grad_norm": grad_norm_score,
    "jacob_cov": jacob_cov_score,
    "dss": dss_score,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="poolformer_s12", help="preset name or config file (default: %(default)s)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--scores", nargs="*", default=list(SCORES), choices=list(SCORES))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    arch = resolve_arch(args.arch)
    gflops = analytic_flops(arch, args.img_size, 3, args.num_classes) / 1e9
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=g)

    def fresh_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(arch, img_size=args.img_size, in_chans=3, num_classes=args.num_classes).train()

    start = time.perf_counter()
    model = fresh_model()
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.arch}: {gflops:.3f} GFLOPs, {params / 1e6:.2f}M params, "
        f"{args.img_size}px / {args.num_classes} classes; "
        f"batch {args.batch_size}, {args.repeats} repeats, {torch.get_num_threads()} threads; build {build_s:.2f}s"
    )
    print(f"| {'score':<10} | {'median s':>9} | {'min s':>7} | {'value':>14} |")
    print(f"|{'-' * 12}|{'-' * 11}|{'-' * 9}|{'-' * 16}|")
    for name in args.scores:
        times, value = [], float("nan")
        for _ in range(args.repeats):
            model = fresh_model()
            start = time.perf_counter()
            value = SCORES[name](model, images, labels)
            times.append(time.perf_counter() - start)
        print(f"| {name:<10} | {statistics.median(times):>9.2f} | {min(times):>7.2f} | {value:>14.6g} |")


if __name__ == "__main__":
    main()
