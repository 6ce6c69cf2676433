"""ankigen.forked.ForkMap: the build's parse workers (results in order, errors raised in
the caller, a dead worker reported, no process left behind)."""

from __future__ import annotations

import os

import pytest

from ankigen.errors import InputError
from ankigen.forked import ForkMap, WorkerDied


def _square(n: int) -> int:
    return n * n


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


@pytest.mark.parametrize(("jobs", "workers", "chunksize"), [
    (0, 2, 1), (1, 2, 1), (7, 3, 2), (1000, 2, 15), (5000, 4, 1)])
def test_results_come_back_in_job_order(jobs, workers, chunksize):
    with ForkMap(_square, range(jobs), workers, chunksize) as results:
        pids = list(results.pids)
        assert list(results) == [n * n for n in range(jobs)]
    assert _gone(pids)


def _bad(n: int) -> int:
    if n == 37:
        raise InputError("cannot read: Permission denied", path=f"notes/{n}.md")
    return n


def test_an_error_in_a_worker_is_raised_in_the_caller_as_it_was():
    with ForkMap(_bad, range(100), 2, 3) as results:
        pids = list(results.pids)
        got = []
        with pytest.raises(InputError) as caught:
            got.extend(results)
    assert str(caught.value) == "notes/37.md: cannot read: Permission denied"
    assert got == list(range(36))  # everything before the failing chunk, in order
    assert _gone(pids)


def _dies(n: int) -> int:
    if n == 5:
        os._exit(3)
    return n


def test_a_worker_that_dies_is_reported_not_waited_on():
    with ForkMap(_dies, range(10), 1, 1) as results:
        with pytest.raises(WorkerDied, match="a parse worker ended before sending its results"):
            list(results)


def test_leaving_early_ends_the_workers():
    with ForkMap(_square, range(10_000), 2, 1) as results:
        pids = list(results.pids)
        assert next(iter(results)) == 0
    assert _gone(pids)


def test_workers_closed_without_waiting_are_reaped_later():
    from ankigen import forked

    results = ForkMap(_square, range(100), 2, 10)
    pids = list(results.pids)
    assert list(results) == [n * n for n in range(100)]
    results.close(reap=False)  # all results in: not waited for here
    assert sorted(forked._ENDING) == sorted(pids)
    forked.reap_ended()
    assert forked._ENDING == [] and _gone(pids)  # no zombie either: kill(pid, 0) finds none
    with ForkMap(_square, range(10), 1, 1) as again:  # a new map reaps what one left too
        again.close(reap=False)
        left = list(forked._ENDING)
    assert left and ForkMap(_square, [], 1, 1).pids == [] and forked._ENDING == []
    assert _gone(left)
