"""ArchConfig: a frozen, hashable, validated description of one Vision Transformer.

The tree is ``ArchConfig -> StageConfig -> BlockConfig -> MixerConfig``, the MetaFormer
general form of docs/design.md ("The space"): ``stem -> stages[downsample -> blocks] -> norm -> head``.
Every config round-trips through plain dicts, YAML and JSON; validation names the field
path of the first problem it finds (``stages[0].blocks[3].mixer.heads: 5 does not divide
width 192``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .files import atomic_write_text

CONFIG_VERSION = 1

STEM_TYPES = ("patch", "conv")
POSITION_TYPES = ("learned", "rope", "none")
HEAD_TYPES = ("cls", "mean")
NORM_TYPES = ("layernorm", "groupnorm")


class ConfigError(ValueError):
    """An impossible or malformed architecture; the message starts with the field path."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclass(frozen=True)
class MixerConfig:
    type: str = "attention"  # a name from the mixer registry (vitsearch mixers)
    heads: int | None = None  # attention-family mixers only
    options: tuple[tuple[str, Any], ...] = ()  # mixer-specific settings, sorted (key, value) pairs

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class BlockConfig:
    mixer: MixerConfig = field(default_factory=MixerConfig)
    mlp_ratio: float = 4.0  # hidden width = int(width * mlp_ratio), as timm
    mlp_groups: int = 1  # block-diagonal groups G of fc1 and fc2 (SCHEME); 1 = dense
    share_attention: bool = False  # reuse the previous block's attention map (PSViT)
    cca: bool = False  # SCHEME channel-covariance branch beside the MLP (training only)


@dataclass(frozen=True)
class StageConfig:
    width: int
    blocks: tuple[BlockConfig, ...]
    downsample: str = "none"  # how the stage is entered: none | conv (3x3 stride 2, PoolFormer) | ...

    @property
    def depth(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True)
class StemConfig:
    type: str = "patch"  # patch: one conv, kernel >= stride (ViT / PoolFormer); conv: ViX 3x3 convs
    patch_size: int = 16  # stride of the stem: token grid = img_size // patch_size
    kernel_size: int | None = None  # patch stem only; None = patch_size (non-overlapping)


