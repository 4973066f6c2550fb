"""Deployed kernels: the same function by a faster kernel (FNet's DFT as matmuls, PoolFormer's
channels-last pooling, the block-diagonal MLP's per-shape kernel), outputs and FLOPs unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitsearch.evaluators.complexity import trace_flops
from vitsearch.space import ForwardContext, MixerConfig, TokenGrid, get_mixer
from vitsearch.space.layers import join_prefix, split_prefix
from vitsearch.space.mixers.fnet import real_dft2_matmul
from vitsearch.space.onnx_export import export_onnx_module, onnx_session

# --- FNet: Re(F_N X F_C) as real matrix products ----------------------------------------------

# float32 matmul DFT against the float64 FFT: the error grows with the output scale
# (|y| up to sqrt(N C) * |x|); 2e-6 of the largest output is ~5x the worst error seen.
FNET_RTOL = 2e-6


@pytest.mark.parametrize(("tokens", "dim"), [(1, 4), (2, 1), (5, 3), (16, 8), (50, 64), (197, 192), (65, 128)])
def test_real_dft2_matmul_equals_the_fft(tokens, dim):
    x = torch.randn(2, tokens, dim, generator=torch.Generator().manual_seed(tokens))
    want = torch.fft.fft2(x.double()).real
    got = real_dft2_matmul(x)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert (got.double() - want).abs().max() <= FNET_RTOL * want.abs().max()
    torch.testing.assert_close(real_dft2_matmul(x.double()), want, rtol=0, atol=1e-9 * want.abs().max().item())


def _fnet(grid: TokenGrid, dim: int):
    return get_mixer("fnet")(dim, MixerConfig(type="fnet"), grid)


class _MixerOnly(torch.nn.Module):
    def __init__(self, mixer, grid):
        super().__init__()
        self.mixer, self.grid = mixer, grid

    def forward(self, x):
        return self.mixer(x, ForwardContext(grid=self.grid))


def test_fnet_exports_as_matmuls_and_matches_the_fft_in_onnxruntime(tmp_path):
    import onnx

    grid, dim = TokenGrid(7, 7, 1), 64
    module = _MixerOnly(_fnet(grid, dim), grid)
    x = torch.randn(2, grid.tokens, dim, generator=torch.Generator().manual_seed(0))
    path = export_onnx_module(module, x[:1], tmp_path / "fnet.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"DFT", "Cos", "Sin", "Range"} and "MatMul" in ops  # the DFT matrices are constants
    (out,) = onnx_session(path).run(None, {"images": x.numpy()})
    want = torch.fft.fft2(x.double()).real
    assert (torch.from_numpy(out).double() - want).abs().max() <= FNET_RTOL * want.abs().max()


def test_fnet_counts_the_transform_whichever_kernel_runs():
    grid, dim = TokenGrid(7, 7, 1), 64
    mixer = _fnet(grid, dim)
    x = torch.randn(1, grid.tokens, dim)
    counted = get_mixer("fnet").flops(dim, mixer.cfg, grid)
    assert trace_flops(_MixerOnly(mixer, grid), (x,)) == counted  # torch traces the FFT


# --- Pool: channels-last view, the same numbers as the NCHW round trip ------------------------


def _pool_nchw(x: torch.Tensor, grid: TokenGrid, size: int) -> torch.Tensor:
    prefix, spatial = split_prefix(x, grid)
    spatial = spatial.contiguous()
    pooled = F.avg_pool2d(spatial, size, 1, size // 2, count_include_pad=False)
    return join_prefix(torch.zeros_like(prefix), pooled - spatial)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("side", "prefix", "size"), [(7, 1, 3), (5, 0, 3), (6, 1, 5), (1, 1, 3)])
def test_pool_channels_last_equals_the_nchw_form(batch, side, prefix, size):
    grid = TokenGrid(side, side, prefix)
    mixer = get_mixer("pool")(32, MixerConfig(type="pool", options=(("pool_size", size),)), grid)
    x = torch.randn(batch, grid.tokens, 32, dtype=torch.float64)
    out = mixer(x, ForwardContext(grid=grid))
    torch.testing.assert_close(out, _pool_nchw(x, grid, size), rtol=0, atol=1e-12)
    assert out.shape == x.shape and (out[:, :prefix] == 0).all()
    x.requires_grad_(True)
    mixer(x, ForwardContext(grid=grid)).square().sum().backward()
    assert torch.isfinite(x.grad).all()


# --- Block-diagonal MLP: the deployed form picks its kernel per shape and backend ---------------


def test_deployed_block_diagonal_mlp_keeps_weights_outputs_and_flops():
    from vitsearch.evaluators.complexity import analytic_flops, count_flops
    from vitsearch.space import ArchConfig, BlockConfig, StageConfig, StemConfig, build_model
    from vitsearch.space.scheme import BlockDiagonalMlp

    blocks = tuple(
        BlockConfig(mixer=MixerConfig(type="attention", heads=2), mlp_ratio=2.0 * g, mlp_groups=g, cca=g == 8)
        for g in (2, 4, 8)
    )
    arch = ArchConfig(stages=(StageConfig(width=64, blocks=blocks),), stem=StemConfig(patch_size=8))
    model = build_model(arch, img_size=32).eval()
    deployed = model.reparameterize()
    mlps = [m for m in deployed.modules() if isinstance(m, BlockDiagonalMlp)]
    assert [m.form for m in mlps] == ["auto"] * 3 and [m.kernel() for m in mlps] == ["bmm", "bmm", "split"]
    assert all(m.form != "auto" for m in model.modules() if isinstance(m, BlockDiagonalMlp))  # training form kept
    trained = {k: v.shape for k, v in model.state_dict().items() if ".mlp." in k and "theta" not in k}
    assert {k.replace(".mlp.mlp.", ".mlp."): v for k, v in trained.items()} == {
        k: v.shape for k, v in deployed.state_dict().items() if ".mlp." in k
    }
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model(x), rtol=1e-5, atol=1e-5)
    assert count_flops(deployed, img_size=32) == analytic_flops(arch, img_size=32)


@pytest.mark.parametrize("groups", [2, 8])
def test_block_diagonal_mlp_exports_split_and_matches_in_onnxruntime(tmp_path, groups):
    import onnx

    from vitsearch.space.scheme import BlockDiagonalMlp

    mlp = BlockDiagonalMlp(64, 64 * 2 * groups, groups).reparameterize().eval()
    x = torch.randn(2, 17, 64)
    path = export_onnx_module(mlp, x[:1], tmp_path / "mlp.onnx")
    matmuls = [n for n in onnx.load(str(path)).graph.node if n.op_type in ("MatMul", "Gemm")]
    assert len(matmuls) == 2 * groups  # one linear per group and layer: the split kernel
    (out,) = onnx_session(path).run(None, {"images": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), mlp(x), rtol=1e-5, atol=1e-5)
