"""Map a function over jobs in forked worker processes; results come back in job order.

What a build's parse needs of multiprocessing.Pool, without what it costs: the pool's
three handler threads (which take the GIL from the main process while it unpacks results),
its task queue, and pickling every job to send it, file bytes included, when a forked
worker already holds all of them. Here the workers are plain forks; they take chunk
numbers from one pipe (4-byte reads, written at once before any is taken: atomic) and
send back each chunk's results, pickled and length-prefixed, on a pipe of their own.

An exception raised by `fn` is raised again in the caller, when that chunk's turn comes
(as Pool.imap does); a worker that dies is reported, never waited on forever.

With `here`, the caller works too: while it waits it takes chunks from the same pipe and
runs `here` on their jobs itself, so one fork fewer does the same work, and what the caller
computes is neither pickled nor unpickled (on 2 cores: one worker and the caller).
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

J = TypeVar("J")

_INDEX = struct.Struct("<I")
_FRAME = struct.Struct("<Q")
_MAX_CHUNKS = 4096 // _INDEX.size  # all chunk numbers fit in one atomic pipe write


class WorkerDied(RuntimeError):
    pass


_ENDING: list[int] = []  # workers told to end by close(reap=False), not yet waited for


def reap_ended() -> None:
    """Wait for the workers `close(reap=False)` left ending (a new ForkMap does this too)."""
    while _ENDING:
        os.waitpid(_ENDING.pop(), 0)


class ForkMap:
    """`map(fn, jobs)` over `workers` forks of this process, forked at once; iterate for the
    results, in job order. Use as a context manager: leaving it ends the workers.

    It forks: make it with no other thread running (a lock another thread holds at the
    fork stays held in the worker for good)."""

    def __init__(self, fn: Callable[[J], Any], jobs: Sequence[J], workers: int, chunksize: int,
                 *, here: Callable[[J], Any] | None = None):
        """`here`: the caller also runs chunks, with `here` (fn's result as the caller wants
        it; `fn`'s is pickled to come back), while it waits for the workers' results."""
        reap_ended()
        chunksize = max(1, chunksize, -(-len(jobs) // _MAX_CHUNKS))
        self.chunks = [range(i, min(i + chunksize, len(jobs)))
                       for i in range(0, len(jobs), chunksize)]
        self.pids: list[int] = []
        self.readers: dict[int, int] = {}  # result pipe → worker pid
        self._jobs, self._here, self._tasks = jobs, here, -1
        task_r, task_w = os.pipe()
        try:
            for _ in range(min(workers, len(self.chunks))):
                r, w = os.pipe()
                _widen(w)
                pid = os.fork()
                if pid == 0:  # the worker: never returns
                    os.close(r)
                    os.close(task_w)
                    _work(fn, jobs, self.chunks, task_r, w)
                os.close(w)
                self.pids.append(pid)
                self.readers[r] = pid
            os.write(task_w, b"".join(_INDEX.pack(i) for i in range(len(self.chunks))))
            if here is not None:  # the caller takes chunk numbers from the same pipe
                self._tasks, task_r = task_r, -1
        except BaseException:
            self.close()
            raise
        finally:
            if task_r >= 0:
                os.close(task_r)
            os.close(task_w)

    def __enter__(self) -> ForkMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        return _collect(self.chunks, self.readers, self._take if self._here else None)

    def _take(self) -> tuple[int, bool, Any] | None:
        """A chunk run here, as a worker would send it back; None once all are taken."""
        got = os.read(self._tasks, _INDEX.size) if self._tasks >= 0 else b""
        if not got:
            self._close_tasks()
            return None
        (i,) = _INDEX.unpack(got)
        assert self._here is not None
        try:
            return i, True, [self._here(self._jobs[j]) for j in self.chunks[i]]
        except Exception as exc:  # raised again when this chunk's turn comes
            return i, False, exc

    def _close_tasks(self) -> None:
        if self._tasks >= 0:
            os.close(self._tasks)
            self._tasks = -1

    def close(self, *, reap: bool = True) -> None:
        """End the workers (done, or the caller stopped early) and leave no zombie.

        `reap=False`: do not wait while the kernel tears down a worker's copy of this
        process (a few ms for a big one) when all its results are in; `reap_ended` does."""
        for fd in self.readers:
            try:
                os.close(fd)
            except OSError:
                pass
        self.readers = {}
        self._close_tasks()
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if reap:
                os.waitpid(pid, 0)
            else:
                _ENDING.append(pid)
        self.pids = []


def _work(fn: Callable[[Any], Any], jobs: Sequence[Any], chunks: list[range], tasks: int,
          out: int) -> None:
    code = 0
    try:
        while True:
            got = os.read(tasks, _INDEX.size)
            if not got:
                break
            (i,) = _INDEX.unpack(got)
            try:
                payload = pickle.dumps((i, True, [fn(jobs[j]) for j in chunks[i]]),
                                       protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # raised again in the caller
                payload = _pickled_error(i, exc)
            _write_all(out, _FRAME.pack(len(payload)) + payload)
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing the parent's buffers twice


def _pickled_error(i: int, exc: Exception) -> bytes:
    try:
        return pickle.dumps((i, False, exc), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle still says what it was
        return pickle.dumps((i, False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _widen(fd: int) -> None:
    """A result pipe that holds a few chunks' results (Linux: 1 MiB, the default limit for
    anyone), so a worker seldom waits for a caller busy with a chunk of its own."""
    try:
        import fcntl
    except ImportError:
        return
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass  # over the user's pipe quota: the default size, workers may wait longer


def _collect(chunks: list[range], readers: dict[int, int],
             take: Callable[[], tuple[int, bool, Any] | None] | None = None) -> Iterator[Any]:
    done: dict[int, tuple[bool, Any]] = {}
    buffers = {fd: bytearray() for fd in readers}
    nxt = 0
    with selectors.DefaultSelector() as sel:
        for fd in readers:
            sel.register(fd, selectors.EVENT_READ)
        while nxt < len(chunks):
            while nxt in done:
                ok, value = done.pop(nxt)
                if not ok:
                    raise value
                yield from value
                nxt += 1
            if nxt == len(chunks):
                break
            if take is not None:
                mine = take()
                if mine is not None:
                    done[mine[0]] = mine[1:]
                    _receive(sel, buffers, done, 0)  # what the workers sent meanwhile
                    continue
                take = None  # every chunk is taken: only the workers' results are to come
            if not sel.get_map():
                raise WorkerDied("a parse worker ended before sending its results")
            _receive(sel, buffers, done, None)


def _receive(sel: selectors.BaseSelector, buffers: dict[int, bytearray],
             done: dict[int, tuple[bool, Any]], timeout: float | None) -> None:
    """Read what the workers have sent (waiting up to `timeout`; None: until one sends);
    each whole result into `done`."""
    for key, _ in sel.select(timeout):
        fd = int(key.fd)
        data = os.read(fd, 1 << 20)
        if not data:
            sel.unregister(fd)
            continue
        buf = buffers[fd]
        buf += data
        while len(buf) >= _FRAME.size:
            (size,) = _FRAME.unpack_from(buf)
            if len(buf) < _FRAME.size + size:
                break
            i, ok, value = pickle.loads(buf[_FRAME.size:_FRAME.size + size])
            del buf[:_FRAME.size + size]
            done[i] = (ok, value)
