"""Paired differences between two trained models: the interval and the verdict every study reports.

Two models trained at the same seeds (same data order, same initialisation stream) differ by
less noise than two independent runs, so a study pairs them by seed and reports the mean
difference A - B with a 95% Student-t interval. The verdict reads the interval only: it says
``beats`` when the whole interval is above zero, ``loses`` when it is below, else
``inconclusive``; under two pairs there is no interval and no verdict.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

VERDICTS = ("beats", "inconclusive", "loses")


def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def t_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float]:
    """``(low, high)``: the t-interval of the mean of paired differences (at least 2)."""
    if len(diffs) < 2:
        raise ValueError(f"a t-interval needs 2 or more differences, got {len(diffs)}")
    mean = statistics.mean(diffs)
    half = t_quantile(len(diffs) - 1, level) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean - half, mean + half


@dataclass(frozen=True)
class PairedVerdict:
    """A - B over ``n_pairs`` pairs: the mean, its interval (None under 2 pairs), and the verdict."""

    mean_diff: float | None
    low: float | None
    high: float | None
    n_pairs: int
    verdict: str  # one of VERDICTS, or "n/a" under 2 pairs

    @classmethod
    def of(cls, diffs: list[float], level: float = 0.95) -> PairedVerdict:
        if len(diffs) < 2:
            mean = diffs[0] if diffs else None
            return cls(mean, None, None, len(diffs), "n/a")
        low, high = t_interval(diffs, level)
        word = VERDICTS[0] if low > 0 else VERDICTS[2] if high < 0 else VERDICTS[1]
        return cls(statistics.mean(diffs), low, high, len(diffs), word)

    def interval(self) -> str:
        """``+0.012 [+0.004, +0.020]``, or ``—`` with no interval."""
        if self.low is None or self.high is None or self.mean_diff is None:
            return "—"
        return f"{self.mean_diff:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def mean_sd(values: list[float]) -> str:
    """``0.912 +- 0.004 (n=3)``: the mean, the sample standard deviation (``—`` under 2 values) and n."""
    if not values:
        return "—"
    sd = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "—"
    return f"{statistics.mean(values):.3f} +- {sd} (n={len(values)})"
