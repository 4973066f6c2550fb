"""Reading a finished or running study: ``show``, ``plot``, ``report`` and ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .console import console
from .errors import user_errors, writable_folder


@user_errors
def show(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    study: Annotated[str | None, typer.Option("--study")] = None,
) -> None:
    """Print the Pareto front of a study, its baselines and verdict, and the chosen architecture drawn."""
    from vitsearch.search.driver import load_study
    from vitsearch.search.results import RunResults

    from .tables import baselines_table, failures_table, pareto_table

    results = RunResults.of(load_study(target, study))
    console.print(pareto_table(results.front, title=f"Pareto front of {results.study.study_name}"))
    if results.best is not None:
        console.print(_drawing(results))
    if not results.baselines.empty:
        console.print(baselines_table(results.baselines))
        console.print(results.verdict_line() or "no evaluated architecture within budget yet", highlight=False)
    if not results.failures.empty:
        console.print(failures_table(results.failures))
    trials = results.trials
    counts = trials["state"].value_counts().to_dict() if not trials.empty else {}
    console.print(", ".join(f"{n} {state.lower()}" for state, n in counts.items()) or "no trials yet")


@user_errors
def plot(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    study: Annotated[str | None, typer.Option("--study")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the pages (default: the run dir).")] = None,
) -> None:
    """(Re)write pareto.html, history.html and importance.html of a study."""
    from vitsearch.search.driver import load_study
    from vitsearch.search.plots import write_plots
    from vitsearch.search.results import RunResults

    results = RunResults.of(load_study(target, study))
    for path in write_plots(results, _pages_folder(target, out)):
        console.print(f"wrote {path}")


def _pages_folder(target: str, out: Path | None) -> Path:
    """Where ``plot`` and ``report`` write: ``--out``, else the run directory (the current one for a URL)."""
    return out or (Path(target) if "://" not in target else Path("."))


def _drawing(results):
    from vitsearch.search.run_report import pick_view

    from .drawing import arch_panels

    row = results.best_row
    title = f"chosen architecture: trial {row['trial']}, {row['gflops']:.3f} GFLOPs, {row['params'] / 1e6:.2f}M params"
    return arch_panels(pick_view(results), title)


@user_errors
def report(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    study: Annotated[str | None, typer.Option("--study")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder of report.html (default: the run dir).")] = None,
) -> None:
    """(Re)write report.html: the front, the chosen architecture drawn, the plots and how to use the pick."""
    from vitsearch.search.driver import load_study
    from vitsearch.search.results import RunResults
    from vitsearch.search.run_report import write_report

    results = RunResults.of(load_study(target, study))
    console.print(f"wrote {write_report(results, writable_folder(_pages_folder(target, out), '--out'))}")


@user_errors
def export(
    target: Annotated[
        str, typer.Argument(help="A run directory or an Optuna storage URL (with --deploy also a config or preset).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Architecture file to write (with --deploy: a folder).")
    ],
    trial: Annotated[int | None, typer.Option("--trial", help="Trial number (default: best within budget).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="yaml or json (default: by suffix).")] = None,
    study: Annotated[str | None, typer.Option("--study")] = None,
    deploy: Annotated[
        bool, typer.Option("--deploy", help="Write the deployed model: arch.yaml, model.safetensors, model.onnx.")
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="With --deploy: safetensors or weights-only torch checkpoint to export."),
    ] = None,
    img_size: Annotated[int | None, typer.Option("--img-size", min=1, help="With --deploy: input side.")] = None,
    num_classes: Annotated[int | None, typer.Option("--num-classes", min=0, help="With --deploy: classes.")] = None,
    in_chans: Annotated[int | None, typer.Option("--in-chans", min=1, help="With --deploy: input channels.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="With --deploy and no weights: initialisation seed.")] = 0,
    opset: Annotated[int, typer.Option("--opset", help="With --deploy: ONNX opset (17 to 19).")] = 17,
) -> None:
    """Write one trial's architecture as a config that `build_model` and `vitsearch flops` accept.

    With --deploy, write a folder with the reparameterised model instead: the config, its
    safetensors weights and an ONNX file checked against onnxruntime.
    """
    from vitsearch.space import ConfigError

    if deploy:
        writable_folder(output, "-o")
        _export_deploy(target, output, trial, study, weights, img_size, num_classes, in_chans, seed, opset)
        return
    extra = {"--weights": weights, "--img-size": img_size, "--num-classes": num_classes, "--in-chans": in_chans}
    for name, value in extra.items():
        if value is not None:
            raise ConfigError(name, "only with --deploy")
    from vitsearch.search.driver import load_study
    from vitsearch.search.results import arch_of
    from vitsearch.space.files import atomic_write_text

    writable_folder(output.parent, "-o")
    fmt = fmt or ("json" if output.suffix == ".json" else "yaml")
    if fmt not in ("yaml", "json"):
        raise ConfigError("--format", f"unknown {fmt!r} (choose yaml or json)")
    arch, frozen = arch_of(load_study(target, study), trial)
    atomic_write_text(output, arch.to_json() if fmt == "json" else arch.to_yaml())
    record = frozen.user_attrs["record"]
    console.print(f"trial {frozen.number}: {record['flops'] / 1e9:.4f} GFLOPs, {record['params']:,} params -> {output}")


def _export_deploy(
    target: str,
    output: Path,
    trial: int | None,
    study: str | None,
    weights: Path | None,
    img_size: int | None,
    num_classes: int | None,
    in_chans: int | None,
    seed: int,
    opset: int,
) -> None:
    from vitsearch.search.deploy import export_deployed, resolve_source

    source = resolve_source(target, study, trial)
    weights = weights or source.weights
    if weights is None:  # a fresh model is built for the profile the study searched at
        img_size = img_size or source.profile.get("img_size")
        num_classes = num_classes if num_classes is not None else source.profile.get("num_classes")
    result = export_deployed(source.arch, output, weights, img_size, in_chans, num_classes, seed, opset)
    info = result.info
    parity = info["parity"]
    reparam = parity["reparameterized_vs_train_form"]
    console.print(
        f"{source.label}: {info['flops'] / 1e9:.4f} GFLOPs, {info['params']:,} params at "
        f"{info['img_size']}px, weights {info['weights_source']}",
        highlight=False,
    )
    console.print(
        "parity (max abs diff of logits): "
        + (f"reparameterised vs training form {reparam:.2e}, " if reparam is not None else "")
        + f"onnxruntime vs torch {parity['onnxruntime_vs_torch']:.2e}",
        highlight=False,
    )
    console.print("wrote " + ", ".join(p.name for p in result.files) + f" in {output}", highlight=False)


COMMANDS = {"show": show, "plot": plot, "report": report, "export": export}
