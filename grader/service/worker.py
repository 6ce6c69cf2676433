"""The grading worker: a huey consumer in its own process, started by `grader serve`.

It holds one warm check runner for every job it grades (the sandbox's guarantees apply to
each check: one learner's code never sees another's), and a reaper thread that re-queues
jobs whose lease ran out. It dies with the process that started it, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from .config import Settings
from .jobs import Queue, make_queue, requeue

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL when the parent goes (Linux), and a watch on the parent pid elsewhere or if
    the parent went before the first call."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def reap_forever(settings: Settings, queue: Queue, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            requeue(settings, queue)
        except Exception:  # the database is busy or away: next round
            log.exception("re-queueing failed; trying again in %.0f s", settings.reap_every_s)
        stop.wait(settings.reap_every_s)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    parent = int(os.environ.get("ANKIGEN_PARENT_PID", "0") or 0)
    if parent:
        die_with_parent(parent)
    run(Settings())


def run(settings: Settings) -> None:
    """Grade jobs until stopped: the worker `grader serve` starts, and `grader worker` on
    any machine that reaches the database (issue 17). Any number may run at once: the
    lease on the job row decides which one grades a job."""
    from .transport import queue_backend

    runner: Any = None
    if settings.run_code:
        from grader.code import SharedRunner

        runner = SharedRunner(settings.device)
    queue = make_queue(settings, runner)
    stop = threading.Event()
    threading.Thread(target=reap_forever, args=(settings, queue, stop), name="reaper",
                     daemon=True).start()
    consumer = queue.huey.create_consumer(workers=1, worker_type="thread", periodic=False,
                                          initial_delay=0.05, backoff=1.5, max_delay=0.5)
    log.info("grading worker %d: queue in %s", os.getpid(),
             settings.queue_path if queue_backend(settings) == "sqlite" else "PostgreSQL")
    try:
        consumer.run()
    finally:
        stop.set()
        if runner is not None:
            runner.close()


if __name__ == "__main__":
    main()
