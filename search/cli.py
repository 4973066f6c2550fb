"""The ``vitsearch`` command line: a thin layer over functions a notebook can call too.

torch, timm and fvcore are imported inside the commands so ``vitsearch --help`` is instant.
Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="vitsearch",
    help="Neural architecture search for efficient Vision Transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

USAGE_ERROR = 2


def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(USAGE_ERROR)


def user_errors(fn: F) -> F:
    """Turn the errors a user can cause (bad names, files, configs) into one line and exit 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vitsearch.space import ConfigError

        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            raise fail(str(err)) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
            raise fail(f"{err.filename}: {err.strerror}") from None
        except ValueError as err:  # our ValueErrors are one-line messages naming the field
            raise fail(str(err).splitlines()[0] if str(err) else type(err).__name__) from None

    return wrapper  # type: ignore[return-value]


ArchArg = Annotated[str, typer.Argument(help="A preset name (see `vitsearch presets`) or a YAML/JSON config file.")]
ImgSize = Annotated[int, typer.Option("--img-size", min=1, help="Square input resolution of the target profile.")]
NumClasses = Annotated[int, typer.Option("--num-classes", min=0, help="Classifier outputs of the target profile.")]
InChans = Annotated[int, typer.Option("--in-chans", min=1, help="Input channels.")]


@app.command()
@user_errors
def flops(
    arch: ArchArg,
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
    in_chans: InChans = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    train_form: Annotated[
        bool, typer.Option("--train-form", help="Count the training form (before reparameterisation).")
    ] = False,
) -> None:
    """Parameters and FLOPs (fused multiply-adds) of an architecture, with a per-stage breakdown."""
    from vitsearch.search.report import complexity_report

    report = complexity_report(arch, img_size, in_chans, num_classes, deployed=not train_form)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(
        title=f"{report['arch']} at {img_size}x{img_size}x{in_chans}, {num_classes} classes ({report['form']})"
    )
    table.add_column("part")
    table.add_column("params", justify="right")
    table.add_column("GFLOPs", justify="right")
    table.add_column("share", justify="right")
    for part in report["parts"]:
        share = part["flops"] / report["flops"] if report["flops"] else 0.0
        table.add_row(part["name"], f"{part['params']:,}", f"{part['flops'] / 1e9:.4f}", f"{share:.1%}")
    table.add_section()
    table.add_row("total", f"{report['params']:,}", f"{report['flops'] / 1e9:.4f}", "100.0%", style="bold")
    console.print(table)


@app.command()
def mixers() -> None:
    """List the registered token mixers."""
    from vitsearch.space import get_mixer, list_mixers

    table = Table(title="token mixers")
    for column in ("name", "heads", "options", "description"):
        table.add_column(column)
    for name in list_mixers():
        cls = get_mixer(name)
        summary = cls.SUMMARY or " ".join((cls.__doc__ or "").split())[:80]
        options = ", ".join(f"{k}={v}" for k, v in cls.OPTIONS.items())
        table.add_row(name, "yes" if cls.USES_HEADS else "", options, summary)
    console.print(table)


@app.command()
def evaluators() -> None:
    """List the accuracy evaluators and their settings (pass them with --set KEY=VALUE)."""
    from vitsearch.evaluators.base import get_evaluator_class, list_evaluators

    table = Table(title="evaluators")
    for column in ("name", "description"):
        table.add_column(column)
    for name in list_evaluators():
        lines = (get_evaluator_class(name).__doc__ or "").strip().splitlines()
        table.add_row(name, lines[0] if lines else "")
    console.print(table)


@app.command()
def presets() -> None:
    """List the named architectures."""
    from vitsearch.space.presets import PRESETS, list_presets

    table = Table(title="presets")
    table.add_column("name")
    table.add_column("stages")
    for name in list_presets():
        arch = PRESETS[name]()
        stages = " | ".join(f"{s.depth}x{s.width} {s.blocks[0].mixer.type}" for s in arch.stages)
        table.add_row(name, stages)
    console.print(table)


# --- search ------------------------------------------------------------------------------------

DEFAULT_SPACE = "full"
DEFAULT_EVALUATOR = "proxy"  # the only estimate with rank signal in studies/proxy_fidelity.md


def spaces_dir() -> Path:
    """The shipped study files: ``studies/`` of the source tree this package runs from."""
    return Path(__file__).resolve().parent.parent / "studies"


def resolve_space(name_or_path: str):
    from vitsearch.space import ConfigError
    from vitsearch.space.search_space import SearchSpace

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return SearchSpace.load(path)
    shipped = spaces_dir() / f"{name_or_path}.yaml"
    if shipped.exists():
        return SearchSpace.load(shipped)
    names = ", ".join(p.stem for p in sorted(spaces_dir().glob("*.yaml")))
    raise ConfigError("--space", f"{name_or_path!r} is neither a space file nor a shipped space ({names})")


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    import yaml

    from vitsearch.space import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def make_evaluator(name: str, data: str | None, options: dict[str, Any]):
    from vitsearch.evaluators.base import get_evaluator
    from vitsearch.space import ConfigError

    kwargs = dict(options)
    if data is not None:
        kwargs["data"] = data
    try:
        return get_evaluator(name, **kwargs)
    except ValueError as err:
        raise ConfigError("--evaluator", str(err)) from None
    except TypeError as err:
        raise ConfigError("--set", f"evaluator {name!r} does not take these settings ({err})") from None


