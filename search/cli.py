"""The ``vitsearch`` command line: a thin layer over functions a notebook can call too.

torch, timm and fvcore are imported inside the commands so ``vitsearch --help`` is instant.
Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from .cli_options import AmpOption, CompileOption, DeviceOption, check_device

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
        except OSError as err:  # a file or folder the user named: missing, a file, not writable...
            raise fail(f"{err.filename}: {err.strerror}" if err.filename else str(err) or type(err).__name__) from None
        except ValueError as err:  # our ValueErrors are one-line messages naming the field
            raise fail(str(err).splitlines()[0] if str(err) else type(err).__name__) from None

    return wrapper  # type: ignore[return-value]


ArchArg = Annotated[str, typer.Argument(help="A preset name (see `vitsearch presets`) or a YAML/JSON config file.")]
ImgSize = Annotated[int, typer.Option("--img-size", min=1, help="Square input resolution of the target profile.")]
NumClasses = Annotated[int, typer.Option("--num-classes", min=0, help="Classifier outputs of the target profile.")]
InChans = Annotated[int, typer.Option("--in-chans", min=1, help="Input channels.")]


def writable_folder(path: Path, option: str) -> Path:
    """Refuse an output folder that cannot be created or written, before anything is read or written.

    Checks the folder, or the nearest part of its path that exists: a file there, or a folder
    without write permission, is one line naming ``option``. (Root writes through permissions,
    so there only a file in the way is caught early; ``user_errors`` still catches the rest.)
    """
    from vitsearch.space import ConfigError

    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(option, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(option, f"{existing} is not writable")
    return path


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
DEFAULT_PRUNER = "pareto"  # = evaluators.pruners.DEFAULT_PRUNER (a test checks), kept here so --help skips optuna


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
    from vitsearch.evaluators.base import get_evaluator_class
    from vitsearch.space import ConfigError

    kwargs = dict(options)
    if data is not None:
        kwargs["data"] = data
    try:
        cls = get_evaluator_class(name)
    except ValueError as err:
        raise ConfigError("--evaluator", str(err)) from None
    try:  # the evaluators' own ValueErrors (bad data, a bad checkpoint) are one line naming the problem
        return cls(**kwargs)
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
    sampler: Annotated[
        str, typer.Option("--sampler", help="auto (tpe below 200 trials, nsga2 from 200), tpe, nsga2 or random.")
    ] = "auto",
    pruner: Annotated[
        str,
        typer.Option(
            "--pruner",
            help="pareto (stop when a cheaper trial is as accurate at the same epoch), "
            "successive_halving, median, hyperband or none.",
        ),
    ] = DEFAULT_PRUNER,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default studies/runs/<study>).")] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna storage URL (default sqlite:///<out>/study.db), e.g. postgresql+psycopg2://user@host/db, "
            "or journal:PATH for a journal file.",
        ),
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: space name and budget).")] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes on this machine, sharing the study.")
    ] = 1,
    params_objective: Annotated[bool, typer.Option("--params-objective", help="Also minimise params.")] = False,
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
    max_latency: Annotated[
        str | None, typer.Option("--max-latency", help="Latency cap on this machine, e.g. 15ms (deployed, batch 1).")
    ] = None,
    latency_objective: Annotated[
        bool, typer.Option("--latency-objective", help="Also minimise latency measured on this machine.")
    ] = False,
    latency_backend: Annotated[str, typer.Option("--latency-backend", help="torch or onnxruntime.")] = "torch",
    latency_threads: Annotated[int, typer.Option("--latency-threads", min=1, help="Threads when timing.")] = 1,
    supernet: Annotated[
        Path | None, typer.Option("--supernet", help="Checkpoint of `vitsearch supernet train` (--evaluator supernet).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Evaluator device: auto, cpu, cuda, cuda:N (proxy, supernet).")
    ] = None,
    amp: Annotated[str | None, typer.Option("--amp", help="Proxy mixed precision: auto, bf16, fp16, off.")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile each proxy trial's model.")] = False,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines",
            help="Also score hand-designed DeiT / PoolFormer / SCHEMEformer baselines fitted to the budget.",
        ),
    ] = True,
) -> None:
    """Search a space for the most accurate architectures within a FLOPs budget."""
    from vitsearch.evaluators.pruners import make_pruner
    from vitsearch.search.budget import parse_flops, parse_params
    from vitsearch.search.driver import SearchConfig, check_budget, make_sampler
    from vitsearch.search.live import run_with_progress
    from vitsearch.space import ConfigError

    # Everything is checked before the first write: a refused command leaves the run directory as it was.
    try:
        budget_flops = parse_flops(budget)
        params_cap = parse_params(max_params) if max_params is not None else None
    except ValueError as err:
        raise ConfigError("", str(err)) from None
    search_space = resolve_space(space)
    study_name = study or f"{search_space.name}-{budget_flops / 1e9:g}G"
    out = writable_folder(out or Path("studies") / "runs" / study_name, "--out")
    make_sampler(sampler)
    try:
        make_pruner(pruner)
    except ValueError as err:
        raise ConfigError("--pruner", str(err)) from None
    options = _parse_options(settings or [])
    for key, value in (("device", device), ("amp", amp), ("compile", compile or None)):
        if value is not None:
            options[key] = value
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
        workers=workers,
        baselines=baselines,
        **_latency_options(max_latency, latency_objective, latency_backend, latency_threads),
    )
    check_budget(config)
    if storage is None:  # the SQLite file goes here; with --storage, the outputs create the folder
        out.mkdir(parents=True, exist_ok=True)
    run_with_progress(config, out, console)


def _latency_options(max_latency: str | None, objective: bool, backend: str, threads: int) -> dict[str, Any]:
    from vitsearch.evaluators.latency import LatencySettings, list_backends
    from vitsearch.search.budget import parse_latency_ms
    from vitsearch.space import ConfigError

    if backend not in list_backends():
        raise ConfigError("--latency-backend", f"unknown {backend!r} (choose from {', '.join(list_backends())})")
    return {
        "max_latency_ms": parse_latency_ms(max_latency) if max_latency is not None else None,
        "latency_objective": objective,
        "latency": LatencySettings(backend=backend, threads=threads),
    }


@app.command()
@user_errors
def show(
    target: Annotated[str, typer.Argument(help="A run directory or an Optuna storage URL.")],
    study: Annotated[str | None, typer.Option("--study")] = None,
) -> None:
    """Print the Pareto front of a study."""
    from vitsearch.search.baselines import baselines_frame
    from vitsearch.search.driver import load_study
    from vitsearch.search.live import baselines_table, failures_frame, failures_table, pareto_table, verdict_line
    from vitsearch.search.results import pareto_frame, trials_frame

    loaded = load_study(target, study)
    trials = trials_frame(loaded)
    console.print(pareto_table(pareto_frame(trials), title=f"Pareto front of {loaded.study_name}"))
    baselines = baselines_frame(loaded)
    if not baselines.empty:
        console.print(baselines_table(baselines))
        console.print(verdict_line(loaded, baselines) or "no evaluated architecture within budget yet", highlight=False)
    failed = failures_frame(trials)
    if not failed.empty:
        console.print(failures_table(failed))
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
    from vitsearch.search.baselines import baselines_frame
    from vitsearch.search.driver import load_study
    from vitsearch.search.plots import write_plots
    from vitsearch.search.results import trials_frame

    loaded = load_study(target, study)
    budget = loaded.user_attrs["search"]["budget"]
    folder = out or (Path(target) if "://" not in target else Path("."))
    for path in write_plots(loaded, trials_frame(loaded), budget, folder, baselines_frame(loaded)):
        console.print(f"wrote {path}")


@app.command()
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


@app.command("train")
@user_errors
def train_command(
    arch: ArchArg,
    data: Annotated[str, typer.Option("--data", help="mnist5k, synthetic, an image folder, cifar10:PATH.")] = "mnist5k",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 100,
    img_size: Annotated[int, typer.Option("--img-size", min=1, help="Training resolution (images resized).")] = 224,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    lr: Annotated[float, typer.Option("--lr", help="AdamW peak learning rate.")] = 5e-4,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.05,
    warmup_epochs: Annotated[int, typer.Option("--warmup-epochs", min=0)] = 5,
    mixup: Annotated[float, typer.Option("--mixup", help="Mixup alpha; 0 = off.")] = 0.8,
    cutmix: Annotated[float, typer.Option("--cutmix", help="CutMix alpha; 0 = off.")] = 1.0,
    smoothing: Annotated[float, typer.Option("--smoothing", help="Label smoothing.")] = 0.1,
    ema_decay: Annotated[float, typer.Option("--ema-decay", help="Model EMA decay; 0 = no EMA.")] = 0.9998,
    grad_clip: Annotated[float | None, typer.Option("--grad-clip", help="Max global grad norm.")] = None,
    teacher: Annotated[
        str | None, typer.Option("--teacher", help="Teacher architecture (default: the one in its weights).")
    ] = None,
    teacher_weights: Annotated[
        Path | None, typer.Option("--teacher-weights", help="Teacher checkpoint: enables soft distillation.")
    ] = None,
    distill_weight: Annotated[float, typer.Option("--distill-weight", help="a in (1-a) CE + a KD.")] = 0.5,
    distill_temperature: Annotated[float, typer.Option("--distill-temperature")] = 1.0,
    imitation_weight: Annotated[
        float, typer.Option("--imitation-weight", help="RIFormer module imitation weight; 0 = off.")
    ] = 0.0,
    from_supernet: Annotated[
        Path | None, typer.Option("--from-supernet", help="Start from the supernet's inherited weights.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: <run dir>/train or studies/runs/train-*).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from last.pt.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch threads while training.")] = None,
    train_subset: Annotated[int | None, typer.Option("--train-subset", min=1, help="Training images.")] = None,
    val_subset: Annotated[int | None, typer.Option("--val-subset", min=1, help="Validation images.")] = None,
    device: DeviceOption = "auto",
    amp: AmpOption = "auto",
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Folder / CIFAR: crop, flip, RandAugment, erasing.")
    ] = True,
    auto_augment: Annotated[
        str, typer.Option("--auto-augment", help="timm RandAugment spec; 'none' = off.")
    ] = "rand-m9-mstd0.5",
    re_prob: Annotated[float, typer.Option("--re-prob", help="Random erasing probability.")] = 0.25,
    workers: Annotated[int, typer.Option("--workers", min=0, help="DataLoader processes (folder / CIFAR).")] = 4,
    compile: CompileOption = False,
) -> None:
    """Train one architecture fully (timm recipe: AdamW, cosine, mixup/cutmix, EMA), optionally distilled."""
    from vitsearch.evaluators.base import EvaluationFailed
    from vitsearch.search.train import TrainJob, TrainRecipe, train
    from vitsearch.space import resolve_arch

    check_device(device, amp)
    config = resolve_arch(arch)
    recipe = TrainRecipe(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        label_smoothing=smoothing,
        mixup=mixup,
        cutmix=cutmix,
        ema_decay=ema_decay or None,
        grad_clip=grad_clip,
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
        imitation_weight=imitation_weight,
        train_subset=train_subset,
        val_subset=val_subset,
        augment=augment,
        auto_augment=None if auto_augment.lower() == "none" else auto_augment,
        re_prob=re_prob,
        seed=seed,
    )
    job = TrainJob(
        arch=arch,  # the name or path as given: the report quotes it
        out=writable_folder(out or _default_train_out(arch, config), "--out"),
        data=data,
        img_size=img_size,
        recipe=recipe,
        teacher=teacher,
        teacher_weights=teacher_weights,
        from_supernet=from_supernet,
        resume=resume,
        threads=threads,
        device=device,
        amp=amp,
        workers=workers,
        compile=compile,
    )
    try:
        with _TrainProgress(epochs) as progress:
            report = train(job, on_step=progress.step, on_epoch=progress.epoch)
    except EvaluationFailed as err:
        err_console.print(f"[bold red]training failed:[/] {err.reason}", highlight=False)
        raise typer.Exit(1) from None
    table = Table(title=f"{arch} trained {report['epochs']} epochs on {data} at {img_size}px")
    for column in ("val acc", "val acc (EMA)", "kept", "GFLOPs", "params", "latency (ms, 1 thread)"):
        table.add_column(column, justify="right")
    ema_acc = report["val_acc_ema"]
    table.add_row(
        f"{report['val_acc']:.4f}",
        f"{ema_acc:.4f}" if ema_acc is not None else "-",
        report["weights"],
        f"{report['flops'] / 1e9:.4f}",
        f"{report['params']:,}",
        f"{report['latency_ms']:.2f}",
    )
    console.print(table)
    console.print(f"wrote last.pt, model.safetensors, arch.yaml, report.json in {job.out}", highlight=False)


def _default_train_out(arch: str, config) -> Path:
    # An architecture exported into a run directory trains into <run>/train, where export --deploy finds it.
    path = Path(arch)
    if path.is_file() and (path.parent / "study.db").exists():
        return path.parent / "train"
    return Path("studies") / "runs" / f"train-{config.digest()}"


class _TrainProgress:
    """A rich progress bar over the steps of each epoch on a terminal; one line per epoch otherwise."""

    def __init__(self, epochs: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.epochs = epochs
        self.bar = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            if console.is_terminal
            else None
        )
        self.task = None

    def __enter__(self) -> _TrainProgress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task("", total=steps)
        if step == 0:
            self.bar.reset(self.task, total=steps)
        self.bar.update(self.task, completed=step + 1, description=f"epoch {epoch + 1}/{self.epochs} loss {loss:.3f}")

    def epoch(self, record) -> None:
        ema = f", EMA {record.val_acc_ema:.4f}" if record.val_acc_ema is not None else ""
        console.print(
            f"epoch {record.epoch}/{self.epochs}: loss {record.train_loss:.4f}, val acc {record.val_acc:.4f}{ema}, "
            f"lr {record.lr:.2e}, {record.seconds:.1f}s",
            highlight=False,
        )


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
    device: Annotated[
        str | None, typer.Option("--device", help="Device of both evaluators: auto, cpu, cuda, cuda:N.")
    ] = None,
    amp: Annotated[str | None, typer.Option("--amp", help="Mixed precision of both: auto, bf16, fp16, off.")] = None,
) -> None:
    """How well EVALUATOR ranks architectures like REFERENCE: Kendall tau and Spearman rho with 95% CIs."""
    from vitsearch.evaluators.validate import validate_proxy
    from vitsearch.search.budget import parse_flops
    from vitsearch.search.driver import sample_under_budget

    writable_folder(out, "--out")
    search_space = resolve_space(space)
    archs = sample_under_budget(search_space, parse_flops(budget), n, seed, img_size, num_classes)
    placement = {key: value for key, value in (("device", device), ("amp", amp)) if value is not None}
    cheap = make_evaluator(evaluator, data, {**placement, **_parse_options(settings or [])})
    trusted = make_evaluator(reference, data, {**placement, **_parse_options(ref_settings or [])})
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
    # OpenMP's default busy-waiting collapses when another process holds a core: measured on this
    # 2-core machine with one other busy process, a proxy training step took 8.0 s with 2 spinning
    # threads, 1.35 s with passive waiting and 0.58 s on 1 thread. Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # torch.jit (used by fvcore's tracer) announces its deprecation on every run; not the user's concern.
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Optuna's experimental-feature notices and per-study INFO lines drown the progress display.
    warnings.filterwarnings("ignore", module="optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # `kill` (SIGTERM) unwinds like Ctrl-C: the running trial is failed and re-queued, outputs written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
