"""Proxy profile: the stem keeps the target token grid, widths scale with heads and groups valid."""

from __future__ import annotations

import pytest

from vitsearch.evaluators.profile import ProxyProfile, adapt_arch, adapt_stem, scale_widths
from vitsearch.space import MixerConfig, get_preset, validate
from vitsearch.space.presets import vit
from vitsearch.space.stems import stem_grid_size


def test_vit_stem_matches_target_grid():
    arch = adapt_stem(get_preset("deit_tiny"), img_size=28)
    assert arch.stem.patch_size == 2 and stem_grid_size(arch.stem, 28) == 14  # 14x14 as at 224 / 16
    assert adapt_stem(get_preset("deit_tiny"), img_size=32, grid=8).stem.patch_size == 4


def test_grid_scale_halves_the_target_grid():
    deit = adapt_stem(get_preset("deit_tiny"), img_size=28, grid_scale=0.5)  # the proxy's default
    assert deit.stem.patch_size == 4 and stem_grid_size(deit.stem, 28) == 7
    pool = adapt_stem(get_preset("poolformer_s12"), img_size=28, grid_scale=0.5)  # 56 x 0.5 = 28 = the image
    assert pool.stem.patch_size == 1 and stem_grid_size(pool.stem, 28) == 28
    assert adapt_stem(get_preset("deit_tiny"), img_size=28, grid=14, grid_scale=0.5).stem.patch_size == 2  # grid wins
    assert ProxyProfile().grid_scale == 0.5
    with pytest.raises(ValueError, match="ProxyProfile.grid_scale"):
        ProxyProfile(grid_scale=0)


def test_overlapping_stem_bottoms_out_at_stride_one():
    arch = adapt_stem(get_preset("poolformer_s12"), img_size=28)  # 56x56 at 224 is more than 28 px can give
    assert arch.stem.patch_size == 1
    assert stem_grid_size(arch.stem, 28) == 28
    assert arch.stem.kernel_size is None or (arch.stem.kernel_size - 1) % 2 == 0
    # From 56 px up the target's 56x56 grid is reachable again, with the 7/4 overlap scaled.
    arch56 = adapt_stem(get_preset("poolformer_s12"), img_size=112)
    assert arch56.stem.patch_size == 2 and stem_grid_size(arch56.stem, 112) == 56


def test_width_mult_keeps_heads_and_validity():
    arch = scale_widths(get_preset("deit_small"), 0.5)  # 384, 6 heads
    assert arch.stages[0].width == 192 and arch.stages[0].blocks[0].mixer.heads == 6
    odd = scale_widths(get_preset("deit_tiny"), 0.3)  # 57.6 -> a multiple of 3 heads
    assert odd.stages[0].width % 3 == 0 and validate(odd) is odd
    pool = scale_widths(get_preset("poolformer_s12"), 0.25)
    assert [s.width for s in pool.stages] == [16, 32, 80, 128]


def test_unset_heads_are_pinned_before_scaling():
    arch = vit(256, 1, heads=4)
    free = arch.replace(
        stages=(
            arch.stages[0].__class__(
                width=256, blocks=(arch.stages[0].blocks[0].__class__(mixer=MixerConfig("attention")),)
            ),
        )
    )  # heads None -> 256 // 64 = 4 at the target width
    scaled = scale_widths(free, 0.5)
    assert scaled.stages[0].blocks[0].mixer.heads == 4 and scaled.stages[0].width == 128


def test_adapt_arch_builds_at_proxy_resolution():
    from vitsearch.space import build_model

    arch = adapt_arch(get_preset("test_metaformer"), img_size=16, width_mult=0.5)
    model = build_model(arch, img_size=16, in_chans=1, num_classes=3)
    assert model.grid.height == 8  # 16 px, stride 1, one 2x downsample


def test_profile_rejects_bad_values_and_records_everything():
    with pytest.raises(ValueError, match="ProxyProfile.epochs"):
        ProxyProfile(epochs=0)
    d = ProxyProfile().to_dict()
    assert {
        "img_size",
        "grid",
        "grid_scale",
        "width_mult",
        "epochs",
        "train_subset",
        "batch_size",
        "lr",
        "seed",
    } <= set(d)
