"""Proxy fidelity on mnist5k: every zero-cost score and the proxy trainer at two costs against one reference.

Runs ``vitsearch validate-proxy`` machinery (same cache, so re-running re-trains nothing) and
writes ``studies/proxy_fidelity.md``, the table quoted in docs/results/fidelity.md.

Usage: ``.venv/bin/python studies/proxy_fidelity.py [--n 12] [--budget 2G] [--space full]``
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import optuna

from vitsearch.evaluators.base import get_evaluator
from vitsearch.evaluators.validate import validate_proxy
from vitsearch.search.budget import parse_flops
from vitsearch.search.cli import resolve_space
from vitsearch.search.driver import sample_under_budget

ZERO_COST = ["synflow", "naswot", "snip", "grad_norm", "jacob_cov", "dss"]
PROXIES = {"proxy-1ep": {"epochs": 1, "train_subset": 500}, "proxy-4ep": {"epochs": 4, "train_subset": 1000}}
REFERENCE = {"epochs": 3, "train_subset": 2000, "max_seconds": 600.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="full")
    parser.add_argument("--budget", default="1G")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("studies/validate"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = resolve_space(args.space)
    archs = sample_under_budget(space, parse_flops(args.budget), args.n, seed=0)
    reference = get_evaluator("proxy", data="mnist5k", **REFERENCE)
    candidates = [(name, get_evaluator(name, data="mnist5k")) for name in ZERO_COST]
    candidates += [(label, get_evaluator("proxy", data="mnist5k", **kw)) for label, kw in PROXIES.items()]
    lines = [
        f"Proxy fidelity: {args.n} architectures of space `{args.space}` within {args.budget}FLOPs, mnist5k.",
        f"Reference: proxy training {REFERENCE}. Command: `.venv/bin/python studies/proxy_fidelity.py "
        f"--n {args.n} --budget {args.budget} --space {args.space}`.",
        "",
        "| evaluator | Kendall tau [95% CI] | Spearman rho [95% CI] | seconds / arch (median) |",
        "|---|---|---|---|",
    ]
    for label, evaluator in candidates:
        result = validate_proxy(
            archs, evaluator, reference, cache_dir=args.out / "cache", out_dir=args.out, stem=f"validate_{label}"
        )
        row = result.table_row().replace(f"| {evaluator.name} |", f"| {label} |", 1)
        print(row, f"(n={result.n})", flush=True)
        lines.append(row)
    ref_seconds = result.reference_seconds
    lines += ["", f"Reference: median {ref_seconds:.0f} s per architecture (fresh runs)."]
    Path("studies/proxy_fidelity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
