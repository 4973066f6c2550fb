"""PSViT token pooling and attention sharing; ViX conv stem and RoPE."""

from __future__ import annotations

import itertools

import pytest
import torch

from vitsearch.evaluators.complexity import analytic_flops, count_flops, trace_flops
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
    get_downsample,
    get_preset,
    validate,
)
from vitsearch.space.layers import Block
from vitsearch.space.model import attention_sources
from vitsearch.space.rope import AxialRoPE
from vitsearch.space.stems import ConvStem, build_stem, stem_flops, stem_grid_size

POOLS = ["mean", "max", "dwconv"]


class OnGrid(torch.nn.Module):
    """A downsample with its grid bound, so the tracer sees tensors only."""

    def __init__(self, down: torch.nn.Module, grid: TokenGrid):
        super().__init__()
        self.down, self.grid = down, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x, self.grid)[0]


def attn(heads: int | None = 2, share: bool = False, mixer: str = "attention") -> BlockConfig:
    return BlockConfig(mixer=MixerConfig(type=mixer, heads=heads), mlp_ratio=2.0, share_attention=share)


def arch(*stages: StageConfig, stem: str = "patch", patch: int = 8, position: str = "learned", head: str = "cls"):
    return ArchConfig(stages=stages, stem=StemConfig(type=stem, patch_size=patch), position=position, head=head)


# --- token pooling -------------------------------------------------------------------------


@pytest.mark.parametrize("name", POOLS)
def test_pool_odd_grid_keeps_cls_and_matches_out_grid(name):
    grid = TokenGrid(5, 5, prefix=1)
    down = get_downsample(name)(64, 64, grid)
    x = torch.randn(2, grid.tokens, 64)
    y, out = down(x, grid)
    assert out == down.out_grid(grid) == TokenGrid(3, 3, 1)  # ceil(5 / 2): no edge token dropped
    assert y.shape == (2, out.tokens, 64)
    assert torch.equal(y[:, :1], x[:, :1])  # cls passes through untouched
    spatial = x[:, 1:].reshape(2, 5, 5, 64)
    if name == "mean":
        assert torch.allclose(y[:, 1], spatial[:, :2, :2].mean(dim=(1, 2)), atol=1e-6)
        assert torch.allclose(y[:, -1], spatial[:, 4, 4], atol=1e-6)  # overhanging window: its one valid token
    elif name == "max":
        assert torch.equal(y[:, 1], spatial[:, :2, :2].amax(dim=(1, 2)))
        assert torch.equal(y[:, -1], spatial[:, 4, 4])


@pytest.mark.parametrize("name", POOLS)
def test_pool_width_change_projects_every_token(name):
    grid = TokenGrid(4, 4, prefix=1)
    down = get_downsample(name)(64, 96, grid)
    assert down.changes_width and down.stride == 2
    x = torch.randn(2, grid.tokens, 64)
    y, out = down(x, grid)
    assert out == TokenGrid(2, 2, 1) and y.shape == (2, 5, 96)
    assert torch.allclose(y[:, :1], down.proj(x[:, :1]), atol=1e-6)  # cls: the same pointwise linear
    same = get_downsample(name)(64, 64, grid)
    assert not any(p.shape[-1] == 64 and p.dim() == 2 for p in same.parameters())  # no projection when width kept
    assert trace_flops(OnGrid(down, grid), (x[:1],)) == down.flops(64, 96, grid)


@pytest.mark.parametrize("name", POOLS)
def test_pooled_model_flops_exact_odd_grid(name):
    # 40 px / patch 8 = 5x5 tokens, pooled to 3x3 with a width change, then 2x2 without.
    a = arch(
        StageConfig(64, (attn(),)),
        StageConfig(96, (attn(),), downsample=name),
        StageConfig(96, (attn(),), downsample=name),
        head="mean" if name == "max" else "cls",
    )
    model = build_model(a, img_size=40, num_classes=10)
    assert [s.grid.height for s in model.stages] == [5, 3, 2]
    assert model(torch.randn(2, 3, 40, 40)).shape == (2, 10)
    assert analytic_flops(a, img_size=40, num_classes=10) == count_flops(model, img_size=40)


