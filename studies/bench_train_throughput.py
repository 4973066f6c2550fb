"""Training and inference images/s of our presets against timm's own models, in one loop.

Each pair (ours ``deit_tiny`` vs ``timm.create_model("deit_tiny_patch16_224")``, ours
``poolformer_s12`` vs timm's ``poolformer_s12``) runs the same engine update (AdamW, cosine,
grad clip 1.0, label-smoothed cross-entropy) on the same random 224 px batches, and the same
``no_grad`` eval forward; rounds alternate ours / timm so a load change hits both. Medians
over rounds, and the ratio ours / timm of the medians. No weights are downloaded
(``pretrained=False``).

    .venv/bin/python studies/bench_train_throughput.py --device cpu --batch 16 --rounds 5
    .venv/bin/python studies/bench_train_throughput.py --device cuda --amp bf16 --batch 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from vitsearch.evaluators.training import Engine, make_optimizer, make_scheduler, resolve_device, resolve_precision
from vitsearch.space import build_model

PAIRS = {"deit_tiny": "deit_tiny_patch16_224", "poolformer_s12": "poolformer_s12"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(model: nn.Module, x, y, precision, steps: int, train: bool) -> float:
    device = precision.device
    if train:
        model.train()
        opt = make_optimizer(model, 1e-4, 0.05)
        engine = Engine(model, opt, make_scheduler(opt, 1, steps + 2), precision, grad_clip=1.0)
        criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
        engine.update(lambda: criterion(model(x), y), "warm-up")
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            engine.update(lambda: criterion(model(x), y), "bench")
    else:
        model.eval()
        with torch.no_grad(), precision.autocast():
            model(x)
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                model(x)
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def main() -> None:
    import timm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed updates (forwards) per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true", help="for the models with convolutions")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--models", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.amp, device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    print(
        f"device {device}, amp {precision.amp}, batch {args.batch}, {args.steps} steps x {args.rounds} rounds, "
        f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}"
    )
    print(f"{'model':16} {'mode':6} {'ours img/s':>11} {'timm img/s':>11} {'ours/timm':>10}")
    for ours_name in args.models:
        timm_name = PAIRS[ours_name]
        torch.manual_seed(0)
        models = {
            "ours": build_model(ours_name, img_size=224, num_classes=1000).to(device),
            "timm": timm.create_model(timm_name, pretrained=False, num_classes=1000).to(device),
        }
        if args.channels_last and ours_name.startswith("poolformer"):
            models = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
        for mode in ("train", "infer"):
            rates: dict[str, list[float]] = {"ours": [], "timm": []}
            for _ in range(args.rounds):
                for who, model in models.items():
                    rates[who].append(images_per_second(model, x, y, precision, args.steps, mode == "train"))
            ours, theirs = statistics.median(rates["ours"]), statistics.median(rates["timm"])
            print(f"{ours_name:16} {mode:6} {ours:11.1f} {theirs:11.1f} {ours / theirs:10.3f}", flush=True)


if __name__ == "__main__":
    main()