@app.command()
@user_errors
def spaces(
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
) -> None:
    """List the shipped search spaces with their size and FLOPs range at the target profile."""
    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.space.search_space import SearchSpace

    table = Table(title=f"search spaces (FLOPs at {img_size}px, {num_classes} classes)")
    for column in ("name", "architectures", "min GFLOPs", "max GFLOPs", "description"):
        table.add_column(column, justify="right" if "FLOPs" in column or column == "architectures" else "left")
    for path in sorted(spaces_dir().glob("*.yaml")):
        space = SearchSpace.load(path)
        low = analytic_flops(space.smallest(img_size, num_classes), img_size, num_classes=num_classes)
        high = analytic_flops(space.largest(img_size, num_classes), img_size, num_classes=num_classes)
        size = space.size()
        table.add_row(
            space.name,
            f"{size:.2e}" if size > 1e6 else f"{size:,}",
            f"{low / 1e9:.3f}",
            f"{high / 1e9:.3f}",
            space.description,
        )
    console.print(table)


@app.command()
@user_errors
def run(
    budget: Annotated[str, typer.Option("--budget", help="FLOPs budget: 2GFLOPs, 2G, 1.5e9, 750MFLOPs, 750M.")],
    space: Annotated[str, typer.Option("--space", help="A shipped space name or a space YAML file.")] = DEFAULT_SPACE,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Architectures to evaluate (over resumes).")] = 6,
    evaluator: Annotated[str, typer.Option("--evaluator", help="Accuracy estimate, by name.")] = DEFAULT_EVALUATOR,
    data: Annotated[str | None, typer.Option("--data", help="mnist5k, an image folder, cifar10:PATH.")] = None,
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Evaluator setting KEY=VALUE (repeatable), e.g. epochs=2.")
    ] = None,
    max_params: Annotated[str | None, typer.Option("--max-params", help="Parameter cap, e.g. 10M.")] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, nsga2 or random.")] = "tpe",
    pruner: Annotated[
        str, typer.Option("--pruner", help="successive_halving, median, hyperband or none.")
    ] = "successive_halving",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default studies/runs/<study>).")] = None,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Optuna storage URL (default <out>/study.db).")
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: space name and budget).")] = None,
    params_objective: Annotated[bool, typer.Option("--params-objective", help="Also minimise params.")] = False,
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
    supernet: Annotated[
        Path | None, typer.Option("--supernet", help="Checkpoint of `vitsearch supernet train` (--evaluator supernet).")
    ] = None,
) -> None:
    """Search a space for the most accurate architectures within a FLOPs budget."""
    from vitsearch.search.budget import parse_flops, parse_params
    from vitsearch.search.driver import SearchConfig
    from vitsearch.search.live import run_with_progress
    from vitsearch.space import ConfigError

    try:
        budget_flops = parse_flops(budget)
        params_cap = parse_params(max_params) if max_params is not None else None
    except ValueError as err:
        raise ConfigError("", str(err)) from None
    search_space = resolve_space(space)
    study_name = study or f"{search_space.name}-{budget_flops / 1e9:g}G"
    out = out or Path("studies") / "runs" / study_name
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    options = _parse_options(settings or [])
    if supernet is not None:
        if evaluator != "supernet":
            raise ConfigError("--supernet", "is the checkpoint of --evaluator supernet")
        options["supernet"] = str(supernet)
    config = SearchConfig(
        space=search_space,
        evaluator=make_evaluator(evaluator, data, options),
        budget=budget_flops,
        trials=trials,
        max_params=params_cap,
        img_size=img_size,
        num_classes=num_classes,
        sampler=sampler,
        seed=seed,
        storage=storage or f"sqlite:///{out / 'study.db'}",
        study_name=study_name,
        pruner=pruner,
        params_objective=params_objective,
    )
    run_with_progress(config, out, console)


@app.command()
@user_errors
def show(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    study: Annotated[str | None, typer.Option("--study")] = None,
) -> None:
    """Print the Pareto front of a study."""
    from vitsearch.search.driver import load_study
    from vitsearch.search.live import pareto_table
    from vitsearch.search.results import pareto_frame, trials_frame

    loaded = load_study(target, study)
    trials = trials_frame(loaded)
    console.print(pareto_table(pareto_frame(trials), title=f"Pareto front of {loaded.study_name}"))
    counts = trials["state"].value_counts().to_dict() if not trials.empty else {}
    console.print(", ".join(f"{n} {state.lower()}" for state, n in counts.items()) or "no trials yet")


