"""``vitsearch train`` (one architecture fully) and ``vitsearch validate-proxy`` (how well an estimate ranks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import console, err_console
from .errors import user_errors, writable_folder
from .options import (
    DEFAULT_SPACE,
    AmpOption,
    ArchArg,
    CompileOption,
    DeviceOption,
    ImgSize,
    NumClasses,
    check_device,
    parse_settings,
)
from .progress import StepProgress


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
        with StepProgress("train", epochs, plain_steps=False) as progress:
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


@user_errors
def validate_proxy_command(
    budget: Annotated[str, typer.Option("--budget", help="Sample architectures within this FLOPs budget.")],
    space: Annotated[str, typer.Option("--space", help="A shipped space name or a space YAML file.")] = DEFAULT_SPACE,
    evaluators: Annotated[
        list[str] | None,
        typer.Option("--evaluator", help="An estimate under test; repeat for several (default: synflow)."),
    ] = None,
    reference: Annotated[str, typer.Option("--reference", help="The trusted, longer estimate.")] = "proxy",
    n: Annotated[int, typer.Option("--n", min=3, help="Architectures to score with both.")] = 20,
    data: Annotated[str | None, typer.Option("--data", help="Dataset of both evaluators.")] = None,
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Setting KEY=VALUE of every estimate under test.")
    ] = None,
    ref_settings: Annotated[
        list[str] | None, typer.Option("--ref-set", help="Reference setting KEY=VALUE, e.g. epochs=12.")
    ] = None,
    ceiling: Annotated[
        int,
        typer.Option(
            "--ceiling",
            min=0,
            help="Also train the reference at a second seed on the first K architectures: the tau between "
            "its two seeds is the noise ceiling no estimate can beat (0: off).",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Which architectures are drawn.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Results and cache directory.")] = Path("studies/validate"),
    img_size: ImgSize = 224,
    num_classes: NumClasses = 1000,
    device: Annotated[
        str | None, typer.Option("--device", help="Device of both evaluators: auto, cpu, cuda, cuda:N.")
    ] = None,
    amp: Annotated[str | None, typer.Option("--amp", help="Mixed precision of both: auto, bf16, fp16, off.")] = None,
) -> None:
    """How well each EVALUATOR ranks architectures like REFERENCE: Kendall tau and Spearman rho with 95% CIs,
    beside ranking by params and FLOPs alone and, with --ceiling, the reference's own seed-to-seed agreement."""
    from vitsearch.evaluators.validate import validate_proxy
    from vitsearch.search.budget import parse_flops
    from vitsearch.search.driver import sample_under_budget
    from vitsearch.search.plan import make_evaluator
    from vitsearch.search.spaces import resolve_space
    from vitsearch.space import ConfigError

    writable_folder(out, "--out")
    search_space = resolve_space(space)
    archs = sample_under_budget(search_space, parse_flops(budget), n, seed, img_size, num_classes)
    placement = {key: value for key, value in (("device", device), ("amp", amp)) if value is not None}
    trusted_settings = {**placement, **parse_settings(ref_settings or [])}
    trusted = make_evaluator(reference, data, trusted_settings)
    under_test = {**placement, **parse_settings(settings or [])}
    cheap = [make_evaluator(name, data, under_test) for name in evaluators or ["synflow"]]
    if ceiling > n:
        raise ConfigError("--ceiling", f"{ceiling} is more than the --n {n} architectures drawn")
    if ceiling and "seed" not in trusted.settings():
        raise ConfigError("--ceiling", f"the reference {reference!r} has no seed setting to vary")
    console.print(f"scoring {len(archs)} architectures of {search_space.name!r} with {trusted!r} and {cheap}")
    results = [validate_proxy(archs, ev, trusted, cache_dir=out / "cache", out_dir=out) for ev in cheap]
    table = Table(title=f"against {trusted.name} (n={results[0].n})")
    for column in ("estimate", "Kendall tau [95% CI]", "Spearman rho [95% CI]", "seconds / arch (median, fresh)"):
        table.add_column(column)
    for result in results:
        table.add_row(*_fidelity_cells(result.summary), f"{result.evaluator_seconds:.2f}")
    for name, stats in results[0].summary["baselines"].items():  # what every estimate must beat
        table.add_row(*_fidelity_cells({"evaluator": {"name": f"{name} alone"}, **stats}), "0")
    if ceiling:
        second_seed = make_evaluator(reference, data, {**trusted_settings, "seed": trusted.settings()["seed"] + 1})
        noise = validate_proxy(
            archs[:ceiling], second_seed, trusted, cache_dir=out / "cache", out_dir=out, stem=f"ceiling_{trusted.name}"
        )
        noise_row = {**noise.summary, "evaluator": {"name": f"ceiling: {trusted.name} at a 2nd seed (n={noise.n})"}}
        table.add_row(*_fidelity_cells(noise_row), f"{noise.evaluator_seconds:.2f}")
    table.add_row(f"{trusted.name} (the reference)", "", "", f"{results[0].reference_seconds:.2f}")
    console.print(table)
    console.print(f"wrote {', '.join(str(r.csv_path) for r in results)} (and .json, .html beside each)")


def _fidelity_cells(summary: dict) -> tuple[str, str, str]:
    tau, rho = summary["kendall_tau"], summary.get("spearman_rho", float("nan"))
    tau_ci = summary.get("kendall_ci95", [float("nan")] * 2)
    rho_ci = summary.get("spearman_ci95")
    rho_text = f"{rho:.3f}" + (f" [{rho_ci[0]:.3f}, {rho_ci[1]:.3f}]" if rho_ci else "")
    return summary["evaluator"]["name"], f"{tau:.3f} [{tau_ci[0]:.3f}, {tau_ci[1]:.3f}]", rho_text


COMMANDS = {"train": train_command, "validate-proxy": validate_proxy_command}
