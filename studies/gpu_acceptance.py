"""One-command GPU acceptance check: CUDA tests, throughput against timm, proxy and reference seconds, a search.

Prepared for the few minutes a GPU machine is lent: one command, one markdown table and one JSON
file, under 8 minutes on one GPU. Each step is timed and recorded even when it fails, so a
partial run still says what it found.

1. ``tests``: the CUDA tests (``pytest -m cuda``; skipped on ``--device cpu``).
2. ``throughput``: our ``deit_tiny`` and ``poolformer_s12`` (``build_model``) against timm's own
   models of the same name (``pretrained=False``: no download), at 224 px, images per second
   for a training step (forward, backward, AdamW) and for inference, in bf16 autocast with
   channels_last, with and without ``torch.compile`` (median of the timed steps after warm-up).
3. ``proxy``: the seconds of one proxy trial at the default profile; ``reference``: of one
   reference training (``evaluators.reference``), both on mnist5k.
4. ``search``: ``vitsearch run --budget 2G --device DEVICE`` (the default search) in a temporary
   folder, its wall time and the pick.

``--device cpu --quick`` runs every step at toy sizes in under a minute on a CPU
(``tests/studies/test_gpu_acceptance.py`` keeps that mode working):

    .venv/bin/python studies/gpu_acceptance.py --device cuda --out studies/gpu_acceptance
    .venv/bin/python studies/gpu_acceptance.py --device cpu --quick --out /tmp/acceptance
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODELS = {"deit_tiny": "deit_tiny_patch16_224", "poolformer_s12": "poolformer_s12"}  # ours -> timm's name


def timed(fn: Callable[[], Any]) -> tuple[Any, float, str]:
    """``(result, seconds, error)``: a failing step is recorded, not fatal."""
    started = time.perf_counter()
    try:
        return fn(), time.perf_counter() - started, ""
    except Exception as err:  # noqa: BLE001 - the report says which step failed and why
        return (
            None,
            time.perf_counter() - started,
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
        )


def cuda_tests(args: argparse.Namespace) -> dict[str, Any]:
    if args.device == "cpu":
        return {"skipped": "--device cpu"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], cwd=root, capture_output=True, text=True
    )
    return {"exit_code": done.returncode, "summary": (done.stdout.strip().splitlines() or [""])[-1]}


def images_per_second(model, args: argparse.Namespace, train: bool, compiled: bool) -> float:
    import torch

    device = torch.device(args.device)
    model = model.to(device).to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compiled else model
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def step() -> None:
        if train:
            with autocast:
                loss = torch.nn.functional.cross_entropy(step_model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.no_grad(), autocast:
                step_model(x)

    model.train(train)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return args.batch / statistics.median(times)


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    import timm

    from vitsearch.space import build_model

    rows = []
    for name in MODELS:
        timm_name = MODELS[name]
        kwargs = {"img_size": args.img_size} if timm_name.startswith("deit") else {}
        makers = {
            "vitsearch": lambda n=name: build_model(n, img_size=args.img_size),
            "timm": lambda n=timm_name, kw=kwargs: timm.create_model(n, pretrained=False, **kw),
        }
        for source, make in makers.items():
            for compiled in args.compile_modes:
                for train in (True, False):
                    measure = lambda make=make, train=train, compiled=compiled: images_per_second(  # noqa: E731
                        make(), args, train, compiled
                    )
                    value, seconds, error = timed(measure)
                    rows.append({"model": name, "source": source, "compile": compiled,
                                 "mode": "train" if train else "inference",
                                 "images_per_s": value, "seconds": seconds, "error": error})  # fmt: skip
    return rows


def trainings(args: argparse.Namespace) -> dict[str, Any]:
    from vitsearch.evaluators.proxy import ProxyEvaluator
    from vitsearch.evaluators.reference import ReferenceEvaluator

    small = {"train_subset": 64, "val_subset": 64, "epochs": 1} if args.quick else {}
    out = {}
    for name, make in (("proxy", lambda: ProxyEvaluator(args.data, device=args.device, **small)),
                       ("reference", lambda: ReferenceEvaluator(args.data, device=args.device, **small))):  # fmt: skip
        result, seconds, error = timed(lambda make=make: make().evaluate("deit_tiny"))
        out[name] = {"seconds": seconds, "score": None if result is None else result.get("score"), "error": error}
    return out


def search(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "vitsearch.search.cli", "run", "--budget", "2G", "--device", args.device]
        command += ["--out", str(Path(folder) / "run"), "--data", args.data]
        if args.quick:
            command += ["--trials", "3", "--rungs", "2", "--no-baselines", "--set", "train_subset=32"]
            command += ["--set", "val_subset=32", "--set", "epochs=1"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        best = Path(folder) / "run" / "best.yaml"
        return {
            "command": " ".join(command[1:]),
            "exit_code": done.returncode,
            "seconds": seconds,
            "best": best.read_text() if best.exists() else None,
            "error": "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [""])[-1],
        }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"GPU acceptance on {report['device_name']} ({report['device']}{', quick' if report['quick'] else ''}), "
             f"torch {report['torch']}, {report['started']}", ""]  # fmt: skip
    tests = report["tests"]
    lines.append(f"- CUDA tests: {tests.get('skipped') or tests.get('summary')}")
    for name in ("proxy", "reference"):
        r = report["trainings"][name]
        lines.append(
            f"- one {name} training of deit_tiny: {r['seconds']:.1f} s{' (' + r['error'] + ')' if r['error'] else ''}"
        )
    s = report["search"]
    lines.append(f"- default search (`{s['command']}`): {s['seconds']:.0f} s, exit {s['exit_code']} {s['error']}")
    lines += ["", "| model | source | compile | mode | images/s |", "|---|---|---|---|---|"]
    for r in report["throughput"]:
        value = f"{r['images_per_s']:.1f}" if r["images_per_s"] is not None else f"failed: {r['error']}"
        lines.append(f"| {r['model']} | {r['source']} | {r['compile']} | {r['mode']} | {value} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes: every step in under a minute on a CPU")
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "gpu_acceptance")
    args = parser.parse_args(argv)
    args.img_size, args.batch, args.warmup, args.steps = (32, 2, 1, 2) if args.quick else (224, 128, 5, 20)
    args.compile_modes = (False,) if args.quick else (False, True)
    if args.quick:
        args.data = "synthetic" if args.data == "mnist5k" else args.data
    import torch

    from vitsearch.space.files import atomic_write_text

    name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda") and torch.cuda.is_available()
        else platform.processor() or "cpu"
    )
    report: dict[str, Any] = {
        "device": args.device, "device_name": name, "quick": args.quick, "torch": torch.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }  # fmt: skip
    report["tests"] = cuda_tests(args)
    report["throughput"] = throughput(args)
    report["trainings"] = trainings(args)
    report["search"] = search(args)
    text = markdown(report)
    atomic_write_text(args.out / "acceptance.md", text)
    atomic_write_text(args.out / "acceptance.json", json.dumps(report, indent=1, default=str))
    print(text)
    return report


if __name__ == "__main__":
    main()
