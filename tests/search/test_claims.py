"""vitsearch.search.claims: every pair at equal FLOPs, differing only as its claim says."""

from __future__ import annotations

import pytest

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.search.claims import CLAIMS, TOLERANCE, Claim, Pair, build_pairs, deit_near, psvit_family
from vitsearch.space import get_preset
from vitsearch.space.edits import with_blocks
from vitsearch.space.presets import vit


def blocks(arch):
    return [b for *_, b in arch.blocks()]


@pytest.mark.parametrize("budget", [5e8, 1e9, 1.3e9, 2e9])
def test_every_pair_is_at_equal_flops_and_differs_only_as_its_claim_says(budget):
    pairs = {p.claim: p for p in build_pairs(list(CLAIMS), budget, quiet=True)}
    assert list(pairs) == list(CLAIMS)
    for pair in pairs.values():
        fa, fb = analytic_flops(pair.a), analytic_flops(pair.b)
        assert abs(fa / fb - 1) <= TOLERANCE and max(fa, fb) <= budget * 1.05, pair.claim

    scheme = pairs["scheme"]
    assert all(b.mlp_groups == 4 and b.mlp_ratio == 8 and not b.cca for b in blocks(scheme.a))
    assert all(b.mlp_groups == 1 and b.mlp_ratio == 2 and not b.cca for b in blocks(scheme.b))
    assert with_blocks(scheme.a, mlp_ratio=2.0, mlp_groups=1) == scheme.b
    assert analytic_flops(scheme.a) == analytic_flops(scheme.b)

    cca = pairs["cca"]
    assert all(b.cca for b in blocks(cca.a)) and cca.b == with_blocks(cca.a, cca=False) == scheme.a

    vix = pairs["vix"]
    assert (vix.a.stem.type, vix.a.position, vix.b.stem.type, vix.b.position) == ("conv", "rope", "patch", "learned")
    assert vix.a.replace(stem=vix.b.stem, position="learned") == vix.b

    psvit = pairs["psvit"]
    assert any(b.share_attention for b in blocks(psvit.a)) and {s.downsample for s in psvit.a.stages[1:]} == {"mean"}
    assert len(psvit.b.stages) == 1 and not any(b.share_attention for b in blocks(psvit.b))
    assert psvit.a.stages[0].width == psvit.b.stages[0].width
    assert blocks(psvit.a)[0].mixer == blocks(psvit.b)[0].mixer  # same heads

    rif = pairs["riformer"]
    assert rif.a == rif.b and {b.mixer.type for b in blocks(rif.a)} == {"identity"}
    assert {b.mixer.type for b in blocks(rif.teacher)} == {"pool"}
    assert with_blocks(rif.teacher, mixer=blocks(rif.a)[0].mixer) == rif.a
    if budget == 1.3e9:  # DeiT-Tiny's class: the shipped presets
        assert psvit.a == get_preset("psvit_tiny") and psvit.b == get_preset("deit_tiny") == vix.b


def test_a_pair_beyond_the_tolerance_is_refused(monkeypatch):
    wide = Claim("x", "a", "b", lambda budget: Pair("wide", vit(192, 12, 3), vit(192, 10, 3)))
    monkeypatch.setitem(CLAIMS, "wide", wide)
    with pytest.raises(AssertionError, match="wide at 1.3G: A has 1258411200 FLOPs"):
        build_pairs(["wide"], 1.3e9, quiet=True)


def test_the_psvit_family_is_the_preset_at_unit_multipliers_and_deit_near_finds_the_depth():
    assert psvit_family(1.0, 1.0) == get_preset("psvit_tiny")
    assert deit_near(192, 3, analytic_flops(vit(192, 7, 3)) + 1000) == vit(192, 7, 3)


def test_a_family_without_a_member_in_budget_names_the_claim():
    with pytest.raises(ValueError, match="psvit: budget 0.001 GFLOPs: no member"):
        build_pairs(["psvit"], 1e6, quiet=True)
