"""FLOPs against measured CPU time: every token mixer at two token counts, and the block-diagonal MLP.

Does a FLOPs saving become a time saving? Each row times one layer on its own, in its
deployed form, at batch 1 on ``--threads`` threads, with torch (eager, inference mode) and
with onnxruntime (the layer exported as ONNX opset 17, all graph optimisations), and sets the
median milliseconds against the layer's analytic FLOPs (one fused multiply-add = one FLOP,
the convention of ``vitsearch flops``, equal to fvcore's count).

- **Mixers**: width 192 and 3 heads of 64 (DeiT-Tiny's), tokens ``14x14 + cls = 197`` (224 px,
  patch 16) and ``28x28 + cls = 785`` (patch 8); each mixer with its default options.
  ``identity`` is RIFormer's affine in its training form (0 FLOPs, element-wise): deployed, it
  folds into the norm and costs nothing at all.
- **Block-diagonal MLP** (SCHEME): width 192 with ``G = 1, 2, 4, 8`` groups and expansion
  ``E = 2G``, so every row has the same FLOPs (``2 E d^2 / G = 4 d^2`` per token) but a
  ``G``-times wider hidden layer: equal budget, more capacity. ``G = 1`` is timm's dense ``Mlp``.
  Timed in the deployed form (``reparameterize()``: kernel ``auto``).
- **Kernels** (the measurements behind the deployed forms): the block-diagonal MLP's exact
  kernels (``bmm``, grouped ``conv``, ``split`` per-group linears, and ``dense`` on the
  zero-filled block-diagonal weight, which does ``G`` times the multiply-adds) and FNet's (the
  FFT and ``real_dft2_matmul``), at the rows' shapes, in both backends, GFLOP/s by the counted
  FLOPs. ``--no-kernels`` skips them.

Usage::

    OMP_NUM_THREADS=1 python studies/bench_flops_to_time.py [--threads 1] [--repeats 25] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from torch import nn

from vitsearch.evaluators.latency import measure_module_latency
from vitsearch.space import BlockConfig, ForwardContext, MixerConfig, TokenGrid, get_mixer, list_mixers
from vitsearch.space.layers import Mlp, make_mlp
from vitsearch.space.mixers.fnet import real_dft2_matmul
from vitsearch.space.scheme import BlockDiagonalMlp

WIDTH, HEADS = 192, 3
GRIDS = (14, 28)  # token grid sides: 197 and 785 tokens with the cls token
MLP_GROUPS = (1, 2, 4, 8)


class MixerOnly(nn.Module):
    """One mixer on ``(B, N, C)`` tokens of a fixed grid, in its deployed form."""

    def __init__(self, name: str, grid: TokenGrid):
        super().__init__()
        cls = get_mixer(name)
        self.cfg = MixerConfig(type=name, heads=HEADS if cls.USES_HEADS else None)
        mixer = cls(WIDTH, self.cfg, grid)
        reparameterize = getattr(mixer, "reparameterize", None)  # e.g. Performer: freeze features
        self.mixer = reparameterize() if callable(reparameterize) else mixer
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, ForwardContext(grid=self.grid))

    def flops(self) -> int:
        return get_mixer(self.cfg.type).flops(WIDTH, self.cfg, self.grid)


class Fn(nn.Module):
    """A function as a module (kernel rows)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class DenseBlockDiagonal(nn.Module):
    """The block-diagonal MLP as dense linears on its zero-filled block-diagonal weights."""

    def __init__(self, mlp: BlockDiagonalMlp):
        super().__init__()
        g = mlp.groups
        self.fc1, self.fc2 = nn.Linear(mlp.dim, mlp.hidden), nn.Linear(mlp.hidden, mlp.dim)
        with torch.no_grad():
            for dense, layer in ((self.fc1, mlp.fc1), (self.fc2, mlp.fc2)):
                blocks = layer.weight.view(g, layer.out_features // g, layer.in_features // g)
                dense.weight.copy_(torch.block_diag(*blocks))
                dense.bias.copy_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


def kernel_rows(threads: int, repeats: int) -> list[str]:
    lines = ["| kernel | tokens | MFLOPs | torch ms | onnxruntime ms | torch GFLOP/s | onnxruntime GFLOP/s |"]
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for side in GRIDS:
        grid = TokenGrid(side, side, 1)
        fnet = MixerOnly("fnet", grid).flops()
        forms = {"fnet fft2": Fn(lambda x: torch.fft.fft2(x).real), "fnet real_dft2_matmul": Fn(real_dft2_matmul)}
        for groups in MLP_GROUPS[1:]:
            torch.manual_seed(0)
            mlp = BlockDiagonalMlp(WIDTH, 2 * groups * WIDTH, groups).eval()
            for form in ("bmm", "conv", "split"):
                forms[f"G={groups} {form}"] = (
                    mlp if form == "bmm" else BlockDiagonalMlp(WIDTH, mlp.hidden, groups, form)
                )
                forms[f"G={groups} {form}"].load_state_dict(mlp.state_dict())
            forms[f"G={groups} dense (zero-filled)"] = DenseBlockDiagonal(mlp)
        for label, module in forms.items():
            flops = (
                fnet if label.startswith("fnet") else Mlp.flops(WIDTH, BlockConfig(mlp_ratio=2.0), grid.tokens)
            )  # = 2 E d^2 / G
            t_ms, o_ms = measure(module.eval(), grid.tokens, threads, repeats)
            lines.append(
                f"| {label} | {grid.tokens} | {flops / 1e6:.1f} | {t_ms:.3f} | {o_ms:.3f} "
                f"| {gflops_per_s(flops, t_ms)} | {gflops_per_s(flops, o_ms)} |"
            )
            print(lines[-1], flush=True)
    return lines


def measure(module: nn.Module, tokens: int, threads: int, repeats: int) -> tuple[float, float]:
    x = torch.randn(1, tokens, WIDTH, generator=torch.Generator().manual_seed(0))
    return tuple(
        measure_module_latency(module, x, threads, backend, warmup=3, repeats=repeats).median_ms
        for backend in ("torch", "onnxruntime")
    )


def gflops_per_s(flops: int, ms: float) -> str:
    return f"{flops / ms / 1e6:.1f}" if flops else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("studies/flops_to_time.md"))
    parser.add_argument("--no-kernels", action="store_true", help="skip the kernel comparison table")
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.time()

    head = "| {} | tokens | MFLOPs | torch ms | onnxruntime ms | torch GFLOP/s | onnxruntime GFLOP/s |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    lines = [head.format("mixer"), rule]
    for name in list_mixers():
        for side in GRIDS:
            grid = TokenGrid(side, side, 1)
            module = MixerOnly(name, grid)
            flops = module.flops()
            t_ms, o_ms = measure(module, grid.tokens, args.threads, args.repeats)
            lines.append(
                f"| {name} | {grid.tokens} | {flops / 1e6:.1f} | {t_ms:.3f} | {o_ms:.3f} "
                f"| {gflops_per_s(flops, t_ms)} | {gflops_per_s(flops, o_ms)} |"
            )
            print(lines[-1], flush=True)
    lines += ["", head.format("MLP (G, E)"), rule]
    for side in GRIDS:
        tokens = side * side + 1
        for groups in MLP_GROUPS:
            cfg = BlockConfig(mlp_ratio=2.0 * groups, mlp_groups=groups)
            module = make_mlp(WIDTH, cfg)
            module = module.reparameterize() if hasattr(module, "reparameterize") else module  # deployed form
            flops = Mlp.flops(WIDTH, cfg, tokens)
            t_ms, o_ms = measure(module, tokens, args.threads, args.repeats)
            lines.append(
                f"| G={groups}, E={2 * groups} | {tokens} | {flops / 1e6:.1f} | {t_ms:.3f} | {o_ms:.3f} "
                f"| {gflops_per_s(flops, t_ms)} | {gflops_per_s(flops, o_ms)} |"
            )
            print(lines[-1], flush=True)

    if not args.no_kernels:
        lines += ["", *kernel_rows(args.threads, args.repeats)]

    import onnxruntime

    note = (
        f"Medians of {args.repeats} timed runs after 3 warm-up runs, batch 1, {args.threads} thread(s), "
        f"width {WIDTH}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{platform.processor() or platform.machine()}; {time.time() - started:.0f} s in all. "
        "Command: `OMP_NUM_THREADS=1 .venv/bin/python studies/bench_flops_to_time.py`."
    )
    args.out.write_text("\n".join(lines) + "\n\n" + note + "\n")
    print(note)


if __name__ == "__main__":
    main()
