"""Options and defaults shared by several commands, and ``--set KEY=VALUE`` parsing."""

from __future__ import annotations

from typing import Annotated, Any

import typer

DEFAULT_SPACE = "full"
# 40: enough draws for three rungs (a default run promoted 14, then 5); with --workers 2 and the default proxy
# `make run` takes about 7.5 minutes on a 2-core CPU, set-up and baselines included (docs/results/make-run.md).
DEFAULT_TRIALS = 40
DEFAULT_EVALUATOR = "proxy"  # the only estimate with rank signal in studies/proxy_fidelity.md
DEFAULT_PRUNER = "none"  # the rungs stop the weak (search/rungs.py); pruning 2-epoch trials decided nothing

ArchArg = Annotated[str, typer.Argument(help="A preset name (see `vitsearch presets`) or a YAML/JSON config file.")]

ImgSize = Annotated[int, typer.Option("--img-size", min=1, help="Square input resolution of the target profile.")]

NumClasses = Annotated[int, typer.Option("--num-classes", min=0, help="Classifier outputs of the target profile.")]

InChans = Annotated[int, typer.Option("--in-chans", min=1, help="Input channels.")]

DeviceOption = Annotated[str, typer.Option("--device", help="auto (a GPU when there is one), cpu, cuda or cuda:N.")]
AmpOption = Annotated[
    str, typer.Option("--amp", help="Mixed precision: auto (bf16 on a capable GPU, off on the CPU), bf16, fp16, off.")
]

CompileOption = Annotated[
    bool, typer.Option("--compile", help="torch.compile the training forward (opt-in; pays off on long GPU runs).")
]


def check_device(device: str, amp: str) -> None:
    """Refuse an unknown or missing device, or an unknown precision, before anything is written."""
    from vitsearch.evaluators.training import resolve_device, resolve_precision

    resolve_precision(amp, resolve_device(device))


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    import yaml

    from vitsearch.space import ConfigError

    """``["epochs=2", "lr=1e-3"]`` -> ``{"epochs": 2, "lr": 0.001}`` (values read as YAML)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out
