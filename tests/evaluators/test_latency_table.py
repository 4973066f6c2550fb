"""The per-part latency table: the parts chain into the model, each is timed once, the file is reused."""

from __future__ import annotations

import json

import pytest
import torch

from vitsearch.evaluators.latency import LatencySettings
from vitsearch.evaluators.latency_table import LatencyTable, arch_parts
from vitsearch.space import build_model, get_preset

FAST = LatencySettings(warmup=0, repeats=1)


def tiny(name: str):
    return get_preset(name)


@pytest.mark.parametrize("name", ["test_vit", "test_metaformer", "psvit_tiny"])
def test_parts_chain_into_the_models_output_shape(name):
    arch = get_preset(name)
    img = 32 if name.startswith("test_") else 224
    parts = list(arch_parts(arch, img, 3, 10))
    blocks = sum(len(s.blocks) for s in arch.stages)
    downsamples = sum(s.downsample != "none" for s in arch.stages)
    assert len(parts) == 2 + 2 * blocks + downsamples  # embed, downsamples, two halves per block, head
    x = None
    with torch.no_grad():
        for key, build in parts:
            module, example = build(2)
            if x is not None:
                assert x.shape == example.shape, key  # each part receives what the previous one gives
            x = module.eval()(example if x is None else x)
        want = build_model(arch, img_size=img, in_chans=3, num_classes=10).eval()(torch.randn(2, 3, img, img))
    assert x.shape == want.shape


def test_sharing_blocks_are_timed_with_a_kept_map():
    arch = get_preset("psvit_tiny")
    assert any(b.share_attention for *_, b in arch.blocks())
    table = LatencyTable(FAST, img_size=224)
    assert table.predict_ms(arch) > 0


def test_each_part_is_timed_once_and_the_file_is_reused(tmp_path):
    path = tmp_path / "table.json"
    table = LatencyTable(FAST, img_size=32, num_classes=10, path=path)
    first = table.predict_ms(tiny("test_vit"))
    timed = table.measured
    assert timed == len(set(k for k, _ in arch_parts(tiny("test_vit"), 32, 3, 10)))  # repeated blocks timed once
    assert table.predict_ms(tiny("test_vit")) == first and table.measured == timed
    again = LatencyTable(FAST, img_size=32, num_classes=10, path=path)
    assert again.predict_ms(tiny("test_vit")) == first and again.measured == 0
    other = LatencyTable(LatencySettings(warmup=0, repeats=2), img_size=32, num_classes=10, path=path)
    assert not other.entries  # other settings: the stored entries do not apply
    assert json.loads(path.read_text())["identity"]["settings"]["repeats"] == 1


@pytest.mark.parametrize("mixer", ["attention", "pool", "identity"])
def test_the_two_halves_compute_the_block(mixer):
    from vitsearch.evaluators.latency_table import _ChannelHalf, _TokenHalf
    from vitsearch.space import BlockConfig, MixerConfig, TokenGrid
    from vitsearch.space.layers import Block, ForwardContext

    torch.manual_seed(0)
    grid = TokenGrid(4, 4, 1)
    cfg = BlockConfig(MixerConfig(mixer, heads=2 if mixer == "attention" else None))
    block = Block(32, cfg, grid, "layernorm", 1e-5)
    block = block.eval().reparameterize()
    x = torch.randn(2, grid.tokens, 32)
    want = block(x, ForwardContext(grid=grid))
    got = _ChannelHalf(block)(_TokenHalf(block, grid, rope=False, shared_map=None)(x))
    assert torch.allclose(got, want, atol=1e-6)


def test_calibration_scales_the_sum_and_is_stored(tmp_path):
    path = tmp_path / "table.json"
    table = LatencyTable(FAST, img_size=32, num_classes=10, path=path)
    raw = table.predict_ms(tiny("test_vit"))
    scale = table.calibrate([tiny("test_vit"), tiny("test_metaformer")])
    assert scale > 0 and table.predict_ms(tiny("test_vit")) == pytest.approx(raw * scale)
    assert LatencyTable(FAST, img_size=32, num_classes=10, path=path).scale == scale
