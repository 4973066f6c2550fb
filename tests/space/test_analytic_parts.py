"""Per-part analytic counts: they sum to the totals, and each stage equals fvcore's count of that stage."""

import pytest

from vitsearch.evaluators.complexity import analytic_flops, analytic_params
from vitsearch.search.report import complexity_report
from vitsearch.space import get_preset, list_presets
from vitsearch.space.analytic import analytic_parts, stage_steps


@pytest.mark.parametrize("name", list_presets())
def test_parts_sum_to_the_totals(name):
    arch = get_preset(name)
    parts = analytic_parts(arch, img_size=64, num_classes=10)
    assert [p.name for p in parts] == ["stem", *(f"stages.{i}" for i in range(len(arch.stages))), "head"]
    assert sum(p.flops for p in parts) == analytic_flops(arch, img_size=64, num_classes=10)
    assert sum(p.params for p in parts) == analytic_params(arch, img_size=64, num_classes=10)


@pytest.mark.parametrize("name", ["deit_tiny", "poolformer_s12", "psvit_tiny", "vix_performer"])
def test_each_stage_equals_the_fvcore_count_of_that_stage(name):
    """The hand count per stage against the built, deployed model's per-module fvcore count."""
    analytic = {p.name: p for p in analytic_parts(name, img_size=64, num_classes=10)}
    measured = {p["name"]: p for p in complexity_report(name, img_size=64, num_classes=10)["parts"]}
    for part in measured:
        if part.startswith("stages."):
            assert analytic[part].flops == measured[part]["flops"], part
            assert analytic[part].params == measured[part]["params"], part


def test_token_grids_follow_the_stem_and_the_downsamples():
    """PoolFormer-S12 at 224 px: a 4-pixel stem then three stride-2 entries, 56 -> 28 -> 14 -> 7."""
    steps = stage_steps(get_preset("poolformer_s12"), img_size=224)
    assert [(s.grid.height, s.grid.width) for s in steps] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [s.in_width for s in steps] == [64, 64, 128, 320]
