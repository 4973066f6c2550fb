"""vitsearch.space.edits: every block changed alike; the dense twin of a block-diagonal MLP."""

from __future__ import annotations

import pytest

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.space import ArchConfig, BlockConfig, MixerConfig, StageConfig, get_preset
from vitsearch.space.edits import dense_twin, with_blocks


def blocks(arch):
    return [b for *_, b in arch.blocks()]


def test_with_blocks_changes_every_block_and_nothing_else():
    arch = get_preset("schemeformer_ppaa_s12")
    edited = with_blocks(arch, cca=False, mixer=MixerConfig(type="identity"))
    assert all(not b.cca and b.mixer.type == "identity" for b in blocks(edited))
    assert [b.mlp_ratio for b in blocks(edited)] == [b.mlp_ratio for b in blocks(arch)]
    assert [s.width for s in edited.stages] == [s.width for s in arch.stages] and edited.stem == arch.stem


def test_the_dense_twin_has_the_ratio_e_over_g_and_exactly_the_flops():
    arch = with_blocks(get_preset("schemeformer_ppaa_s12"), cca=False)
    assert {(b.mlp_ratio, b.mlp_groups) for b in blocks(arch)} == {(8.0, 4)}
    twin = dense_twin(arch)
    assert {(b.mlp_ratio, b.mlp_groups) for b in blocks(twin)} == {(2.0, 1)}
    assert analytic_flops(twin) == analytic_flops(arch) and twin != arch
    assert with_blocks(arch, mlp_ratio=2.0, mlp_groups=1) == twin


def test_a_width_without_whole_groups_has_no_dense_twin():
    odd = ArchConfig(stages=(StageConfig(width=66, blocks=(BlockConfig(mlp_ratio=3.0, mlp_groups=4),)),))
    with pytest.raises(ValueError, match="width 66: r3/g4 has no dense twin"):
        dense_twin(odd)
