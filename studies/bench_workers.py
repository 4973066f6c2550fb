"""Parallel workers on one study: which storage avoids "database is locked", and at what speed.

Runs N worker processes (``search.live.worker_main``, what ``vitsearch run --workers N``
starts) on one study of the full space with the cheap ``synflow`` evaluator at 32 px, for
each storage variant, and reports per variant: worker processes that died (and why), the
evaluated count against ``--trials``, architectures evaluated twice, and wall time.

    OMP_NUM_THREADS=1 .venv/bin/python studies/bench_workers.py --workers 4 --trials 40 --out studies/bench_workers.md

Variants: SQLite with Python's default 5 s busy timeout (``?timeout=5``), SQLite with the
timeout vitsearch sets (``search.workers.SQLITE_BUSY_TIMEOUT``), and Optuna's journal file.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import traceback
from pathlib import Path

import optuna

from vitsearch.evaluators.base import get_evaluator
from vitsearch.search import workers
from vitsearch.search.cli import resolve_space
from vitsearch.search.driver import SearchConfig, run_search


def variants(folder: Path) -> dict[str, str]:
    return {
        "sqlite, 5 s busy timeout (Python's default)": f"sqlite:///{folder / 'a.db'}?timeout=5",
        f"sqlite, {workers.SQLITE_BUSY_TIMEOUT:.0f} s busy timeout (vitsearch's)": f"sqlite:///{folder / 'b.db'}",
        "journal file": f"journal:{folder / 'c.log'}",
    }


def worker(config: SearchConfig, errors) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        run_search(config)
    except BaseException as err:  # recorded, not raised: the benchmark counts them
        errors.put(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:160])
        traceback.print_exc()


def run_variant(url: str, n_workers: int, trials: int, seed: int) -> dict:
    config = SearchConfig(
        space=resolve_space("full"),
        evaluator=get_evaluator("synflow", img_size=32, batch_size=4),
        budget=2_000_000_000,
        trials=trials,
        storage=url,
        study_name="bench",
        seed=None,
    )
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    started = time.perf_counter()
    processes = [context.Process(target=worker, args=(config, errors)) for _ in range(n_workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    found = []
    while not errors.empty():
        found.append(errors.get())
    study = optuna.load_study(study_name="bench", storage=workers.open_storage(url))
    done = [t for t in study.trials if t.state.is_finished() and t.user_attrs.get("result", {}).get("evaluated")]
    digests = [t.user_attrs["record"]["digest"] for t in done]
    return {
        "died": sum(p.exitcode != 0 for p in processes),
        "errors": found,
        "evaluated": len(done),
        "twice": len(digests) - len(set(digests)),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            for name, url in variants(Path(folder)).items():
                result = run_variant(url, args.workers, args.trials, repeat)
                rows.append((name, repeat, result))
                print(name, repeat, result, flush=True)
    lines = [
        f"{args.workers} workers, --trials {args.trials}, full space at 2 GFLOPs, synflow at 32 px; "
        f"{args.repeats} repeats. Command: `OMP_NUM_THREADS=1 .venv/bin/python studies/bench_workers.py "
        f"--workers {args.workers} --trials {args.trials} --repeats {args.repeats}`.",
        "",
        "| storage | repeat | workers died | evaluated | evaluated twice | wall s | errors |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, repeat, r in rows:
        errors = "; ".join(sorted(set(r["errors"]))) or "-"
        lines.append(
            f"| {name} | {repeat} | {r['died']} | {r['evaluated']} | {r['twice']} | {r['seconds']:.1f} | {errors} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
