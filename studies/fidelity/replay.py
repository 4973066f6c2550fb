"""Replay the fidelity study offline: which way of scoring lets sizes be compared?

Nothing is trained: every number comes from ``archs.csv``, ``cheap.csv`` (the default proxy,
128 steps at x0.125 width) and ``reference.csv`` (9 epochs of 141 steps at x0.25 width, with the
validation accuracy after every epoch). The methods, each asked to pick the best architecture
within 0.5, 1 and 2 GFLOPs from the architectures of the set that fit:

- ``proxy``, ``flops``, ``params``: one score for all (today's default is ``proxy``);
- ``mo-sh``: multi-objective successive halving (``vitsearch.search.promotion``): every
  architecture at rung 0 (the proxy), the top third by non-dominated sorting of (score, FLOPs)
  promoted to rung 1, the top third of those to rung 2; pick = best score at the top rung.
  Rungs 1 and 2 are the reference's accuracy after ``--rung-epochs`` epochs of its 9-epoch run
  (an approximation of a separate shorter run; the compute charged is that of a separate run);
- ``sh-score``: the same, promoting by score alone (what single-objective ASHA does);
- ``window-top3``: the 3 best proxy scores within [B/2, B], retrained at the top rung;
- ``calibrated``: a linear model of the reference on (proxy, log FLOPs, log params), each
  FLOPs third predicted by a model fitted on the other two (leave-one-band-out).

Columns: Kendall tau against the reference overall and within each FLOPs third (for the rung methods, of
the order they imply: the rung reached, then the score there), the slope ratio
(of the score that compares sizes, the top rung's for the rung methods: its rise from the bottom
third's mean to the top third's over the reference's; 1.0 is
unbiased), the pick's regret at each budget (best reference accuracy within budget minus the
pick's), and the compute (seconds of the set's measured trainings, one CPU thread, at 2 GFLOPs).

    .venv/bin/python studies/fidelity/replay.py                    # rungs at epochs 3 and 9
    .venv/bin/python studies/fidelity/replay.py --rung-epochs 2 4  # a cheaper top rung
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from vitsearch.evaluators.validate import SHIPPED_PROXY_LABEL as DEFAULT_PROXY
from vitsearch.evaluators.validate import kendall_tau
from vitsearch.search.promotion import Candidate, promote, rung_sizes

HERE = Path(__file__).resolve().parent
REFERENCE_EPOCHS = 9
BUDGETS = (0.5e9, 1e9, 2e9)
ETA = 3


def load(here: Path = HERE) -> pd.DataFrame:
    """One row per architecture with the proxy, the reference curve (seed 0) and their seconds."""
    archs = pd.read_csv(here / "archs.csv")[["arch_id", "flops", "params"]]
    cheap = pd.read_csv(here / "cheap.csv")
    proxy = cheap[(cheap["label"] == DEFAULT_PROXY) & (cheap["seed"] == 0)]
    proxy = proxy[["arch_id", "score", "seconds"]].rename(columns={"score": "proxy", "seconds": "proxy_s"})
    ref = pd.read_csv(here / "reference.csv")
    ref = ref[(ref["label"] == "reference") & (ref["seed"] == 0) & ref["score"].notna()]
    curves = ref["curve"].str.split().apply(lambda xs: [float(x) for x in xs])
    ref = pd.DataFrame({"arch_id": ref["arch_id"], "reference": ref["score"], "ref_s": ref["seconds"], "curve": curves})
    frame = archs.merge(proxy, on="arch_id").merge(ref, on="arch_id")
    frame = frame[frame["curve"].apply(len) == REFERENCE_EPOCHS].reset_index(drop=True)
    frame["band"] = pd.qcut(frame["flops"].rank(method="first"), 3, labels=False)
    return frame


def epoch_score(frame: pd.DataFrame, epoch: int) -> pd.Series:
    return frame["curve"].apply(lambda c: c[epoch - 1])


def rung_seconds(frame: pd.DataFrame, rung: int, epochs: tuple[int, ...]) -> pd.Series:
    """A separate training to the rung's epochs costs that share of the reference's seconds."""
    return frame["proxy_s"] if rung == 0 else frame["ref_s"] * epochs[rung - 1] / REFERENCE_EPOCHS


# --- methods: each returns (ordering score per architecture, pick index, seconds) on a pool ----------


def single(column: str) -> Callable[[pd.DataFrame, float, tuple[int, ...]], tuple[pd.Series, int, float]]:
    def method(pool: pd.DataFrame, budget: float, epochs: tuple[int, ...]) -> tuple[pd.Series, int, float]:
        seconds = pool["proxy_s"].sum() if column == "proxy" else 0.0
        return pool[column], int(pool[column].idxmax()), float(seconds)

    return method


def successive_halving(by_pareto: bool) -> Callable:
    def method(pool: pd.DataFrame, budget: float, epochs: tuple[int, ...]) -> tuple[pd.Series, int, float]:
        scores = [pool["proxy"]] + [epoch_score(pool, e) for e in epochs]
        sizes = rung_sizes(len(pool), ETA, len(scores))
        alive = list(pool.index)
        reached = pd.Series(0, index=pool.index)
        seconds = 0.0
        for rung, score in enumerate(scores):
            seconds += float(rung_seconds(pool.loc[alive], rung, epochs).sum())
            reached.loc[alive] = rung
            if rung + 1 == len(scores):
                break
            cands = [Candidate(str(i), float(score[i]), float(pool.at[i, "flops"])) for i in alive]
            if by_pareto:
                alive = [int(c.key) for c in promote(cands, sizes[rung + 1])]
            else:
                alive = sorted(alive, key=lambda i: -score[i])[: sizes[rung + 1]]
        top = scores[-1]
        # the order successive halving implies: the rung reached, then the score there
        final = pd.Series({i: scores[reached[i]][i] for i in pool.index})
        order = reached * 10 + final
        pick = max(alive, key=lambda i: (top[i], -pool.at[i, "flops"]))
        return order, int(pick), seconds

    return method


def window_top(k: int) -> Callable:
    def method(pool: pd.DataFrame, budget: float, epochs: tuple[int, ...]) -> tuple[pd.Series, int, float]:
        window = pool[pool["flops"] >= budget / 2]
        window = window if len(window) else pool
        chosen = window["proxy"].nlargest(k).index
        top = epoch_score(pool, epochs[-1])
        seconds = pool["proxy_s"].sum() + float(rung_seconds(pool.loc[chosen], len(epochs), epochs).sum())
        order = pool["proxy"] + 10 * pool.index.isin(chosen)
        return order, int(max(chosen, key=lambda i: top[i])), float(seconds)

    return method


def calibrated(pool: pd.DataFrame, budget: float, epochs: tuple[int, ...]) -> tuple[pd.Series, int, float]:
    """Leave-one-band-out predictions of a linear model fitted on the whole set's other bands."""
    full = FRAME
    features = np.column_stack([np.ones(len(full)), full["proxy"], np.log(full["flops"]), np.log(full["params"])])
    predicted = pd.Series(np.nan, index=full.index)
    for band in range(3):
        train = (full["band"] != band).to_numpy()
        coef, *_ = np.linalg.lstsq(features[train], full["reference"].to_numpy()[train], rcond=None)
        predicted[~train] = features[~train] @ coef
    order = predicted.loc[pool.index]
    return order, int(order.idxmax()), float(pool["proxy_s"].sum())