@app.command()
@user_errors
def plot(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    study: Annotated[str | None, typer.Option("--study")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the pages (default: the run dir).")] = None,
) -> None:
    """(Re)write pareto.html, history.html and importance.html of a study."""
    from vitsearch.search.driver import load_study
    from vitsearch.search.plots import write_plots
    from vitsearch.search.results import trials_frame

    loaded = load_study(target, study)
    budget = loaded.user_attrs["search"]["budget"]
    folder = out or (Path(target) if "://" not in target else Path("."))
    for path in write_plots(loaded, trials_frame(loaded), budget, folder):
        console.print(f"wrote {path}")


@app.command()
@user_errors
def export(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Architecture file to write.")],
    trial: Annotated[int | None, typer.Option("--trial", help="Trial number (default: best within budget).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="yaml or json (default: by suffix).")] = None,
    study: Annotated[str | None, typer.Option("--study")] = None,
) -> None:
    """Write one trial's architecture as a config that `build_model` and `vitsearch flops` accept."""
    from vitsearch.search.driver import load_study
    from vitsearch.search.results import arch_of, write_atomic
    from vitsearch.space import ConfigError

    fmt = fmt or ("json" if output.suffix == ".json" else "yaml")
    if fmt not in ("yaml", "json"):
        raise ConfigError("--format", f"unknown {fmt!r} (choose yaml or json)")
    arch, frozen = arch_of(load_study(target, study), trial)
    write_atomic(output, arch.to_json() if fmt == "json" else arch.to_yaml())
    record = frozen.user_attrs["record"]
    console.print(f"trial {frozen.number}: {record['flops'] / 1e9:.4f} GFLOPs, {record['params']:,} params -> {output}")


@app.command("validate-proxy")
@user_errors
def validate_proxy_command(
    budget: Annotated[str, typer.Option("--budget", help="Sample architectures within this FLOPs budget.")],
    space: Annotated[str, typer.Option("--space", help="A shipped space name or a space YAML file.")] = DEFAULT_SPACE,
    evaluator: Annotated[str, typer.Option("--evaluator", help="The cheap estimate under test.")] = "synflow",
    reference: Annotated[str, typer.Option("--reference", help="The trusted, longer estimate.")] = "proxy",
    n: Annotated[int, typer.Option("--n", min=3, help="Architectures to score with both.")] = 20,
    data: Annotated[str | None, typer.Option("--data", help="Dataset of both evaluators.")] = None,
    settings: Annotated[list[str] | None, typer.Option("--set", help="Evaluator setting KEY=VALUE.")] = None,
    ref_settings: Annotated[
        list[str] | None, typer.Option("--ref-set", help="Reference setting KEY=VALUE, e.g. epochs=12.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Which architectures are drawn.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Results and cache directory.")] = Path("studies/validate"),
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
) -> None:
    """How well EVALUATOR ranks architectures like REFERENCE: Kendall tau and Spearman rho with 95% CIs."""
    from vitsearch.evaluators.validate import validate_proxy
    from vitsearch.search.budget import parse_flops
    from vitsearch.search.driver import sample_under_budget

    search_space = resolve_space(space)
    archs = sample_under_budget(search_space, parse_flops(budget), n, seed, img_size, num_classes)
    cheap = make_evaluator(evaluator, data, _parse_options(settings or []))
    trusted = make_evaluator(reference, data, _parse_options(ref_settings or []))
    console.print(f"scoring {len(archs)} architectures of {search_space.name!r} with {cheap!r} and {trusted!r}")
    result = validate_proxy(archs, cheap, trusted, cache_dir=out / "cache", out_dir=out)
    table = Table(title=f"{cheap.name} against {trusted.name} (n={result.n})")
    for column in ("statistic", "value", "95% CI (bootstrap)"):
        table.add_column(column)
    table.add_row(
        "Kendall tau", f"{result.kendall_tau:.3f}", f"[{result.kendall_ci[0]:.3f}, {result.kendall_ci[1]:.3f}]"
    )
    table.add_row(
        "Spearman rho", f"{result.spearman_rho:.3f}", f"[{result.spearman_ci[0]:.3f}, {result.spearman_ci[1]:.3f}]"
    )
    table.add_row(
        "seconds / arch", f"{result.evaluator_seconds:.2f} vs {result.reference_seconds:.2f}", "median, fresh"
    )
    console.print(table)
    console.print(f"wrote {result.csv_path}, {result.html_path}, {result.json_path}")


# --- supernet: `vitsearch supernet train | eval` (search/supernet_cli.py uses the helpers above) --------
from .supernet_cli import supernet_app  # noqa: E402

app.add_typer(supernet_app, name="supernet")


def main() -> None:
    # torch.jit (used by fvcore's tracer) announces its deprecation on every run; not the user's concern.
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Optuna's experimental-feature notices and per-study INFO lines drown the progress display.
    warnings.filterwarnings("ignore", module="optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
