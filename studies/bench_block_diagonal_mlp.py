"""Benchmark the two forms of SCHEME's block-diagonal MLP: grouped 1x1 conv vs batched matmul.

Both forms hold the same parameters and compute the same function
(``vitsearch.space.scheme.BlockDiagonalMlp``); this measures which is faster so that
``DEFAULT_FORM`` is chosen by measurement. Shapes are the SCHEMEformer-PPAA-S12 stages at
224x224 (E = 8): width 64 at 56x56 = 3136 tokens, 128 at 784, 320 at 196, 512 at 49; the dense
timm ``Mlp`` (G = 1) is printed for reference. Times are medians over ``--repeats`` runs after
warm-up, in milliseconds per batch.

Usage::

    python studies/bench_block_diagonal_mlp.py [--batch 8] [--repeats 7] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vitsearch.space.layers import Mlp
from vitsearch.space.scheme import FORMS, BlockDiagonalMlp

STAGES = ((64, 3136), (128, 784), (320, 196), (512, 49))  # (width, tokens) of SCHEMEformer-S12 at 224
GROUPS = (2, 4, 8)
EXPANSION = 8


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def bench_module(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(inference ms, forward+backward ms) for one batch."""

    def infer():
        with torch.inference_mode():
            module(x)

    def train_step():
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    return time_ms(infer, x.device, repeats), time_ms(train_step, x.device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    header = f"{'width':>5} {'tokens':>6} {'G':>2} | " + " | ".join(f"{f + ' inf':>9} {f + ' f+b':>9}" for f in FORMS)
    print(f"device={device} batch={args.batch} threads={torch.get_num_threads()} E={EXPANSION} (ms, median)")
    print(header + " | faster (inf / f+b)")
    print("-" * len(header) + "-" * 22)
    wins = {f: 0 for f in FORMS}
    for width, tokens in STAGES:
        x = torch.randn(args.batch, tokens, width, device=device, requires_grad=False)
        dense = Mlp(width, width * EXPANSION).to(device)
        d_inf, d_fb = bench_module(dense, x, args.repeats)
        print(f"{width:>5} {tokens:>6} {1:>2} | dense Mlp {d_inf:9.2f} {d_fb:9.2f}")
        for g in GROUPS:
            mlp = BlockDiagonalMlp(width, width * EXPANSION, g).to(device)
            row = {}
            for form in FORMS:
                mlp.form = form
                row[form] = bench_module(mlp, x, args.repeats)
            best_inf = min(FORMS, key=lambda f: row[f][0])
            best_fb = min(FORMS, key=lambda f: row[f][1])
            wins[best_inf] += 1
            wins[best_fb] += 1
            cells = " | ".join(f"{row[f][0]:9.2f} {row[f][1]:9.2f}" for f in FORMS)
            print(f"{width:>5} {tokens:>6} {g:>2} | {cells} | {best_inf} / {best_fb}")
    print("wins (inference + forward/backward cases):", ", ".join(f"{f}={n}" for f, n in wins.items()))


if __name__ == "__main__":
    main()
