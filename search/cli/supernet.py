"""``vitsearch supernet train | eval``: the weight-sharing supernet from the command line (a typer sub-app)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .console import console
from .errors import user_errors, writable_folder
from .options import ArchArg, DeviceOption, check_device
from .progress import StepProgress

app = typer.Typer(
    name="supernet",
    help="Weight-sharing supernet: train once over a space, then score its architectures as paths.",
    no_args_is_help=True,
)


@app.command("train")
@user_errors
def train(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint folder (an existing one is resumed).")],
    space: Annotated[str, typer.Option("--space", help="A shipped space name or a space YAML file.")] = "full",
    data: Annotated[str, typer.Option("--data", help="mnist5k, synthetic, an image folder, cifar10:PATH.")] = "mnist5k",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Global batch.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="AdamW peak learning rate (cosine to --min-lr).")] = 1e-3,
    min_lr: Annotated[float, typer.Option("--min-lr")] = 1e-5,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs")] = 0.0,
    random_paths: Annotated[
        int, typer.Option("--random-paths", min=0, help="Random paths per step besides the largest and smallest.")
    ] = 2,
    distill: Annotated[
        bool, typer.Option("--distill/--no-distill", help="In-place distillation from the largest path.")
    ] = False,
    train_subset: Annotated[int | None, typer.Option("--train-subset", min=1, help="Training images.")] = None,
    val_subset: Annotated[int | None, typer.Option("--val-subset", min=1, help="Per-epoch check images.")] = None,
    width_mult: Annotated[float, typer.Option("--width-mult", help="Path widths x this (as the proxy).")] = 0.25,
    input_size: Annotated[
        int | None, typer.Option("--input-size", min=1, help="Side the paths run at (default: the data's).")
    ] = None,
    target_img_size: Annotated[
        int, typer.Option("--target-img-size", min=1, help="Resolution architectures are described at.")
    ] = 224,
    grid_scale: Annotated[
        float, typer.Option("--grid-scale", help="Stem token grid x this (as the proxy: 0.5 = DeiT at 7x7).")
    ] = 0.5,
    budget: Annotated[
        str | None, typer.Option("--budget", help="Random paths only within this FLOPs budget (target profile).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    save_every: Annotated[int, typer.Option("--save-every", min=0, help="Extra checkpoint every N steps.")] = 0,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after N steps in total (resume later).")
    ] = None,
    device: DeviceOption = "auto",
    amp: Annotated[
        str, typer.Option("--amp", help="Mixed precision: off (default; bit-exact resume), bf16, fp16.")
    ] = "off",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch intra-op threads.")] = None,
) -> None:
    """Train a supernet over a space (sandwich rule, in-place distillation); multi-GPU with torchrun."""
    import torch

    from vitsearch.evaluators.supernet import SupernetTrainConfig, train_supernet
    from vitsearch.search.budget import parse_flops
    from vitsearch.search.spaces import resolve_space

    if threads is not None:
        torch.set_num_threads(threads)
    check_device(device, amp)
    writable_folder(out, "--out")
    config = SupernetTrainConfig(
        data=data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        random_paths=random_paths,
        distill=distill,
        train_subset=train_subset,
        val_subset=val_subset,
        input_size=input_size,
        target_img_size=target_img_size,
        width_mult=width_mult,
        grid_scale=grid_scale,
        max_flops=parse_flops(budget) if budget is not None else None,
        seed=seed,
        save_every=save_every,
    )
    search_space = resolve_space(space)
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 speaks
    if main:
        console.print(
            f"supernet over {search_space.name!r} ({search_space.size():.3g} architectures) on {data}: "
            f"{epochs} epochs, batch {batch_size}, sandwich of {2 + random_paths} paths"
            + (", in-place distillation" if distill else ""),
            highlight=False,
        )
    meta = train_supernet(
        search_space,
        config,
        out,
        device=device,
        log=lambda line: console.print(line, highlight=False),
        progress=StepProgress("supernet"),
        max_steps=max_steps,
        amp=amp,
    )
    if not main:
        return
    if meta.get("finished"):
        console.print(f"trained {meta['step']} steps in {meta['seconds'] / 60:.1f} min -> {out}", highlight=False)
    else:
        console.print(f"checkpoint at step {meta['step']}/{meta['total_steps']} in {out}", highlight=False)


@app.command("eval")
@user_errors
def evaluate(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint folder of `vitsearch supernet train`.")],
    arch: ArchArg,
    data: Annotated[str | None, typer.Option("--data", help="Default: the supernet's training data.")] = None,
    val_subset: Annotated[int | None, typer.Option("--val-subset", min=1)] = None,
    bn_batches: Annotated[int, typer.Option("--bn-batches", min=0, help="BatchNorm calibration batches.")] = 4,
    device: DeviceOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Validation accuracy of ARCH as a path of the supernet CKPT, with inherited weights."""
    from vitsearch.evaluators.base import EvaluationFailed
    from vitsearch.evaluators.supernet import SupernetEvaluator
    from vitsearch.search.describe import describe
    from vitsearch.space import resolve_arch

    architecture = resolve_arch(arch)
    evaluator = SupernetEvaluator(
        supernet=str(ckpt), data=data, val_subset=val_subset, bn_batches=bn_batches, device=device
    )
    try:
        result = evaluator.evaluate(architecture)
    except EvaluationFailed as err:
        raise ValueError(f"{arch}: {err.reason}") from None
    path = evaluator.supernet.adapt(architecture)
    params = sum(t.numel() for t in evaluator.supernet.extract(path, adapted=True).parameters())
    record = {**result, "params": params, "checkpoint": str(ckpt), "step": evaluator.meta["step"]}
    if as_json:
        print(json.dumps(record))
        return
    console.print(
        f"{arch}: val acc {result['score']:.4f} as a path of {ckpt} (step {evaluator.meta['step']}), "
        f"{params:,} params at {evaluator.supernet.profile.img_size}px, "
        f"{result['seconds']:.2f}s\npath: {describe(path)}",
        highlight=False,
        soft_wrap=True,  # one greppable line, however long the paths
    )
