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
    assert len(parts) == 2 + blocks + downsamples  # embed, downsamples, blocks, head
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
