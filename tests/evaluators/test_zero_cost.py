"""Zero-cost scores: every one on both tiny presets, deterministic, and checked by hand where small."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vitsearch.evaluators.base import get_evaluator
from vitsearch.evaluators.dss import dss_terms
from vitsearch.evaluators.naswot import naswot_score
from vitsearch.evaluators.synflow import synflow_score
from vitsearch.space import build_model, get_preset

# 32 px synthetic data; target_img_size = img_size keeps the presets' stems as declared (4x4 tokens).
TINY = {"data": "synthetic", "img_size": 32, "target_img_size": 32}

ZERO_COST = ["naswot", "synflow", "snip", "grad_norm", "jacob_cov", "dss"]


@pytest.mark.parametrize("name", ZERO_COST)
def test_scores_both_presets_deterministically(name):
    ev = get_evaluator(name, batch_size=8, **TINY)
    scores = {}
    for preset in ("test_vit", "test_metaformer"):
        first = ev.evaluate(get_preset(preset))
        assert math.isfinite(first["score"]) and first[name] == first["score"]
        assert ev.evaluate(get_preset(preset))["score"] == first["score"]
        scores[preset] = first["score"]
    assert scores["test_vit"] != scores["test_metaformer"]
    assert ev.settings()["batch_size"] == 8
    assert "device" not in ev.settings()  # CPU results keep their settings and cache keys


def test_synflow_by_hand():
    layer = nn.Linear(4, 3, bias=False)
    model = nn.Sequential(nn.Flatten(), layer)
    before = layer.weight.detach().clone()
    # R = sum(|W| 1): dR/dW = 1, so the flow is sum |W|.
    assert synflow_score(model, torch.randn(2, 1, 2, 2)) == pytest.approx(math.log(float(before.abs().sum())))
    assert torch.equal(layer.weight, before)  # the model itself is left alone


def test_naswot_matches_explicit_hamming_kernel():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.GELU(), nn.Linear(4, 2))
    x = torch.randn(4, 6)
    pre1 = model[1](x)
    pre2 = model[3](torch.relu(pre1))
    codes = torch.cat([pre1 > 0, pre2 > 0], dim=1).double()
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1).double()
    expected = torch.linalg.slogdet(codes.shape[1] - hamming)[1]
    assert naswot_score(model, x) == pytest.approx(float(expected))


def test_dss_diversity_only_from_attention_mixers():
    vit_model = build_model(get_preset("test_vit"), img_size=32, num_classes=4)
    pool_only = build_model(get_preset("poolformer_s12").replace(stages=get_preset("poolformer_s12").stages[:1]), 32)
    d_vit, s_vit = dss_terms(vit_model, torch.zeros(1, 3, 32, 32))
    d_pool, s_pool = dss_terms(pool_only, torch.zeros(1, 3, 32, 32))
    assert d_vit > 0 and s_vit > 0
    assert d_pool == 0 and s_pool > 0
