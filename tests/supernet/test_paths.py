"""Every architecture of a space is a path, and extract(arch) is that path as a standalone model."""

from __future__ import annotations

import pytest
import torch
from supernet_helpers import EVERYTHING, PROFILE, one_mixer_space, random_archs, randomize, space, supernet

from vitsearch.evaluators.supernet import PathError
from vitsearch.space import MixerConfig, VitModel, list_mixers
from vitsearch.space.search_space import SearchSpace

X = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _agree(net, arch, train: bool = False) -> float:
    """Max abs difference between the supernet path and the extracted model (same mode, same input)."""
    net.train(train)
    model = net.extract(arch)
    assert isinstance(model, VitModel)
    model.train(train)
    with torch.no_grad():
        return float((net(X, arch) - model(X)).abs().max())


@pytest.mark.parametrize("mixer", list_mixers())
def test_every_mixer_is_a_path_and_extracts_exactly(mixer):
    sp = one_mixer_space(mixer)
    net = supernet(sp)
    randomize(net)
    archs = [sp.largest(64), sp.smallest(64), *random_archs(sp, 4, seed=1)]
    assert any(a.stages[0].blocks[-1].mixer.type == mixer for a in archs)
    for arch in archs:
        assert _agree(net, arch) < 1e-5
        assert _agree(net, arch, train=True) < 1e-5  # BatchNorm on batch statistics, CCA branch on


def test_sharing_paths_use_the_value_block_of_the_fused_weight():
    sp = one_mixer_space("attention")
    net = supernet(sp)
    shared = [a for a in random_archs(sp, 40, seed=2) if any(b.share_attention for b in a.stages[0].blocks)]
    assert shared, "the space should produce sharing paths"
    arch = shared[0]
    path = net.adapt(arch)
    state = net.path_state(path)
    bi = next(i for i, b in enumerate(path.stages[0].blocks) if b.share_attention)
    d = path.stages[0].width
    qkv = net.stages[0].blocks[bi].mixers["attention"].qkv.weight
    big = qkv.shape[1]
    assert torch.equal(state[f"stages.0.blocks.{bi}.mixer.v.weight"], qkv[2 * big : 2 * big + d, :d])
    assert _agree(net, arch) < 1e-5


def test_every_path_choice_of_a_space_extracts_exactly():
    sp = space(EVERYTHING)
    net = supernet(sp)
    randomize(net)
    archs = [sp.largest(64), sp.smallest(64), *random_archs(sp, 16, seed=3)]
    seen = {(a.stem.type, a.position, a.head, a.norm, a.stages[1].downsample) for a in archs}
    assert len(seen) > 8  # the sample covers many global / downsample combinations
    for arch in archs:
        assert _agree(net, arch) < 1e-5


def test_gradients_reach_exactly_the_slices_a_path_uses():
    sp = one_mixer_space("attention")
    net = supernet(sp)
    arch = sp.smallest(64)
    path = net.adapt(arch)
    d = path.stages[0].width
    net.train()
    net(X, arch).sum().backward()
    proj = net.stages[0].blocks[0].mixers["attention"].proj.weight
    assert proj.grad[:d, :d].abs().sum() > 0
    assert proj.grad[d:].abs().sum() == 0 and proj.grad[:, d:].abs().sum() == 0
    unused = net.stages[0].blocks[-1].mixers["attention"].proj.weight  # depth 1: the second block is off
    assert unused.grad is None


def test_depth_is_elastic_the_first_blocks_are_the_path():
    sp = one_mixer_space("pool")
    net = supernet(sp)
    deep, shallow = sp.largest(64), sp.smallest(64)
    assert deep.stages[0].depth == 2 and shallow.stages[0].depth == 1
    s_deep, s_shallow = net.path_state(net.adapt(deep)), net.path_state(net.adapt(shallow))
    assert not any(k.startswith("stages.0.blocks.1.") for k in s_shallow)
    assert any(k.startswith("stages.0.blocks.1.") for k in s_deep)


def test_an_architecture_outside_the_space_is_refused_by_field():
    sp = one_mixer_space("pool")
    net = supernet(sp)
    arch = sp.largest(64)
    other = arch.replace(
        stages=(
            arch.stages[0].__class__(
                width=arch.stages[0].width,
                blocks=(arch.stages[0].blocks[0].__class__(mixer=MixerConfig("fnet")),),
            ),
        )
    )
    with pytest.raises(PathError, match=r"stages\[0\].blocks\[0\].mixer: 'fnet' is not a candidate"):
        net(X, other)
    deeper = arch.replace(stages=(arch.stages[0].__class__(width=64, blocks=arch.stages[0].blocks * 2),))
    with pytest.raises(PathError, match=r"stages\[0\].depth: 4 > 2"):
        net.extract(deeper)
    wider = SearchSpace.from_dict({**sp.to_dict(), "stages": [{**sp.to_dict()["stages"][0], "width": 256}]})
    with pytest.raises(PathError, match="the path needs"):
        net(X, wider.largest(64))


def test_profile_is_the_proxy_rewrite():
    from vitsearch.evaluators.profile import adapt_arch

    sp = space(EVERYTHING)
    net = supernet(sp)
    for arch in random_archs(sp, 5, seed=4):
        assert net.adapt(arch) == adapt_arch(arch, 32, 64, None, PROFILE.width_mult)


def test_at_the_identity_profile_extract_fits_build_model_of_the_arch_as_given():
    """What `vitsearch train --from-supernet` loads into `build_model(arch, img_size)` (no proxy rewrite)."""
    from vitsearch.evaluators.supernet import SupernetProfile
    from vitsearch.space import build_model

    sp = space(EVERYTHING)
    identity = SupernetProfile(img_size=64, in_chans=3, num_classes=4, target_img_size=64, width_mult=1.0)
    net = supernet(sp, identity)
    for arch in random_archs(sp, 4, seed=8):
        assert net.adapt(arch) == arch
        extracted = net.extract(arch).state_dict()
        built = build_model(arch, img_size=64, num_classes=4).state_dict()
        assert {k: v.shape for k, v in extracted.items()} == {k: v.shape for k, v in built.items()}


@pytest.mark.parametrize(
    ("mixer", "message"),
    [("linformer", "no Linformer projection for 25 tokens"), ("performer", "no Performer features for head dim 8")],
)
def test_a_size_the_mixer_weights_do_not_hold_is_a_path_error(mixer, message):
    from vitsearch.evaluators.supernet.elastic import mixer_state
    from vitsearch.space import TokenGrid, get_mixer
    from vitsearch.space.layers import SupernetSizes

    held = SupernetSizes(width=32, heads=2, head_dims=(16,), grids=(TokenGrid(4, 4),), seed="layer")
    weights = get_mixer(mixer).supernet_weights(MixerConfig(mixer), held)
    path_mixer = get_mixer(mixer)(32, MixerConfig(mixer, heads=4), TokenGrid(5, 5))  # head dim 8, 25 tokens
    with pytest.raises(PathError, match=rf"blocks\[0\]\.mixer: {message}"):
        mixer_state(weights, path_mixer, "stages[0].blocks[0].mixer")