@dataclass(frozen=True)
class ArchConfig:
    stages: tuple[StageConfig, ...]
    stem: StemConfig = field(default_factory=StemConfig)
    position: str = "learned"
    head: str = "cls"
    norm: str = "layernorm"  # block norms; the head norm is always LayerNorm (eps 1e-6)
    layer_scale_init: float | None = None  # None: no layer scale
    version: int = CONFIG_VERSION

    # --- derived -------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return sum(s.depth for s in self.stages)

    def blocks(self):
        """Yield ``(stage_index, block_index, stage, block)`` in forward order."""
        for si, stage in enumerate(self.stages):
            for bi, block in enumerate(stage.blocks):
                yield si, bi, stage, block

    def total_stride(self) -> int:
        """Input pixels per token side at the last stage."""
        from .registry import get_downsample

        stride = self.stem.patch_size
        for stage in self.stages:
            stride *= get_downsample(stage.downsample).stride
        return stride

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "stem": _drop_none(dataclasses.asdict(self.stem)),
            "position": self.position,
            "head": self.head,
            "norm": self.norm,
            "layer_scale_init": self.layer_scale_init,
            "stages": [_stage_to_dict(s) for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchConfig:
        arch = _arch_from_dict(data)
        validate(arch)
        return arch

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        """Write YAML or JSON by suffix, atomically (a crash never leaves half a file)."""
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | Path) -> ArchConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(str(path), f"cannot read file ({err.strerror})") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(str(path), f"not valid YAML ({yaml_problem(err)})") from None
        except json.JSONDecodeError as err:
            raise ConfigError(str(path), f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
        if not isinstance(data, Mapping):
            raise ConfigError(str(path), "expected a mapping of architecture fields at the top level")
        try:
            return cls.from_dict(data)
        except ConfigError as err:  # say which file, as SearchSpace.load does
            raise ConfigError(f"{path}: {err.path}" if err.path else str(path), err.problem) from None

    def digest(self) -> str:
        """Stable content hash across processes (``hash()`` is salted per process)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> ArchConfig:
        return dataclasses.replace(self, **changes)


# --- dict helpers ----------------------------------------------------------------------------


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error in one line, where and what (its own text spans several lines, the place last)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines() or [type(err).__name__])[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _block_to_dict(block: BlockConfig) -> dict[str, Any]:
    mixer: dict[str, Any] = {"type": block.mixer.type}
    if block.mixer.heads is not None:
        mixer["heads"] = block.mixer.heads
    mixer.update(dict(block.mixer.options))
    out: dict[str, Any] = {"mixer": mixer, "mlp_ratio": block.mlp_ratio, "mlp_groups": block.mlp_groups}
    if block.share_attention:
        out["share_attention"] = True
    if block.cca:
        out["cca"] = True
    return out


def _stage_to_dict(stage: StageConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"width": stage.width, "downsample": stage.downsample}
    if stage.blocks and all(b == stage.blocks[0] for b in stage.blocks):
        # A uniform stage is written as depth + one block, the way people write presets.
        out["depth"] = stage.depth
        out["block"] = _block_to_dict(stage.blocks[0])
    else:
        out["blocks"] = [_block_to_dict(b) for b in stage.blocks]
    return out


def _expect(data: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    if isinstance(data, bool) and kind in (int, float, (int, float)):
        raise ConfigError(path, f"expected {what}, got {data!r}")
    if not isinstance(data, kind):
        raise ConfigError(path, f"expected {what}, got {type(data).__name__} {data!r}")
    return data


def _take(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _mixer_from_dict(data: Any, path: str) -> MixerConfig:
    if isinstance(data, str):
        return MixerConfig(type=data)
    data = _expect(data, Mapping, path, "a mixer name or mapping")
    mixer_type = _expect(data.get("type", "attention"), str, f"{path}.type", "a mixer name")
    heads = data.get("heads")
    if heads is not None:
        _expect(heads, int, f"{path}.heads", "an integer")
    options = {k: v for k, v in data.items() if k not in ("type", "heads")}
    for key, value in options.items():
        if isinstance(value, list):
            options[key] = tuple(value)
        elif isinstance(value, Mapping):
            raise ConfigError(f"{path}.{key}", "mixer options must be scalars or lists")
    return MixerConfig(type=mixer_type, heads=heads, options=tuple(sorted(options.items())))


_BLOCK_FIELDS = {f.name for f in fields(BlockConfig)}


def _block_from_dict(data: Any, path: str) -> BlockConfig:
    data = _expect(data, Mapping, path, "a mapping of block fields")
    _take(data, _BLOCK_FIELDS, path)
    kwargs: dict[str, Any] = {"mixer": _mixer_from_dict(data.get("mixer", "attention"), f"{path}.mixer")}
    if "mlp_ratio" in data:
        kwargs["mlp_ratio"] = float(_expect(data["mlp_ratio"], (int, float), f"{path}.mlp_ratio", "a number"))
    if "mlp_groups" in data:
        kwargs["mlp_groups"] = _expect(data["mlp_groups"], int, f"{path}.mlp_groups", "an integer")
    for flag in ("share_attention", "cca"):
        if flag in data:
            kwargs[flag] = _expect(data[flag], bool, f"{path}.{flag}", "true or false")
    return BlockConfig(**kwargs)


def _stage_from_dict(data: Any, path: str) -> StageConfig:
    data = _expect(data, Mapping, path, "a mapping of stage fields")
    _take(data, {"width", "downsample", "depth", "block", "blocks"}, path)
    if "width" not in data:
        raise ConfigError(f"{path}.width", "missing")
    width = _expect(data["width"], int, f"{path}.width", "an integer")
    downsample = _expect(data.get("downsample", "none"), str, f"{path}.downsample", "a name")
    if "blocks" in data:
        if "depth" in data or "block" in data:
            raise ConfigError(path, "give either `blocks` (a list) or `depth` with one `block`, not both")
        raw = _expect(data["blocks"], list, f"{path}.blocks", "a list of blocks")
        blocks = tuple(_block_from_dict(b, f"{path}.blocks[{i}]") for i, b in enumerate(raw))
    else:
        if "depth" not in data:
            raise ConfigError(f"{path}.depth", "missing (or give a `blocks` list)")
        depth = _expect(data["depth"], int, f"{path}.depth", "an integer")
        if depth < 1:
            raise ConfigError(f"{path}.depth", f"must be at least 1, got {depth}")
        blocks = (_block_from_dict(data.get("block", {}), f"{path}.block"),) * depth
    return StageConfig(width=width, blocks=blocks, downsample=downsample)


def _arch_from_dict(data: Mapping[str, Any]) -> ArchConfig:
    data = _expect(data, Mapping, "", "a mapping of architecture fields")
    allowed = {f.name for f in fields(ArchConfig)}
    _take(data, allowed, "")
    version = data.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version > CONFIG_VERSION:
            raise ConfigError(
                "version", f"{version} is from a newer vitsearch (this one reads version {CONFIG_VERSION}); upgrade it"
            )
        raise ConfigError("version", f"unsupported config version {version!r} (this vitsearch reads {CONFIG_VERSION})")
    if "stages" not in data:
        raise ConfigError("stages", "missing")
    raw_stages = _expect(data["stages"], list, "stages", "a list of stages")
    stages = tuple(_stage_from_dict(s, f"stages[{i}]") for i, s in enumerate(raw_stages))
    stem_data = _expect(data.get("stem", {}), Mapping, "stem", "a mapping")
    _take(stem_data, {f.name for f in fields(StemConfig)}, "stem")
    for key in ("patch_size", "kernel_size"):
        if stem_data.get(key) is not None:
            _expect(stem_data[key], int, f"stem.{key}", "an integer")
    stem = StemConfig(**stem_data)
    lsi = data.get("layer_scale_init")
    if lsi is not None:
        lsi = float(_expect(lsi, (int, float), "layer_scale_init", "a number or null"))
    kwargs = {k: data[k] for k in ("position", "head", "norm") if k in data}
    for key, value in kwargs.items():
        _expect(value, str, key, "a name")
    return ArchConfig(stages=stages, stem=stem, layer_scale_init=lsi, version=version, **kwargs)


# --- validation ------------------------------------------------------------------------------


def _one_of(value: str, choices: tuple[str, ...], path: str) -> None:
    if value not in choices:
        raise ConfigError(path, f"unknown value {value!r} (choose from {', '.join(choices)})")


def validate(arch: ArchConfig) -> ArchConfig:
    """Raise ``ConfigError`` naming the field path of the first impossible setting."""
    from .registry import MIXERS, UnknownNameError, get_downsample, get_mixer, list_downsamples, list_mixers

    _one_of(arch.stem.type, STEM_TYPES, "stem.type")
    _one_of(arch.position, POSITION_TYPES, "position")
    _one_of(arch.head, HEAD_TYPES, "head")
    _one_of(arch.norm, NORM_TYPES, "norm")
    if arch.stem.patch_size < 1:
        raise ConfigError("stem.patch_size", f"must be at least 1, got {arch.stem.patch_size}")
    if arch.stem.kernel_size is not None:
        if arch.stem.type != "patch":
            raise ConfigError("stem.kernel_size", "only the patch stem takes a kernel size")
        if arch.stem.kernel_size < arch.stem.patch_size:
            raise ConfigError(
                "stem.kernel_size",
                f"{arch.stem.kernel_size} is smaller than patch_size {arch.stem.patch_size} (pixels would be skipped)",
            )
    if arch.layer_scale_init is not None and not arch.layer_scale_init > 0:
        raise ConfigError("layer_scale_init", f"must be positive or null, got {arch.layer_scale_init}")
    if not arch.stages:
        raise ConfigError("stages", "at least one stage is needed")

    prev_width = None
    for si, stage in enumerate(arch.stages):
        path = f"stages[{si}]"
        if stage.width < 1:
            raise ConfigError(f"{path}.width", f"must be positive, got {stage.width}")
        if not stage.blocks:
            raise ConfigError(f"{path}.blocks", "a stage needs at least one block")
        if stage.downsample not in list_downsamples():
            raise ConfigError(
                f"{path}.downsample",
                f"unknown value {stage.downsample!r} (choose from {', '.join(list_downsamples())})",
            )
        if si == 0 and stage.downsample != "none":
            raise ConfigError(f"{path}.downsample", "the first stage is entered from the stem; use 'none'")
        if prev_width is not None and stage.width != prev_width and not get_downsample(stage.downsample).changes_width:
            raise ConfigError(
                f"{path}.width",
                f"{stage.width} differs from the previous stage's {prev_width}, "
                f"but downsample {stage.downsample!r} cannot change the width",
            )
        for bi, block in enumerate(stage.blocks):
            bpath = f"{path}.blocks[{bi}]"
            if block.mixer.type not in MIXERS:
                unknown = UnknownNameError("mixer", block.mixer.type, list_mixers())
                raise ConfigError(f"{bpath}.mixer.type", str(unknown))
            get_mixer(block.mixer.type).validate(block.mixer, stage.width, f"{bpath}.mixer")
            validate_mlp(block, stage.width, bpath)
        prev_width = stage.width
    _validate_sharing(arch)
    if arch.position == "rope" and not any(get_mixer(b.mixer.type).ROTATES_QK for *_, b in arch.blocks()):
        raise ConfigError("position", "rope rotates queries and keys, but no mixer of this architecture has them")
    return arch


def validate_mlp(block: BlockConfig, width: int, path: str) -> None:
    if not block.mlp_ratio > 0:
        raise ConfigError(f"{path}.mlp_ratio", f"must be positive, got {block.mlp_ratio}")
    hidden = int(width * block.mlp_ratio)
    if hidden < 1:
        raise ConfigError(f"{path}.mlp_ratio", f"{block.mlp_ratio} gives an empty hidden layer at width {width}")
    g = block.mlp_groups
    if g < 1:
        raise ConfigError(f"{path}.mlp_groups", f"must be at least 1, got {g}")
    if width % g or hidden % g:
        raise ConfigError(f"{path}.mlp_groups", f"{g} does not divide width {width} and hidden width {hidden}")


def _validate_sharing(arch: ArchConfig) -> None:
    """PSViT attention sharing: only right after an attention block with the same heads and tokens.

    Heads are compared as resolved (``heads: null`` means head dim 64), not as written.
    """
    from .registry import get_downsample, get_mixer

    prev: BlockConfig | None = None
    prev_heads: int | None = None
    for si, bi, stage, block in arch.blocks():
        if bi == 0 and si > 0 and get_downsample(stage.downsample).stride != 1:
            prev_tokens_changed = True
        else:
            prev_tokens_changed = False
        if block.share_attention:
            path = f"stages[{si}].blocks[{bi}].share_attention"
            if not get_mixer(block.mixer.type).SHARES_ATTENTION:
                raise ConfigError(path, f"mixer {block.mixer.type!r} has no attention map to take")
            if prev is None:
                raise ConfigError(path, "the first block has no previous attention map to reuse")
            if not get_mixer(prev.mixer.type).SHARES_ATTENTION:
                raise ConfigError(path, f"the previous block's mixer {prev.mixer.type!r} has no attention map")
            if prev_tokens_changed:
                raise ConfigError(path, "cannot share across a token-count change (the stage pools tokens)")
            heads = get_mixer(block.mixer.type).resolve_heads(block.mixer, stage.width)
            if heads != prev_heads:
                raise ConfigError(path, f"heads {heads} differ from the previous block's {prev_heads}")
        prev = block
        prev_heads = get_mixer(block.mixer.type).resolve_heads(block.mixer, stage.width)
