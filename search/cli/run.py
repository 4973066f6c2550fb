"""``vitsearch run``: check a run plan once, run it with a live view, write every output file."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .console import console
from .errors import user_errors, writable_folder
from .options import (
    DEFAULT_EVALUATOR,
    DEFAULT_PRUNER,
    DEFAULT_SPACE,
    DEFAULT_TRIALS,
    ImgSize,
    NumClasses,
    parse_settings,
)

if TYPE_CHECKING:
    from vitsearch.search.plan import RunPlan


@user_errors
def run(
    budget: Annotated[str, typer.Option("--budget", help="FLOPs budget: 2GFLOPs, 2G, 1.5e9, 750MFLOPs, 750M.")],
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            help=f"A shipped space name or a space YAML file (default: {DEFAULT_SPACE}; with --evaluator supernet, "
            "the space the supernet was trained over).",
        ),
    ] = None,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Architectures to evaluate (over resumes).")
    ] = DEFAULT_TRIALS,
    evaluator: Annotated[str, typer.Option("--evaluator", help="Accuracy estimate, by name.")] = DEFAULT_EVALUATOR,
    data: Annotated[str | None, typer.Option("--data", help="mnist5k, an image folder, cifar10:PATH.")] = None,
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Evaluator setting KEY=VALUE (repeatable), e.g. epochs=2.")
    ] = None,
    max_params: Annotated[str | None, typer.Option("--max-params", help="Parameter cap, e.g. 10M.")] = None,
    sampler: Annotated[
        str,
        typer.Option(
            "--sampler",
            help="auto (random when rungs promote; else tpe below 200 trials, nsga2 from 200), tpe, nsga2 or random.",
        ),
    ] = "auto",
    pruner: Annotated[
        str,
        typer.Option(
            "--pruner",
            help="pareto (stop when a trial costing no more was strictly more accurate at the same epoch), "
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
    latency_method: Annotated[
        str, typer.Option("--latency-method", help="measured (each model timed whole) or table (summed parts).")
    ] = "measured",
    supernet: Annotated[
        Path | None, typer.Option("--supernet", help="Checkpoint of `vitsearch supernet train` (--evaluator supernet).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Evaluator device: auto, cpu, cuda, cuda:N (proxy, supernet).")
    ] = None,
    amp: Annotated[str | None, typer.Option("--amp", help="Proxy mixed precision: auto, bf16, fp16, off.")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile each proxy trial's model.")] = False,
    rungs: Annotated[
        int,
        typer.Option(
            "--rungs",
            min=1,
            help="Successive halving: the best 1/eta of each rung, by Pareto rank of (score, FLOPs), train "
            "--rung-growth times as long at the next; the pick is made at the top rung. 1 = no promotion.",
        ),
    ] = 3,
    eta: Annotated[int, typer.Option("--eta", min=2, help="Each rung keeps 1/eta of the one below.")] = 3,
    rung_growth: Annotated[
        int, typer.Option("--rung-growth", min=2, help="Each rung trains this many times as long as the one below.")
    ] = 2,
    fit_space: Annotated[
        bool,
        typer.Option(
            "--fit-space/--no-fit-space",
            help="Scale a shipped space's widths and depths so its draws spread over the budget (AutoFormer-style); "
            "a space file is searched as written.",
        ),
    ] = True,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines",
            help="Also score hand-designed DeiT / PoolFormer / SCHEMEformer baselines fitted to the budget.",
        ),
    ] = True,
) -> None:
    """Search a space for the most accurate architectures within a FLOPs budget."""
    from vitsearch.search.budget import parse_flops, parse_params
    from vitsearch.search.plan import RunPlan, SearchConfig, make_evaluator
    from vitsearch.search.spaces import resolve_space, spaces_dir
    from vitsearch.space import ConfigError

    # Everything is checked before the first write: a refused command leaves the run directory as it was.
    try:
        budget_flops = parse_flops(budget)
        params_cap = parse_params(max_params) if max_params is not None else None
    except ValueError as err:
        raise ConfigError("", str(err)) from None
    if evaluator == "supernet" and supernet is not None:
        search_space = _supernet_space(supernet, space)  # a supernet scores only its own paths: no fitting
    else:
        search_space = resolve_space(space or DEFAULT_SPACE)
    if fit_space and search_space.source is not None and Path(search_space.source).parent == spaces_dir():
        from vitsearch.space.budget_fit import fit_to_budget  # a shipped space; a user's file is searched as written

        search_space = fit_to_budget(search_space, budget_flops, img_size, num_classes)
    study_name = study or f"{search_space.name}-{budget_flops / 1e9:g}G"
    out = writable_folder(out or Path("studies") / "runs" / study_name, "--out")
    options = parse_settings(settings or [])
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
        rungs=rungs,
        eta=eta,
        growth=rung_growth,
        **_latency_options(max_latency, latency_objective, latency_backend, latency_threads, latency_method),
    )
    plan = RunPlan.check(config)  # budget, sampler, pruner, storage: checked here, once, before any write
    if storage is None:  # the SQLite file goes here; with --storage, the outputs create the folder
        out.mkdir(parents=True, exist_ok=True)
    run_with_progress(plan, out)


def _latency_options(
    max_latency: str | None, objective: bool, backend: str, threads: int, method: str
) -> dict[str, Any]:
    from vitsearch.evaluators.latency import LATENCY_METHODS, LatencySettings, list_backends
    from vitsearch.search.budget import parse_latency_ms
    from vitsearch.space import ConfigError

    if backend not in list_backends():
        raise ConfigError("--latency-backend", f"unknown {backend!r} (choose from {', '.join(list_backends())})")
    if method not in LATENCY_METHODS:
        raise ConfigError("--latency-method", f"unknown {method!r} (choose from {', '.join(LATENCY_METHODS)})")
    return {
        "max_latency_ms": parse_latency_ms(max_latency) if max_latency is not None else None,
        "latency_objective": objective,
        "latency": LatencySettings(backend=backend, threads=threads, method=method),
    }


def run_with_progress(plan: RunPlan, out: Path) -> None:
    """Run or resume the plan's study with a live view, then write every output file into ``out``."""
    from vitsearch.search.driver import evaluated_count
    from vitsearch.search.live import run_plan
    from vitsearch.search.outputs import write_outputs
    from vitsearch.search.results import RunResults
    from vitsearch.space import ConfigError
    from vitsearch.space.files import is_disk_full

    from .progress import SearchProgress
    from .tables import pareto_table

    config = plan.config
    opened = plan.open()
    already = evaluated_count(opened.study)
    console.print(
        f"space {config.space.name!r} ({config.space.size():.3g} architectures, smallest "
        f"{plan.smallest_flops / 1e9:.3f} GFLOPs), budget {config.budget / 1e9:g} GFLOPs at {config.img_size}px, "
        f"evaluator {config.evaluator.name}"
        + (f" ({plan.rung_count} rungs: 1/{config.eta} kept, x{config.growth} training)" if plan.rung_count > 1 else "")
        + f", sampler {plan.sampler}; "
        + (f"resuming at {already}/{config.trials}" if already else f"{config.trials} trials")
        + (f"; {config.workers} workers" if config.workers > 1 else ""),
        highlight=False,
    )
    try:
        with SearchProgress(config, already, opened.study) as progress:
            run_plan(plan, opened, progress, progress.job, progress.idle)
    except BaseException as err:  # an interrupted run still leaves consistent files for what it finished
        with contextlib.suppress(Exception):  # best effort: the error that stopped the run is the one to report
            write_outputs(RunResults.of(opened.study), out)
        if is_disk_full(err) and not isinstance(err, OSError):  # SQLite's "database or disk is full"
            where = config.storage or "the study"
            raise ConfigError("--storage", f"{where}: no space left on device; free some and run again") from None
        raise
    else:
        results = RunResults.of(opened.study)
        written = write_outputs(results, out)
        if not results.front.empty:
            console.print(pareto_table(results.front))
        if not results.failures.empty:
            console.print(f"{len(results.failures)} failed trials (reasons: `vitsearch show {out}`)", highlight=False)
        line = results.verdict_line()
        if line is not None:
            console.print(line, highlight=False)
        console.print("wrote " + ", ".join(p.name for p in written) + f" in {out}")


COMMANDS = {"run": run}


def _supernet_space(checkpoint: Path, asked: str | None):
    """The space the supernet at ``checkpoint`` was trained over; ``--space``, if given, must be that one."""
    from vitsearch.evaluators.supernet.checkpoint import read_meta
    from vitsearch.search.spaces import resolve_space
    from vitsearch.space import ConfigError
    from vitsearch.space.search_space import SearchSpace

    trained = SearchSpace.from_dict(read_meta(checkpoint)["space"])
    if asked is not None and resolve_space(asked).to_dict() != trained.to_dict():
        raise ConfigError(
            "--space",
            f"{asked!r} is not the space the supernet in {checkpoint} was trained over ({trained.name!r}); "
            "a supernet scores only its own paths: leave --space out to search that space",
        )
    return trained
