"""ArchConfig: round trips, hashing, validation messages with field paths."""

import json

import pytest

from vitsearch.space import ArchConfig, BlockConfig, ConfigError, MixerConfig, StageConfig, get_preset, list_presets


@pytest.mark.parametrize("name", list_presets())
def test_dict_yaml_json_round_trip(name, tmp_path):
    arch = get_preset(name)
    assert ArchConfig.from_dict(arch.to_dict()) == arch
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"arch{suffix}"
        arch.save(path)
        assert ArchConfig.load(path) == arch
    assert json.loads(arch.to_json())["version"] == 1


def test_hashable_and_stable_digest():
    a, b = get_preset("deit_tiny"), get_preset("deit_tiny")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.digest() == b.digest()
    assert a.digest() != get_preset("deit_small").digest()


def test_mixed_stage_is_written_block_by_block():
    pool, attn = BlockConfig(mixer=MixerConfig("pool")), BlockConfig(mixer=MixerConfig("attention", heads=2))
    arch = ArchConfig(stages=(StageConfig(width=64, blocks=(pool, attn)),), head="mean")
    data = arch.to_dict()
    assert "blocks" in data["stages"][0] and "depth" not in data["stages"][0]
    assert ArchConfig.from_dict(data) == arch


def deit_dict(**block):
    return {"stages": [{"width": 192, "depth": 4, "block": {"mixer": {"type": "attention", "heads": 3}, **block}}]}


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"stages": [{"width": 192, "depth": 4, "block": {"mixer": {"type": "attention", "heads": 5}}}]},
            "stages[0].blocks[0].mixer.heads: 5 does not divide width 192",
        ),
        (
            {"stages": [{"width": 192, "blocks": [{"mixer": "attention"}, {"mixer": {"type": "nope"}}]}]},
            "stages[0].blocks[1].mixer.type: unknown mixer 'nope'",
        ),
        (deit_dict(mlp_groups=5), "stages[0].blocks[0].mlp_groups: 5 does not divide width 192"),
        (deit_dict(mlp_ratio=0), "stages[0].blocks[0].mlp_ratio: must be positive"),
        (deit_dict(colour="red"), "stages[0].block.colour: unknown field"),
        ({"stages": []}, "stages: at least one stage"),
        ({"stages": [{"depth": 2}]}, "stages[0].width: missing"),
        ({"stages": [{"width": 64, "depth": 0}]}, "stages[0].depth: must be at least 1"),
        ({**deit_dict(), "head": "token"}, "head: unknown value 'token'"),
        ({**deit_dict(), "position": "sine"}, "position: unknown value 'sine'"),
        ({**deit_dict(), "version": 7}, "version: 7 is from a newer vitsearch (this one reads version 1)"),
        ({**deit_dict(), "version": "1.0"}, "version: unsupported config version '1.0'"),
        ({**deit_dict(), "stem": {"patch_size": 0}}, "stem.patch_size: must be at least 1"),
        ({**deit_dict(), "stem": {"patch_size": 4, "kernel_size": 3}}, "stem.kernel_size: 3 is smaller"),
        (
            {"stages": [{"width": 64, "depth": 1}, {"width": 128, "depth": 1}]},
            "stages[1].width: 128 differs from the previous stage's 64",
        ),
        (
            {"stages": [{"width": 64, "depth": 1, "downsample": "conv"}]},
            "stages[0].downsample: the first stage is entered from the stem",
        ),
        (
            {"stages": [{"width": 64, "depth": 1, "block": {"mixer": {"type": "pool", "heads": 2}}}]},
            "stages[0].blocks[0].mixer.heads: mixer 'pool' takes no heads",
        ),
        (
            {"stages": [{"width": 64, "depth": 1, "block": {"mixer": {"type": "pool", "size": 3}}}]},
            "stages[0].blocks[0].mixer.size: unknown option for mixer 'pool'",
        ),
        (
            {"stages": [{"width": 64, "depth": 1, "block": {"mixer": {"type": "pool", "pool_size": 2}}}]},
            "stages[0].blocks[0].mixer.pool_size: must be a positive odd number",
        ),
        (
            {"stages": [{"width": 64, "depth": 1, "block": {"mixer": {"type": "attention", "qkv_bias": 1}}}]},
            "stages[0].blocks[0].mixer.qkv_bias: expected bool",
        ),
        ({"stages": [{"width": "wide", "depth": 1}]}, "stages[0].width: expected an integer"),
    ],
)
def test_validation_names_the_field(data, message):
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_dict(data)
    assert message in str(info.value)


def test_load_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ArchConfig.load(bad)
    with pytest.raises(ConfigError, match="cannot read file"):
        ArchConfig.load(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    with pytest.raises(ConfigError, match="expected a mapping"):
        ArchConfig.load(scalar)


def test_save_is_atomic_and_leaves_no_temp(tmp_path):
    path = tmp_path / "arch.yaml"
    get_preset("test_vit").save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["arch.yaml"]


def test_rope_needs_a_query_key_mixer():
    from vitsearch.space import validate

    pool = get_preset("poolformer_s12")
    with pytest.raises(ConfigError, match="^position: rope rotates queries and keys, but no mixer"):
        validate(pool.replace(position="rope"))
    assert validate(get_preset("deit_tiny").replace(position="rope")).position == "rope"
