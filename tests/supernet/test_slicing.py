"""Weight-entanglement arithmetic: widths, heads, MLP ratios and groups, per-size tensors, space sizes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from supernet_helpers import PROFILE, one_mixer_space, random_archs, supernet

from vitsearch.evaluators.supernet import SupernetProfile, space_dims
from vitsearch.evaluators.supernet.elastic import diagonal_blocks, lead
from vitsearch.space import get_mixer
from vitsearch.space.mixers.qkv import qkv_bias, qkv_weight, v_weight
from vitsearch.space.scheme import BlockDiagonalMlp
from vitsearch.space.search_space import SearchSpace

SPACES_DIR = Path(__file__).resolve().parents[2] / "space" / "spaces"
g = torch.Generator().manual_seed(0)


def test_width_is_the_leading_slice_of_the_larger_function():
    big, d = 12, 5
    w, b = torch.randn(big, big, generator=g), torch.randn(big, generator=g)
    x = torch.randn(7, d, generator=g)
    small = F.linear(x, lead(w, (d, d)), lead(b, (d,)))
    padded = F.linear(F.pad(x, (0, big - d)), w, b)[:, :d]  # the large layer on zero-padded input
    torch.testing.assert_close(small, padded)


def test_qkv_slices_each_of_q_k_v_separately():
    big, d = 8, 3
    w = torch.randn(3 * big, big, generator=g)
    b = torch.randn(3 * big, generator=g)
    expected = torch.cat([w[i * big : i * big + d, :d] for i in range(3)])
    assert torch.equal(qkv_weight(w, d), expected)
    assert torch.equal(qkv_bias(b, d), torch.cat([b[i * big : i * big + d] for i in range(3)]))
    assert torch.equal(v_weight(w, d), w[2 * big : 2 * big + d, :d])
    x = torch.randn(4, d, generator=g)
    full = F.linear(F.pad(x, (0, big - d)), w, b).view(4, 3, big)[:, :, :d]  # q, k, v of the large layer
    torch.testing.assert_close(F.linear(x, qkv_weight(w, d), qkv_bias(b, d)).view(4, 3, d), full)


def test_heads_split_the_same_slice():
    sp = one_mixer_space("attention")
    net = supernet(sp)
    arch = sp.largest(64)
    path = net.adapt(arch)
    block = path.stages[0].blocks[0]
    heads = {1, 2, 4} - {block.mixer.heads}
    other = path.replace(
        stages=(
            path.stages[0].__class__(
                width=path.stages[0].width,
                blocks=(block.__class__(mixer=block.mixer.__class__("attention", heads=min(heads))),),
            ),
        )
    )
    a, b = net.path_state(path), net.path_state(other)
    for name in ("qkv.weight", "qkv.bias", "proj.weight"):
        assert torch.equal(a[f"stages.0.blocks.0.mixer.{name}"], b[f"stages.0.blocks.0.mixer.{name}"])


@pytest.mark.parametrize(("mixer", "tensor", "per_head"), [("nystrom", "conv.weight", 1), ("refined", "conv_exp", 3)])
def test_per_head_tensors_take_the_leading_heads(mixer, tensor, per_head):
    sp = one_mixer_space(mixer)
    net = supernet(sp)
    arch = sp.smallest(64)
    path = net.adapt(arch)
    heads = path.stages[0].blocks[0].mixer.heads
    state = net.path_state(path)
    holder = net.stages[0].blocks[0].mixers[mixer]
    if mixer == "nystrom":
        got, full = state["stages.0.blocks.0.mixer.conv.weight"], holder.conv.weight
        assert torch.equal(got, full[:heads])
    else:
        got, full = state["stages.0.blocks.0.mixer.conv_exp.weight"], holder.conv_exp.weight
        assert torch.equal(got, full[: per_head * heads, :heads])
        bn = state["stages.0.blocks.0.mixer.bn3.running_mean"]
        assert torch.equal(bn, holder.bn3.running_mean[:heads])
    assert heads < net.dims.stages[0].max_heads


def test_mlp_ratio_takes_leading_hidden_units():
    sp = one_mixer_space("pool")
    net = supernet(sp)
    for arch in random_archs(sp, 10, seed=5):
        path = net.adapt(arch)
        block = path.stages[0].blocks[0]
        if block.mlp_groups != 1:
            continue
        d = path.stages[0].width
        hidden = int(d * block.mlp_ratio)
        state = net.path_state(path)
        mlp = net.stages[0].blocks[0].mlp
        assert torch.equal(state["stages.0.blocks.0.mlp.fc1.weight"], mlp.fc1.weight[:hidden, :d])
        assert torch.equal(state["stages.0.blocks.0.mlp.fc2.weight"], mlp.fc2.weight[:d, :hidden])


def test_groups_take_the_diagonal_blocks_of_the_dense_weight():
    out_f, in_f, groups = 6, 4, 2
    dense = torch.randn(out_f, in_f, generator=g)
    blocks = diagonal_blocks(dense, groups)
    assert blocks.shape == (out_f, in_f // groups)
    for k in range(groups):
        rows, cols = slice(k * 3, (k + 1) * 3), slice(k * 2, (k + 1) * 2)
        assert torch.equal(blocks[rows], dense[rows, cols])


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_mlp_equals_the_dense_mlp_under_a_block_diagonal_mask(groups):
    d, hidden = 8, 16
    fc1, fc2 = torch.randn(hidden, d, generator=g), torch.randn(d, hidden, generator=g)
    b1, b2 = torch.randn(hidden, generator=g), torch.randn(d, generator=g)
    x = torch.randn(2, 5, d, generator=g)

    def mask(rows: int, cols: int) -> torch.Tensor:
        return torch.block_diag(*[torch.ones(rows // groups, cols // groups)] * groups)

    masked = F.linear(F.gelu(F.linear(x, fc1 * mask(hidden, d), b1)), fc2 * mask(d, hidden), b2)
    if groups == 1:
        got = F.linear(F.gelu(F.linear(x, fc1, b1)), fc2, b2)
    else:
        mlp = BlockDiagonalMlp(d, hidden, groups)
        with torch.no_grad():
            mlp.fc1.weight.copy_(diagonal_blocks(fc1, groups))
            mlp.fc2.weight.copy_(diagonal_blocks(fc2, groups))
            mlp.fc1.bias.copy_(b1)
            mlp.fc2.bias.copy_(b2)
        got = mlp(x)
    torch.testing.assert_close(got, masked, atol=1e-5, rtol=1e-5)


def test_grouped_path_inherits_the_blocks_of_the_dense_path():
    sp = one_mixer_space("pool")
    net = supernet(sp)
    archs = random_archs(sp, 40, seed=6)
    grouped = next(a for a in archs if a.stages[0].blocks[0].mlp_groups == 2)
    path = net.adapt(grouped)
    d, hidden = path.stages[0].width, int(path.stages[0].width * path.stages[0].blocks[0].mlp_ratio)
    mlp = net.stages[0].blocks[0].mlp
    state = net.path_state(path)
    assert torch.equal(state["stages.0.blocks.0.mlp.fc1.weight"], diagonal_blocks(mlp.fc1.weight[:hidden, :d], 2))


def test_performer_features_one_seeded_orthogonal_draw_per_head_dim():
    sp = one_mixer_space("performer")
    a, b, c = supernet(sp, seed=0), supernet(sp, seed=0), supernet(sp, seed=1)
    holder = a.stages[0].blocks[0].mixers["performer"]
    names = [n for n, _ in holder.named_buffers() if n.startswith("features_")]
    assert len(names) == len(a.dims.stages[0].head_dims()) > 1
    for name in names:
        feats = getattr(holder, name)
        assert torch.equal(feats, getattr(b.stages[0].blocks[0].mixers["performer"], name))
        assert not torch.equal(feats, getattr(c.stages[0].blocks[0].mixers["performer"], name))
        assert not torch.equal(feats, getattr(a.stages[0].blocks[1].mixers["performer"], name))
        head_dim = feats.shape[1]
        block = feats[:head_dim] / feats[:head_dim].norm(dim=1, keepdim=True)  # rows of one block are orthogonal
        torch.testing.assert_close(block @ block.T, torch.eye(len(block)), atol=1e-5, rtol=0)


def test_linformer_projection_per_token_count():
    sp = one_mixer_space("linformer")
    net = supernet(sp)
    holder = net.stages[0].blocks[0].mixers["linformer"]
    assert sorted(holder.seq_proj) == ["n64", "n65"]  # 8x8 grid, with and without a cls token
    for arch in random_archs(sp, 6, seed=7):
        path = net.adapt(arch)
        tokens = 65 if path.head == "cls" else 64
        got = net.path_state(path)["stages.0.blocks.0.mixer.seq_proj"]
        assert torch.equal(got, holder.seq_proj[f"n{tokens}"])


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
def test_space_dims_cover_every_path_of_the_shipped_spaces(name):
    sp = SearchSpace.load(SPACES_DIR / f"{name}.yaml")
    assert SearchSpace.from_dict(sp.to_dict()) == sp  # checkpoints store the space this way
    profile = SupernetProfile(img_size=28, in_chans=1, num_classes=10)
    dims = space_dims(sp, profile)
    rng = random.Random(0)
    for _ in range(150):
        path = profile.adapt(sp.sample_random(rng))
        for stage, sd in zip(path.stages, dims.stages, strict=True):
            assert stage.width in sd.widths and stage.depth <= sd.depth
            for block in stage.blocks:
                if get_mixer(block.mixer.type).USES_HEADS:
                    assert block.mixer.heads in sd.heads and stage.width // block.mixer.heads in sd.head_dims()
                assert int(stage.width * block.mlp_ratio) <= sd.hidden
    with torch.device("meta"):  # sizes only: a full-space supernet, no memory
        from vitsearch.evaluators.supernet import Supernet

        net = Supernet(sp, profile)
    for arch in [sp.largest(), sp.smallest(), *[sp.sample_random(rng) for _ in range(20)]]:
        net.path_state(net.adapt(arch))  # every tensor of the path exists in the supernet


def test_profile_defaults_are_the_reference_evaluators():
    from vitsearch.evaluators.reference import REFERENCE_PROFILE
    from vitsearch.evaluators.supernet.train import SupernetTrainConfig

    ref = REFERENCE_PROFILE
    assert (PROFILE.__class__(1, 1, 1).width_mult, PROFILE.__class__(1, 1, 1).target_img_size) == (
        ref.width_mult,
        ref.target_img_size,
    )
    assert SupernetTrainConfig().width_mult == ref.width_mult


def test_supernet_training_uses_the_proxys_grid_and_old_checkpoints_still_compare():
    from vitsearch.evaluators.profile import ProxyProfile
    from vitsearch.evaluators.supernet.train import LEGACY_TRAIN, SupernetTrainConfig

    assert SupernetTrainConfig().grid_scale == ProxyProfile().grid_scale == 0.5
    old = PROFILE.__class__(28, 1, 10)  # a profile as saved before grid_scale: the target grid
    assert old.grid_scale == 1.0 and "grid_scale" not in old.to_dict()
    assert PROFILE.__class__(**old.to_dict()) == old
    half = PROFILE.__class__(28, 1, 10, grid_scale=0.5)
    assert half.to_dict()["grid_scale"] == 0.5
    from vitsearch.space import get_preset

    deit = get_preset("deit_tiny")
    assert half.adapt(deit).stem.patch_size == 4 and old.adapt(deit).stem.patch_size == 2  # 7x7 vs 14x14 tokens
    assert LEGACY_TRAIN["grid_scale"] == old.grid_scale
