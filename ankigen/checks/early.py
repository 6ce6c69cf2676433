"""Starting the check server while a build parses its notes.

A cold check server spends about 2 s importing torch; parsing a vault takes about as long.
A build with checks used to parse, then start the server, then run the checks. Now it
starts the server on a thread as soon as the parse workers are running (never before: a
thread alive while the pool forks could leave a worker holding a copy of a lock), and the
checks take the runner, or the error opening it raised, when they first need one.

Whether a build will run any check is only known once its notes are parsed, so the start
is a guess from the bytes being parsed: words of PyTorch or a Python code block (what the
bank's checks, a wrong code line, a reference note's code and a looked-up name all need).
A wrong guess costs what it did before this: a server started when first needed, or one
started and left warm for its idle time when no check ran.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

# ankigen.checks.names._TORCH_WORDS, as bytes, plus Python code fences.
_HINT = re.compile(rb"torch|\bnn\.|\bautograd\b|requires_grad|\btensors?\b|\.backward\(|"
                   rb"\boptim\.|^\s*(?:```|~~~)\s*py", re.I | re.M)


def may_need_checks(contents: Iterable[bytes]) -> bool:
    """Whether any of these notes files may get a runnable check."""
    return any(_HINT.search(data) for data in contents)


class EarlyStart:
    """`opener()` (ankigen.checks.keeper.open_runner) run on a thread from now on."""

    def __init__(self, opener: Callable[[], Any]):
        self.started_at = time.perf_counter()
        self.ended_at: float | None = None
        self._opener = opener
        self._runner: Any = None
        self._error: Exception | None = None
        self._dropped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._open, name="ankigen-check-server",
                                        daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            runner = self._opener()
        except Exception as exc:  # raised again, in the build's thread, by take()
            self._error = exc
            runner = None
        self.ended_at = time.perf_counter()
        with self._lock:
            self._runner = runner
            dropped = self._dropped
        if dropped and runner is not None:
            runner.close()

    def take(self) -> Any:
        """The runner, once open (waiting for it), or the error opening it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._runner

    def drop(self) -> None:
        """No check needs it: close the runner now, or as soon as it is open, without
        waiting for it (a kept server stays warm for its idle time either way)."""
        with self._lock:
            self._dropped = True
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()