# --- attention sharing ---------------------------------------------------------------------


def test_sharer_has_no_query_key_weights_and_costs_less():
    a = arch(StageConfig(64, (attn(), attn(share=True))))
    model = build_model(a, img_size=32, num_classes=10)
    source, sharer = (b.mixer for b in model.stages[0].blocks)
    assert source.keep_attention and not source.share_attention
    assert sharer.share_attention and not hasattr(sharer, "qkv")
    assert {n for n, _ in sharer.named_parameters()} == {"v.weight", "v.bias", "proj.weight", "proj.bias"}
    assert sum(p.numel() for p in source.parameters()) - sum(p.numel() for p in sharer.parameters()) == 2 * (
        64 * 64 + 64
    )
    grid, n, d = model.stages[0].grid, 17, 64
    saved = Block.flops(d, attn(), grid) - Block.flops(d, attn(share=True), grid)
    assert saved == 2 * n * d * d + n * n * d  # q and k projections, q k^T
    assert analytic_flops(a, img_size=32, num_classes=10) == count_flops(model, img_size=32)


def test_sharer_output_uses_previous_blocks_map():
    torch.set_default_dtype(torch.float64)
    try:
        a = arch(StageConfig(64, (attn(), attn(share=True), attn(share=True))), position="rope")
        model = build_model(a, img_size=32, num_classes=10).eval()
        blocks = model.stages[0].blocks
        seen: dict[int, torch.Tensor] = {}
        hooks = [
            b.mixer.register_forward_hook(lambda m, i, o, k=k: seen.update({k: i[0], k + 10: o}))
            for k, b in enumerate(blocks)
        ]
        model(torch.randn(2, 3, 32, 32))
        for h in hooks:
            h.remove()
        src = blocks[0].mixer
        x0, grid = seen[0], model.stages[0].grid
        q, k, _ = src.qkv(x0).reshape(2, 17, 3, 2, 32).permute(2, 0, 3, 1, 4)
        q, k = model.rope(q, grid), model.rope(k, grid)
        amap = (q @ k.transpose(-2, -1) / 32**0.5).softmax(-1)  # (B, H, N, N), the source's map
        for j in (1, 2):  # both sharers of the run reuse block 0's map
            m = blocks[j].mixer
            v = m.v(seen[j]).reshape(2, 17, 2, 32).transpose(1, 2)
            expected = m.proj((amap @ v).transpose(1, 2).reshape(2, 17, 64))
            assert torch.allclose(seen[j + 10], expected, atol=1e-12)
        # and the fused source (SDPA) gives the same block output as the kept explicit path
        src.keep_attention = False
        assert torch.allclose(src(x0, ForwardContext(grid=grid, rope=model.rope)), seen[10], atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_sharing_across_stages_without_pooling_and_chain_sources():
    a = arch(StageConfig(64, (attn(), attn(share=True))), StageConfig(64, (attn(share=True), attn(), attn(share=True))))
    assert attention_sources(a) == {(0, 0), (1, 1)}
    model = build_model(a, img_size=32, num_classes=10)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert analytic_flops(a, img_size=32, num_classes=10) == count_flops(model, img_size=32)


def test_sharer_without_kept_map_fails_loudly():
    mixer = Block(64, attn(share=True), TokenGrid(2, 2, 1), "layernorm", None).mixer
    with pytest.raises(RuntimeError, match="no attention map"):
        mixer(torch.randn(1, 5, 64), ForwardContext(grid=TokenGrid(2, 2, 1)))
    ctx = ForwardContext(grid=TokenGrid(2, 2, 1), attn=torch.rand(1, 4, 5, 5))
    with pytest.raises(RuntimeError, match="needs"):
        mixer(torch.randn(1, 5, 64), ctx)


def _sharing_dict(stages):
    return {"stem": {"patch_size": 8}, "stages": stages}


@pytest.mark.parametrize(
    "stages, path, message",
    [
        (  # pooling between source and sharer
            [{"width": 64, "depth": 1}, {"width": 64, "downsample": "mean", "blocks": [{"share_attention": True}]}],
            "stages[1].blocks[0].share_attention",
            "token-count change",
        ),
        (
            [{"width": 128, "blocks": [{"mixer": {"heads": 2}}, {"mixer": {"heads": 4}, "share_attention": True}]}],
            "stages[0].blocks[1].share_attention",
            "heads 4 differ from the previous block's 2",
        ),
        (
            [{"width": 64, "blocks": [{"mixer": "pool"}, {"share_attention": True}]}],
            "stages[0].blocks[1].share_attention",
            "previous block's mixer 'pool'",
        ),
        (
            [{"width": 64, "blocks": [{}, {"mixer": "pool", "share_attention": True}]}],
            "stages[0].blocks[1].share_attention",
            "mixer 'pool' has no attention map",
        ),
        (
            [{"width": 64, "depth": 2, "block": {"share_attention": True}}],
            "stages[0].blocks[0].share_attention",  # uniform stage: every block shares, the first cannot
            "first block",
        ),
    ],
)
def test_sharing_validation_errors(stages, path, message):
    with pytest.raises(ConfigError) as err:
        ArchConfig.from_dict(_sharing_dict(stages))
    assert err.value.path == path and str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_sharing_compares_resolved_heads():
    # heads null at width 128 resolves to 2 (head dim 64): same as the sharer's explicit 2, either way round.
    for source, sharer in ((None, 2), (2, None), (None, None)):
        config = arch(StageConfig(128, (attn(heads=source), attn(heads=sharer, share=True))))
        assert validate(config) is config and attention_sources(config) == {(0, 0)}
    # at width 256 null resolves to 4: not the sharer's 2, though neither config says 4
    with pytest.raises(ConfigError, match="heads 2 differ from the previous block's 4"):
        validate(arch(StageConfig(256, (attn(heads=None), attn(heads=2, share=True)))))
    with pytest.raises(ConfigError, match="heads 4 differ from the previous block's 2"):
        validate(arch(StageConfig(256, (attn(heads=2), attn(heads=None, share=True)))))


# --- ViX conv stem -------------------------------------------------------------------------


@pytest.mark.parametrize("patch, img", [(1, 8), (2, 32), (3, 32), (4, 30), (6, 36), (8, 32), (16, 48), (5, 32)])
def test_conv_stem_grid_and_flops(patch, img):
    cfg = StemConfig(type="conv", patch_size=patch)
    stem = build_stem(cfg, 3, 48)
    assert isinstance(stem, ConvStem) and len(stem.convs) == 3
    y = stem(torch.randn(1, 3, img, img))
    assert y.shape == (1, 48, img // patch, img // patch) == (1, 48, stem_grid_size(cfg, img), stem_grid_size(cfg, img))
    assert trace_flops(stem, (torch.zeros(1, 3, img, img),)) == stem_flops(cfg, 3, 48, img)
    # 3x3 throughout, except a first-conv stride above 3 (16 -> 4, 5 -> 5) that would skip pixels
    assert [c.kernel_size[0] for c in stem.convs] == [{16: 4, 5: 5}.get(patch, 3), 3, 3]
    if patch == 1:  # ViX's own setting: three 3x3, stride 1, 3 -> 32 -> 64 -> dim
        assert [(c.in_channels, c.out_channels, c.stride[0]) for c in stem.convs] == [
            (3, 32, 1),
            (32, 64, 1),
            (64, 48, 1),
        ]


# --- RoPE ----------------------------------------------------------------------------------


def test_rope_preserves_norms_and_leaves_cls_untouched():
    rope, grid = AxialRoPE(), TokenGrid(3, 4, prefix=1)
    for d in (16, 7):
        x = torch.randn(2, 2, grid.tokens, d)
        y = rope(x, grid)
        assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
        assert torch.equal(y[..., 0, :], x[..., 0, :])
        assert not torch.allclose(y[..., 2:, :], x[..., 2:, :])  # grid tokens are rotated
        if d % 2:
            assert torch.equal(y[..., -1], x[..., -1])  # odd channel is not rotated


def test_rope_scores_depend_only_on_2d_offsets():
    rope, d = AxialRoPE(), 16
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    # one row: q.k is Toeplitz in the positions (relative offsets only)
    grid = TokenGrid(1, 8)
    s = rope(q.expand(8, d), grid) @ rope(k.expand(8, d), grid).T
    for i, j in itertools.product(range(7), repeat=2):
        assert torch.isclose(s[i, j], s[i + 1, j + 1])
    assert not torch.isclose(s[0, 1], s[0, 2])
    # a 3x3 grid: equal (row, col) offsets give equal scores, rows and columns differ
    grid = TokenGrid(3, 3)
    s = rope(q.expand(9, d), grid) @ rope(k.expand(9, d), grid).T
    pos = [(r, c) for r in range(3) for c in range(3)]
    by_offset: dict[tuple[int, int], torch.Tensor] = {}
    for (a, pa), (b, pb) in itertools.product(enumerate(pos), repeat=2):
        off = (pb[0] - pa[0], pb[1] - pa[1])
        by_offset.setdefault(off, s[a, b])
        assert torch.isclose(s[a, b], by_offset[off])
    assert not torch.isclose(by_offset[(1, 0)], by_offset[(0, 1)])


def test_rope_model_has_no_pos_embed_and_rotates():
    a = arch(StageConfig(64, (attn(), attn())), position="rope", stem="conv", patch=4)
    model = build_model(a, img_size=32, num_classes=10).eval()
    assert model.pos_embed is None and isinstance(model.rope, AxialRoPE)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        with_rope = model(x)
        model.rope = None
        without = model(x)
    assert not torch.allclose(with_rope, without)


# --- everything together, and the preset -----------------------------------------------------


@pytest.mark.parametrize("pool, head", [("mean", "cls"), ("dwconv", "mean")])
def test_conv_stem_rope_pooling_sharing_flops_exact(pool, head):
    a = arch(
        StageConfig(64, (attn(), attn(share=True))),
        StageConfig(96, (attn(heads=3), attn(heads=3, share=True)), downsample=pool),
        stem="conv",
        patch=4,
        position="rope",
        head=head,
    )
    model = build_model(a, img_size=32, num_classes=10)
    out = model(torch.randn(2, 3, 32, 32))
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert analytic_flops(a, img_size=32, num_classes=10) == count_flops(model, img_size=32)


def test_psvit_tiny_builds_and_counts():
    a = get_preset("psvit_tiny")
    assert [s.downsample for s in a.stages] == ["none", "mean", "mean"]
    assert sum(b.share_attention for *_, b in a.blocks()) == 5
    model = build_model(a, img_size=64, num_classes=10)
    assert analytic_flops(a, img_size=64, num_classes=10) == count_flops(model, img_size=64)


@pytest.mark.parametrize("name", ["vix_performer", "vix_linformer", "vix_nystrom", "vix_fnet"])
def test_vix_presets_use_conv_stem_and_rope(name):
    a = get_preset(name)
    assert a.stem.type == "conv" and a.stem.patch_size == 1
    assert a.position == ("learned" if name == "vix_fnet" else "rope")  # FNet has no q/k to rotate
    model = build_model(a, img_size=32, num_classes=10)
    assert analytic_flops(a, img_size=32, num_classes=10) == count_flops(model, img_size=32)
