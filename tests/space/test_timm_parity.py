"""Functional parity with timm: same weights (random init, no downloads), same logits."""

import pytest
import timm
import torch

from vitsearch.evaluators.complexity import count_params
from vitsearch.space import build_model
from vitsearch.space.timm_compat import load_timm_state_dict

CASES = [
    ("deit_tiny", "deit_tiny_patch16_224", "vit"),
    ("poolformer_s12", "poolformer_s12", "metaformer"),
]


@pytest.mark.parametrize("preset, timm_name, family", CASES)
def test_same_logits_as_timm(preset, timm_name, family):
    reference = timm.create_model(timm_name, pretrained=False).eval()
    # Perturb every parameter so zero-initialised ones (biases, cls token) are exercised too.
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ours = build_model(preset).eval()
    load_timm_state_dict(ours, reference.state_dict(), family)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (ours(x) - reference(x)).abs().max().item()
    assert diff < 1e-4


@pytest.mark.parametrize(
    "preset, expected",
    [("deit_tiny", 5_717_416), ("deit_small", 22_050_664), ("poolformer_s12", 11_915_176)],
)
def test_parameter_counts_match_timm(preset, expected):
    assert count_params(preset) == expected


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="family"):
        load_timm_state_dict(build_model("test_vit"), {}, "swin")