METHODS: dict[str, Callable] = {
    "proxy": single("proxy"),
    "flops": single("flops"),
    "params": single("params"),
    "sh-score": successive_halving(by_pareto=False),
    "mo-sh": successive_halving(by_pareto=True),
    "window-top3": window_top(3),
    "calibrated": calibrated,
}
FRAME: pd.DataFrame  # set by main: the calibrated method fits on the whole set


def slope_ratio(score: pd.Series, frame: pd.DataFrame) -> float:
    low, high = frame["band"] == 0, frame["band"] == 2
    rise = score[high].mean() - score[low].mean()
    ref_rise = frame.loc[high, "reference"].mean() - frame.loc[low, "reference"].mean()
    return rise / ref_rise if ref_rise else math.nan


# The score that compares sizes: the rung-0 score, or (rungs, retraining) the top rung's; FLOPs and
# params are not accuracies, so they have no slope ratio.
DECIDERS = ("proxy", "sh-score", "mo-sh", "window-top3", "calibrated")


def decider(name: str, order: pd.Series, frame: pd.DataFrame, epochs: tuple[int, ...]) -> pd.Series:
    return epoch_score(frame, epochs[-1]) if name in ("sh-score", "mo-sh", "window-top3") else order


def replay(frame: pd.DataFrame, epochs: tuple[int, ...]) -> pd.DataFrame:
    rows = []
    for name, method in METHODS.items():
        order, _, seconds = method(frame, max(BUDGETS), epochs)
        row = {"method": name, "tau": kendall_tau(order.to_numpy(), frame["reference"].to_numpy())}
        for band in range(3):
            inside = frame["band"] == band
            row[f"tau_band{band}"] = kendall_tau(order[inside].to_numpy(), frame.loc[inside, "reference"].to_numpy())
        row["slope_ratio"] = slope_ratio(decider(name, order, frame, epochs), frame) if name in DECIDERS else math.nan
        for budget in BUDGETS:
            pool = frame[frame["flops"] <= budget]
            _, pick, _ = method(pool, budget, epochs)
            row[f"regret@{budget / 1e9:g}G"] = pool["reference"].max() - pool.at[pick, "reference"]
        row["seconds@2G"] = seconds
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, frame: pd.DataFrame, epochs: tuple[int, ...]) -> str:
    bands = [frame.loc[frame["band"] == b, "flops"] / 1e9 for b in range(3)]
    band_text = ", ".join(f"{b.min():.2f}-{b.max():.2f}" for b in bands)
    head = (
        f"Rungs: the proxy, then the reference after {' and '.join(map(str, epochs))} of its "
        f"{REFERENCE_EPOCHS} epochs; eta {ETA}. n = {len(frame)} architectures, reference seed 0; "
        f"FLOPs thirds (GFLOPs): {band_text}. Reference seconds for the whole set: {frame['ref_s'].sum():.0f}.\n\n"
    )
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return head + "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> None:
    global FRAME, ETA
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rung-epochs", type=int, nargs="+", default=[3, 9], help="reference epochs of rungs 1..")
    parser.add_argument("--eta", type=int, default=ETA, help="each rung keeps 1/eta of the rung below")
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    args = parser.parse_args(argv)
    ETA = args.eta
    FRAME = load()
    epochs = tuple(args.rung_epochs)
    text = markdown(replay(FRAME, epochs), FRAME, epochs)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
