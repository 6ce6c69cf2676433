"""ankigen.forked.ForkMap: the build's parse workers (results in order, errors raised in
the caller, a dead worker reported, no process left behind)."""

from __future__ import annotations

import os
import time

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



def _after(marker: str) -> None:
    """Wait (bounded) until the other side has made `marker`: neither the caller nor the
    workers can take every chunk before the other has taken one, however fast the jobs."""
    for _ in range(500):
        if os.path.exists(marker):
            return
        time.sleep(0.01)
    raise AssertionError("no worker took a chunk in 5 s")


@pytest.mark.parametrize(("jobs", "workers", "chunksize"), [
    (0, 1, 1), (1, 0, 1), (7, 2, 2), (1000, 1, 15), (5000, 3, 1)])
def test_the_caller_works_too_and_results_still_come_in_job_order(
        tmp_path, jobs, workers, chunksize):
    worker, caller = str(tmp_path / "worker"), str(tmp_path / "caller")

    def there(n: int) -> int:
        open(worker, "w").close()
        _after(caller)
        return n * n

    def here(n: int) -> str:  # what the caller computes itself, told apart from a worker's
        open(caller, "w").close()
        if workers:
            _after(worker)
        return f"here {n * n}"

    with ForkMap(there, range(jobs), workers, chunksize, here=here) as results:
        pids = list(results.pids)
        got = list(results)
    assert [int(str(r).removeprefix("here ")) for r in got] == [n * n for n in range(jobs)]
    assert any(isinstance(r, str) for r in got) == (jobs > 0)  # the caller took chunks
    assert any(isinstance(r, int) for r in got) == (jobs > 1 and workers > 0)  # so did workers
    assert _gone(pids)


def _bad_here(n: int) -> int:
    if n == 37:
        raise InputError("cannot read: Permission denied", path=f"notes/{n}.md")
    return n


def test_an_error_in_the_callers_own_chunk_is_raised_in_its_turn():
    with ForkMap(_square, range(100), 0, 3, here=_bad_here) as results:  # no worker: all here
        got = []
        with pytest.raises(InputError) as caught:
            got.extend(results)
    assert str(caught.value) == "notes/37.md: cannot read: Permission denied"
    assert got == list(range(36))


def test_a_worker_that_dies_is_reported_when_the_caller_works_too(tmp_path):
    marker = str(tmp_path / "worker")

    def dies(n: int) -> int:
        open(marker, "w").close()
        os._exit(3)

    def here(n: int) -> int:
        _after(marker)  # the worker took a chunk, and died with it
        return n

    with ForkMap(dies, range(10), 1, 1, here=here) as results:
        with pytest.raises(WorkerDied, match="a parse worker ended before sending its results"):
            list(results)
