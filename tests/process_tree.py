"""What processes exist, read from /proc: for tests that prove nothing was left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

Procs = dict[int, tuple[int, int, int, bytes]]


def snapshot() -> Procs:
    """pid → (parent, session, uid, cmdline) for every process we can see."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        uid = int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])
        procs[int(entry)] = (int(fields[1]), int(fields[3]), uid, cmd)
    return procs


def descendants(root: int, procs: Procs | None = None) -> set[int]:
    """Every process below `root` (not `root` itself)."""
    procs = snapshot() if procs is None else procs
    kids: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie is not: it only waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(what: str, check: Any, timeout_s: float = 60.0, step_s: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (returned), for at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(step_s)
    raise AssertionError(f"timed out waiting for {what}")


def stop(procs: list[subprocess.Popen[bytes]], timeout_s: float = 15.0) -> None:
    """SIGTERM each process's group (each started with start_new_session), SIGKILL a group
    still there after `timeout_s`, and reap them all."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
