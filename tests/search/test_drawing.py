"""The chosen architecture drawn: the view's data, the SVG of report.html and the terminal panels."""

import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from vitsearch.search.cli.drawing import arch_panels
from vitsearch.search.drawing import MIXER_COLOURS, arch_svg, arch_view, mixer_colour
from vitsearch.space import ArchConfig, get_preset, list_mixers
from vitsearch.space.analytic import analytic_flops, analytic_params


def test_every_registered_mixer_has_its_own_colour():
    assert set(list_mixers()) <= set(MIXER_COLOURS)
    assert len(set(MIXER_COLOURS.values())) == len(MIXER_COLOURS)
    assert mixer_colour("not-registered") == mixer_colour("not-registered") != mixer_colour("other")


def test_psvit_view_marks_pooling_and_sharing_with_the_grids_and_shares():
    arch = get_preset("psvit_tiny")
    view = arch_view(arch)
    assert [s.grid for s in view.stages] == [(28, 28), (14, 14), (7, 7)]
    assert [s.pools_tokens for s in view.stages] == [False, True, True]
    assert view.stages[1].entry_label == "mean pool 28x28 -> 14x14"
    layers = [layer for s in view.stages for layer in s.layers]
    blocks = [b for _, _, _, b in arch.blocks()]
    assert [layer.shares_map for layer in layers] == [b.share_attention for b in blocks]
    # a block lends its map exactly when the next block shares it (PSViT alternates)
    assert [layer.lends_map for layer in layers[:-1]] == [b.share_attention for b in blocks[1:]]
    assert view.flops == analytic_flops(arch) and view.params == analytic_params(arch)
    shares = sum(s.flops_share for s in view.stages) + view.stem_share + view.head_share
    assert shares == pytest.approx(1.0)


def test_svg_is_well_formed_with_one_bar_per_layer_coloured_by_its_mixer():
    arch = ArchConfig.from_dict(
        {
            "stem": {"type": "patch", "patch_size": 16},
            "stages": [
                {"width": 64, "blocks": [{"mixer": {"type": "attention", "heads": 2}}, {"mixer": "pool"}]},
                {
                    "width": 128,
                    "downsample": "conv",
                    "blocks": [
                        {"mixer": {"type": "performer", "heads": 4}, "mlp_groups": 2, "cca": True},
                        {"mixer": "fnet", "mlp_ratio": 2},
                    ],
                },
            ],
            "head": "mean",
            "position": "none",
        }
    )
    svg = ET.fromstring(arch_svg(arch_view(arch, img_size=64, num_classes=10)))
    ns = {"s": "http://www.w3.org/2000/svg"}
    layers = svg.findall(".//s:g[@class='layer']", ns)
    assert [g.get("data-mixer") for g in layers] == ["attention", "pool", "performer", "fnet"]
    for g in layers:
        assert g.find("s:rect", ns).get("fill") == MIXER_COLOURS[g.get("data-mixer")]
    texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "x4 g2 +cca" in texts and "performer 4h" in texts
    assert "4x4 → 2x2" in texts  # the conv entry's grid change at 64 px with patch 16


def test_terminal_drawing_names_stages_entries_and_runs_of_layers():
    console = Console(record=True, width=100, color_system=None)
    console.print(arch_panels(arch_view(get_preset("poolformer_s12")), "poolformer"))
    text = console.export_text()
    assert "stage 2: width 320, 14x14 tokens, 6 layers" in text
    assert "conv 28x28 -> 14x14" in text
    assert "6x ██ pool" in text  # six identical layers print as one line
    assert "57% of FLOPs" in text
