"""Window attention: Swin's local windows written out by hand, padding, the global cls query, and
the places a mixer file reaches without any other edit (CLI list, full space, FLOPs, ONNX)."""

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vitsearch.evaluators.complexity import analytic_flops, count_flops
from vitsearch.space import (
    ArchConfig,
    BlockConfig,
    ConfigError,
    ForwardContext,
    MixerConfig,
    StageConfig,
    StemConfig,
    TokenGrid,
    build_model,
    get_mixer,
    validate,
)
from vitsearch.space.onnx_export import export_onnx, onnx_max_abs_diff
from vitsearch.space.search_space import SearchSpace

SPACES_DIR = Path(__file__).resolve().parents[2] / "space" / "spaces"
g = torch.Generator().manual_seed(0)


def window_mixer(dim: int, heads: int, window: int, grid: TokenGrid):
    cfg = MixerConfig("window", heads=heads, options=(("window", window),))
    return get_mixer("window")(dim, cfg, grid).eval()


def by_hand(mixer, x: torch.Tensor, grid: TokenGrid, window: int) -> torch.Tensor:
    """Each window's real tokens attend among themselves; the cls token attends to every token."""
    b, n, c = x.shape
    heads, d = mixer.heads, c // mixer.heads
    q, k, v = mixer.qkv(x).reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4)  # each (B, H, N, d_h)

    def attend(rows: list[int], cols: list[int]) -> torch.Tensor:
        return ((q[:, :, rows] @ k[:, :, cols].transpose(-2, -1)) * d**-0.5).softmax(-1) @ v[:, :, cols]

    out = torch.zeros_like(q)
    wh, ww, p = min(window, grid.height), min(window, grid.width), grid.prefix
    for top in range(0, grid.height, wh):
        for left in range(0, grid.width, ww):
            rows = range(top, min(top + wh, grid.height))
            idx = [p + r * grid.width + col for r in rows for col in range(left, min(left + ww, grid.width))]
            out[:, :, idx] = attend(idx, idx)
    if p:
        out[:, :, :p] = attend(list(range(p)), list(range(n)))
    return mixer.proj(out.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize(
    ("height", "width", "prefix", "window"),
    [(6, 6, 0, 3), (5, 7, 1, 3), (4, 4, 1, 7), (7, 5, 0, 2), (3, 3, 1, 1)],
)
def test_equals_attention_window_by_window(height, width, prefix, window):
    grid = TokenGrid(height, width, prefix)
    mixer = window_mixer(32, 4, window, grid)
    x = torch.randn(2, grid.tokens, 32, generator=g)
    with torch.no_grad():
        got = mixer(x, ForwardContext(grid=grid))
        torch.testing.assert_close(got, by_hand(mixer, x, grid, window), atol=1e-5, rtol=1e-5)


def test_a_token_moves_only_its_window_and_the_cls_token():
    grid, window = TokenGrid(6, 6, 1), 3
    mixer = window_mixer(16, 2, window, grid)
    x = torch.randn(1, grid.tokens, 16, generator=g)
    y = x.clone()
    y[0, 1 + 0] += 1.0  # grid token (0, 0): top-left window
    with torch.no_grad():
        changed = (mixer(x, ForwardContext(grid=grid)) - mixer(y, ForwardContext(grid=grid))).abs().amax(-1)[0] > 1e-6
    top_left = {1 + r * 6 + c for r in range(3) for c in range(3)}
    assert {i for i, moved in enumerate(changed.tolist()) if moved} == top_left | {0}


def test_one_window_over_the_whole_grid_is_global_attention():
    grid = TokenGrid(4, 4, 0)
    mixer = window_mixer(32, 2, 7, grid)  # the window is clipped to the 4x4 grid
    attention = get_mixer("attention")(32, MixerConfig("attention", heads=2), grid).eval()
    attention.load_state_dict(mixer.state_dict())
    x = torch.randn(2, grid.tokens, 32, generator=g)
    with torch.no_grad():
        want = attention(x, ForwardContext(grid=grid))
        torch.testing.assert_close(mixer(x, ForwardContext(grid=grid)), want, atol=1e-5, rtol=1e-5)


def window_arch(window: int, head: str) -> ArchConfig:
    block = BlockConfig(MixerConfig("window", heads=2, options=(("window", window),)), mlp_ratio=2.0)
    return ArchConfig(stages=(StageConfig(width=32, blocks=(block, block)),), stem=StemConfig(patch_size=8), head=head)


@pytest.mark.parametrize("head", ["cls", "mean"])
@pytest.mark.parametrize(("img_size", "window"), [(56, 3), (40, 2), (48, 7), (40, 4)])
def test_analytic_flops_equal_fvcore_with_padding(img_size, window, head):
    arch = window_arch(window, head)
    model = build_model(arch, img_size=img_size, num_classes=10)
    assert analytic_flops(arch, img_size=img_size, num_classes=10) == count_flops(model, img_size=img_size)


def test_window_must_be_positive():
    with pytest.raises(ConfigError, match=r"stages\[0\]\.blocks\[0\]\.mixer\.window"):
        validate(window_arch(0, "mean"))


@pytest.mark.parametrize("head", ["cls", "mean"])
def test_exports_to_onnx_with_padded_windows(head, tmp_path):
    pytest.importorskip("onnxruntime")
    model = build_model(window_arch(3, head), img_size=40, num_classes=10).eval()  # 5x5 grid, 3x3 windows
    path = export_onnx(model, tmp_path / "window.onnx", img_size=40)
    assert onnx_max_abs_diff(path, model, img_size=40) < 1e-4


def test_listed_by_the_cli_and_taken_by_the_full_space():
    from vitsearch.search.cli import app

    result = CliRunner().invoke(app, ["mixers"])
    assert result.exit_code == 0 and "window" in result.output
    full = SearchSpace.load(SPACES_DIR / "full.yaml")
    assert all("window" in stage.layer.mixer for stage in full.stages)
