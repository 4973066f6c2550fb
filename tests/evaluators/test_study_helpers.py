"""The helpers every study shares: paired verdicts and the resumable CSV cache."""

from __future__ import annotations

import math
import multiprocessing
import os

import pytest

from vitsearch.evaluators.csv_cache import CsvCache, claim, mine, parse_shard
from vitsearch.evaluators.paired import PairedVerdict, t_interval

COLUMNS = ["key", "score", "finished"]


def test_t_interval_matches_a_hand_count():
    # mean 0.02, sd 0.01, n 4: half-width t(0.975, 3) * 0.01 / 2 = 3.182446 * 0.005
    low, high = t_interval([0.01, 0.02, 0.03, 0.02])
    half = 3.182446 * statistics_sd([0.01, 0.02, 0.03, 0.02]) / 2
    assert low == pytest.approx(0.02 - half, abs=1e-6)
    assert high == pytest.approx(0.02 + half, abs=1e-6)


def statistics_sd(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@pytest.mark.parametrize(
    ("diffs", "word"),
    [
        ([0.010, 0.012, 0.011, 0.013], "beats"),
        ([-0.010, -0.012, -0.011, -0.013], "loses"),
        ([0.02, -0.02, 0.01, -0.01], "inconclusive"),
        ([0.5], "n/a"),
    ],
)
def test_verdict_reads_the_interval(diffs, word):
    v = PairedVerdict.of(diffs)
    assert v.verdict == word
    assert v.n_pairs == len(diffs)
    if word != "n/a":
        assert v.low < v.mean_diff < v.high
        assert v.interval().startswith(f"{v.mean_diff:+.3f} [")
    else:
        assert v.low is None and v.interval() == "—"


def test_t_interval_needs_two_pairs():
    with pytest.raises(ValueError, match="2 or more"):
        t_interval([0.1])


def test_cache_keeps_rows_and_replaces_by_key(tmp_path):
    cache = CsvCache(tmp_path / "r.csv", COLUMNS)
    assert cache.rows() == []
    cache.add({"key": "a", "score": 1, "finished": "t"})
    cache.add({"key": "b", "score": 2, "finished": "t"})
    cache.add({"key": "a", "score": 3, "finished": "t"})
    assert {k: r["score"] for k, r in cache.by_key().items()} == {"a": "3", "b": "2"}
    assert not list(tmp_path.glob(".r.csv.tmp*"))  # the temporary file was renamed over the cache


def test_cache_ignores_unfinished_rows(tmp_path):
    (tmp_path / "r.csv").write_text("key,score,finished\na,1,\n,2,t\nc,3,t\n")
    assert list(CsvCache(tmp_path / "r.csv", COLUMNS).by_key()) == ["c"]


def test_cache_needs_key_and_finished():
    with pytest.raises(ValueError, match="'key'"):
        CsvCache("x.csv", ["score"])


def _add_many(path, start):
    cache = CsvCache(path, COLUMNS)
    for i in range(start, start + 20):
        cache.add({"key": str(i), "score": i, "finished": "t"})


def test_processes_sharing_a_cache_lose_no_row(tmp_path):
    path = tmp_path / "r.csv"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(path, start)) for start in (0, 20, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert sorted(int(k) for k in CsvCache(path, COLUMNS).by_key()) == list(range(60))


def test_claim_is_exclusive_and_taken_over_from_the_dead(tmp_path):
    with claim(tmp_path, "item") as first:
        assert first
        (held,) = tmp_path.iterdir()
        assert held.read_text() == str(os.getpid())
        with claim(tmp_path, "item") as second:
            assert not second  # a live process holds it
    assert not list(tmp_path.iterdir())  # released on exit
    held.write_text("999999999")  # left behind by a process that no longer exists
    with claim(tmp_path, "item") as taken:
        assert taken


def test_shards():
    assert parse_shard("1/3") == (1, 3)
    assert parse_shard("claim") == (0, 0)
    with pytest.raises(ValueError, match="K/N"):
        parse_shard("3/3")
    assert [i for i in range(7) if mine(i, (1, 3))] == [1, 4]
    assert all(mine(i, (0, 0)) for i in range(5))
