"""The keeper itself: a detached process that holds one Runner and serves it to this user's
runs over a unix socket (the client side and the rules are in keeper.py).

Started as `python -m ankigen.checks.keeper_process --socket PATH ...` by the first run that
finds none; it says "ready" on its stdout once it listens, and ends after --idle seconds
with no client connected, on a "stop" request, or on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import CheckError, SandboxUnavailable
from . import protocol
from .keeper import REFUSED, peer_credentials
from .runner import REPLY_GRACE, Runner


class Keeper:
    def __init__(self, runner: Runner, idle_s: float):
        self.runner, self.idle_s = runner, idle_s
        self.active = 0  # clients connected: a keeper with one is not idle
        self.busy = 0  # requests under way: a stopping keeper lets them answer
        self.drain_until = 0.0  # when the last request under way must have answered
        self.served = 0
        self.last = time.monotonic()
        self.started_at = time.time()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.address: Path | None = None  # where it listens, once it is ready
        self.inode = 0

    def release(self) -> None:
        """Take our socket off the address (only ours: a newer keeper may hold it), so the
        next client starts a new keeper instead of queueing on one that is ending."""
        if self.address is not None and _listens_at(self.address, self.inode):
            self.address.unlink(missing_ok=True)

    def hello(self) -> dict[str, Any]:
        r = self.runner
        return {"pid": os.getpid(), "torch_version": r.torch_version, "cuda": r.cuda,
                "device": r.device, "device_label": r.device_label,
                "isolation": list(r.isolation), "workers": r.workers, "served": self.served,
                "idle_s": self.idle_s, "started": self.started_at}

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "hello":
            return self.hello()
        if op == "stop":
            with self.lock:  # after this no check is taken; those taken are drained
                self.stopping.set()
            self.release()
            return {"stopping": True}
        timeout = float(req.get("timeout") or 10.0)  # a notebook's: each block's own
        if op == "run":
            result = self.runner.run(str(req["code"]), timeout_s=timeout)
        elif op == "notebook":
            result = self.runner.run_notebook([str(b) for b in req["blocks"]], timeout_s=timeout)
        else:
            return {"error": f"unknown request {op!r}"}
        with self.lock:
            self.served += 1
        return {"result": result.to_dict()}

    def _take(self, req: dict[str, Any]) -> bool:
        """Count a request as under way, unless the keeper is stopping (one lock for both,
        so a stop either refuses a check or waits for it, never closes the runner under it)."""
        try:
            blocks = len(req["blocks"]) if req.get("op") == "notebook" else 1
            bound = float(req.get("timeout") or 10.0) * max(1, blocks) + REPLY_GRACE + 5.0
        except (TypeError, ValueError, KeyError):
            bound = 15.0
        with self.lock:
            if self.stopping.is_set() and req.get("op") in ("run", "notebook"):
                return False
            self.busy += 1
            self.drain_until = max(self.drain_until, time.monotonic() + bound)
            return True

    def serve_client(self, conn: socket.socket) -> None:
        with self.lock:
            self.active += 1
        try:
            while True:
                req = protocol.read_message(conn.recv)
                if not isinstance(req, dict):
                    return
                taken = self._take(req)
                if req.get("op") in ("run", "notebook"):
                    # Taken or not, before anything runs: a client whose request got no
                    # "accepted" knows nothing ran, and may send it to another keeper.
                    if not taken:
                        conn.sendall(protocol.encode({"retry": True}))
                        return
                    try:
                        conn.sendall(protocol.encode({"accepted": True}))
                    except OSError:
                        with self.lock:
                            self.busy -= 1
                        raise
                try:
                    try:
                        reply = self.answer(req)
                    except Exception as exc:  # noqa: BLE001 - a bad request is answered, not fatal
                        reply = {"error": f"the check server could not run it: "
                                          f"{type(exc).__name__}: {exc}"}
                    conn.sendall(protocol.encode(reply))
                finally:
                    with self.lock:
                        self.busy -= 1  # only once the reply is out: a stop waits for it
        except (OSError, ValueError):
            return  # a client that went away or sent what is not JSON: drop it
        finally:
            conn.close()
            with self.lock:
                self.active -= 1
                self.last = time.monotonic()

    def idle(self) -> bool:
        with self.lock:
            return self.active == 0 and time.monotonic() - self.last > self.idle_s

    def loop(self, listener: socket.socket) -> None:
        listener.settimeout(0.5)
        while not self.stopping.is_set() and not self.idle():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if not self.active and not (self.address and
                                            _listens_at(self.address, self.inode)):
                    return  # superseded by a newer keeper: no new client can reach this one
                continue
            _pid, uid, _gid = peer_credentials(conn)
            if uid != os.getuid():  # the folder is private; this is the second lock
                conn.close()
                continue
            conn.settimeout(None)
            threading.Thread(target=self.serve_client, args=(conn,), daemon=True,
                             name="ankigen-keeper-client").start()

    def drain(self) -> None:
        """Let requests under way answer, each within its own bound."""
        while True:
            with self.lock:
                if not self.busy or time.monotonic() > self.drain_until:
                    return
            time.sleep(0.05)


def _listens_at(address: Path, inode: int) -> bool:
    try:
        return os.stat(address).st_ino == inode
    except FileNotFoundError:
        return False


def temp_name(address: Path) -> Path:
    """Where the keeper listens until it is ready (keeper.py checks this fits a socket)."""
    return address.with_name(f"{address.name}.{os.getpid()}")


def serve(address: Path, device: str, workers: int, idle_s: float, ready_fd: int,
          unsandboxed: bool = False) -> None:
    # Listen under a private name first (a bad address fails before the torch import),
    # then rename: a socket at the address is always a ready keeper.
    temp = temp_name(address)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(temp))
        os.chmod(temp, 0o600)
        listener.listen(64)
        runner = Runner(device=device, workers=workers, unsandboxed=unsandboxed)
        keeper = Keeper(runner, idle_s)
        try:
            os.rename(temp, address)
            keeper.address, keeper.inode = address, os.stat(address).st_ino
            signal.signal(signal.SIGTERM, lambda *_: keeper.stopping.set())
            try:
                os.write(ready_fd, b"ready\n")
            except OSError:
                pass  # the starter gave up waiting; whoever comes next is served
            os.close(ready_fd)
            ready_fd = -1
            keeper.loop(listener)
        finally:
            listener.close()
            keeper.release()
            keeper.drain()
            runner.close()
    finally:
        listener.close()
        temp.unlink(missing_ok=True)
        if ready_fd >= 0:
            os.close(ready_fd)  # the starter sees the end, and reads why in the log


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ankigen.checks.keeper_process")
    ap.add_argument("--socket", required=True, type=Path)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--idle", type=float, required=True)
    ap.add_argument("--unsandboxed", action="store_true")
    args = ap.parse_args(argv)
    if os.fork():  # the starter reaps this parent at once; the keeper is nobody's zombie
        os._exit(0)
    os.chdir("/")  # hold no folder of the user's busy
    ready = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # nothing but "ready" may reach the starter's pipe
    os.close(devnull)
    try:
        serve(args.socket, args.device, args.workers, args.idle, ready, args.unsandboxed)
    except SandboxUnavailable as exc:
        print(f"{REFUSED}{exc}", file=sys.stderr)
        os._exit(1)
    except CheckError as exc:
        print(f"ankigen check server: {exc}", file=sys.stderr)
        os._exit(1)
    args.socket.with_suffix(".log").unlink(missing_ok=True)  # kept only when a keeper failed
    os._exit(0)


if __name__ == "__main__":
    main()
