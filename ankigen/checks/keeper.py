"""A runner kept warm between runs: a second `ankigen check`, build or grade pays no torch
import (~2 s of a server's start, more than 100 checks take once it is up).

The first `open_runner` starts a keeper: a detached process holding an ordinary Runner (its
servers inside bubblewrap as ever), serving it on a unix socket in a folder only this user
can open. Later runs connect to it. The socket's name is a fingerprint of everything a
result depends on (the checks' code, the interpreter, torch's version, the device, the
sandbox), so a changed install gets a fresh keeper and never an old one's answers. A keeper
exits by itself IDLE_S after its last client leaves, and at once on `ankigen check-server
stop`. It holds no secrets: it starts with the same short environment as the servers.

ANKIGEN_KEEP_WARM=0 turns it off (checks then start their own servers, as in tests);
another number is the idle time in seconds.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.metadata
import os
import queue
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckError
from . import protocol
from .runner import _START_TIMEOUT, SAFE_ENV, Batched, Runner, RunResult, _package_dir

IDLE_S = 600.0
_SOCKET_MAX = 107  # sun_path holds 108 bytes with its NUL
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_REPLY_SLACK = 120.0  # past a check's own bound: a busy keeper may queue us behind others


def keep_warm_seconds() -> float:
    """How long a keeper waits for the next client (ANKIGEN_KEEP_WARM; 0: no keeper)."""
    raw = os.environ.get("ANKIGEN_KEEP_WARM", "").strip().lower()
    if raw in ("", "yes", "on", "true"):  # a number is seconds: "1" is one second
        return IDLE_S
    if raw in ("0", "no", "off", "false"):
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise CheckError(f"ANKIGEN_KEEP_WARM={raw!r}: expected seconds, or 0 for off") from None


def runtime_dir() -> Path:
    """The folder of this user's keepers: made 0700, and refused when anyone else could
    reach into it (a socket there runs code as us)."""
    if os.environ.get("ANKIGEN_RUNTIME_DIR"):
        folder = Path(os.environ["ANKIGEN_RUNTIME_DIR"]).absolute()
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "ankigen"
    else:
        folder = Path(tempfile.gettempdir()) / f"ankigen-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise CheckError(f"{folder}: cannot make the check server's folder: "
                         f"{exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise CheckError(f"{folder}: not a private folder of this user (mode "
                         f"{oct(info.st_mode & 0o777)}, owner {info.st_uid}); remove it "
                         "or set ANKIGEN_RUNTIME_DIR")
    return folder


def fingerprint(device: str, workers: int, sandbox: bool) -> str:
    """What a kept runner's results depend on; its socket is named by it."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):  # the checks' own code
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        torch = importlib.metadata.version("torch")  # not `import torch`: that is the cost
    except importlib.metadata.PackageNotFoundError:
        torch = "none"
    digest.update(repr((sys.executable, sys.version, torch, device, workers, sandbox,
                        shutil.which("bwrap"))).encode())
    return digest.hexdigest()[:16]


def _address(device: str, workers: int) -> Path:
    sandbox = shutil.which("bwrap") is not None
    path = runtime_dir() / f"checks-{fingerprint(device, workers, sandbox)}.sock"
    if len(os.fsencode(path)) > _SOCKET_MAX:
        raise CheckError(f"{path}: too long for a unix socket; set ANKIGEN_RUNTIME_DIR "
                         "to a shorter folder")
    return path


def _gpu_nodes() -> bool:
    """Whether this machine shows a GPU's device nodes (NVIDIA, ROCm, WSL), without the
    torch import that torch.cuda.is_available() would cost."""
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or (dev / "dxg").exists()


def _connect(address: Path, timeout: float | None = None) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(address))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except OSError as exc:
        sock.close()
        raise CheckError(f"{address}: cannot reach the check server: {exc.strerror}") from None
    sock.settimeout(timeout)
    return sock


def _ask(sock: socket.socket, message: dict[str, Any]) -> dict[str, Any] | None:
    """One request and its reply; None when the keeper has gone (or is hung past the bound)."""
    try:
        sock.sendall(protocol.encode(message))
        return protocol.read_message(sock.recv)
    except OSError:  # a reset, a broken pipe or the timeout
        return None


class KeptRunner(Batched):
    """A Runner's interface (run, run_notebook, run_many, device_label, torch_version,
    isolation), served by this user's keeper; starts one when none is up. Closing it
    leaves the keeper warm for the next run."""

    def __init__(self, *, device: str = "auto", timeout_s: float = 10.0,
                 workers: int | None = None, idle_s: float = IDLE_S):
        if device not in ("auto", "cpu", "cuda"):
            raise CheckError(f"unknown device {device!r} (expected auto, cpu or cuda)")
        self.requested = device
        self.timeout_s = timeout_s
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        self.idle_s = idle_s
        # Without a GPU, auto runs exactly as cpu does (same label too): share one keeper.
        self.served_as = "cpu" if device == "auto" and not _gpu_nodes() else device
        self.address = _address(self.served_as, self.workers)
        self.started = False  # whether this client started the keeper
        self.runs = 0
        self._idle: queue.Queue[socket.socket] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        for _attempt in range(2):  # a keeper may go idle just as we connect: once more
            sock = self._open()
            sock.settimeout(30.0)
            hello = _ask(sock, {"op": "hello"})
            if hello:
                break
            sock.close()
        else:
            raise CheckError(f"{self.address}: the check server did not answer")
        self.info = hello
        self.pid = int(hello["pid"])
        self.torch_version = str(hello["torch_version"])
        self.cuda = bool(hello["cuda"])
        self.device = str(hello["device"])
        self.device_label = str(hello["device_label"])
        self.isolation = tuple(hello["isolation"])
        self._idle.put(sock)

    def _open(self) -> socket.socket:
        sock = _connect(self.address)
        if sock:
            return sock
        with open(self.address.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one client starts it; the others wait here
            sock = _connect(self.address)
            if sock:
                return sock
            self._start_keeper()
            sock = _connect(self.address)
        if not sock:
            raise CheckError(f"{self.address}: the check server started but is not listening")
        return sock

    def _start_keeper(self) -> None:
        self.address.unlink(missing_ok=True)  # a keeper that was killed left its socket
        log = self.address.with_suffix(".log")
        env = {k: os.environ[k] for k in (*SAFE_ENV, "TMPDIR", "ANKIGEN_SERVER_LOG")
               if k in os.environ}  # no secrets: the keeper outlives this process
        env["PYTHONPATH"] = os.pathsep.join([str(_package_dir().parent),
                                             *(p for p in sys.path if p)])
        cmd = [sys.executable, "-m", "ankigen.checks.keeper", "--socket", str(self.address),
               "--device", self.served_as, "--workers", str(self.workers),
               "--idle", str(self.idle_s)]
        with open(log, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, env=env, close_fds=True,
                                    start_new_session=True)
        assert proc.stdout is not None
        # The keeper forks away (so it is nobody's zombie) and says "ready" once listening.
        line = b""
        deadline = time.monotonic() + _START_TIMEOUT
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            chunk = os.read(proc.stdout.fileno(), 64) if ready else b""
            if not chunk:
                break
            line += chunk
        proc.stdout.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if line.strip() != b"ready":
            why = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
            raise CheckError("the check server did not start"
                             + (f": {why[-1]}" if why else f" in {_START_TIMEOUT:g} s")
                             + f" (log: {log})")
        self.started = True

    def _call(self, message: dict[str, Any], bound: float) -> dict[str, Any] | None:
        if self._closed:
            raise CheckError("the runner is closed")
        try:
            sock, fresh = self._idle.get_nowait(), False
        except queue.Empty:
            sock, fresh = self._open(), True  # another thread holds ours: one each
        sock.settimeout(bound + _REPLY_SLACK)
        reply = _ask(sock, message)
        if reply is None and fresh:  # it went idle as we connected: nothing ran yet
            sock.close()
            sock = self._open()
            sock.settimeout(bound + _REPLY_SLACK)
            reply = _ask(sock, message)
        if reply is None:
            sock.close()  # the keeper went away: the next call starts another
        else:
            self._give_back(sock)
        return reply

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed:
                self._idle.put(sock)
                return
        sock.close()

    def _result(self, reply: dict[str, Any] | None, t0: float) -> RunResult:
        with self._lock:
            self.runs += 1
        if reply is None or "result" not in reply:
            why = (reply or {}).get("error") or "the warm check server went away during the check"
            return RunResult(status="crashed", stdout="", stderr="", exception=why,
                             duration_s=time.monotonic() - t0, device=self.device_label,
                             torch_version=self.torch_version, isolation=self.isolation)
        return RunResult.from_dict(reply["result"])

    def run(self, code: str, *, timeout_s: float | None = None) -> RunResult:
        timeout = timeout_s or self.timeout_s
        t0 = time.monotonic()
        return self._result(self._call({"op": "run", "code": code, "timeout": timeout},
                                       timeout), t0)

    def run_notebook(self, blocks: Sequence[str], *, timeout_s: float | None = None) -> RunResult:
        timeout = timeout_s or self.timeout_s * max(1, len(blocks))
        t0 = time.monotonic()
        return self._result(self._call({"op": "notebook", "blocks": list(blocks),
                                        "timeout": timeout}, timeout), t0)

    def close(self) -> None:
        """Let go of the keeper; it stays warm for IDLE_S."""
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def __enter__(self) -> KeptRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_runner(*, device: str = "auto", timeout_s: float = 10.0,
                workers: int | None = None) -> Runner | KeptRunner:
    """The runner a command should use: the user's kept one, unless ANKIGEN_KEEP_WARM=0."""
    idle = keep_warm_seconds()
    if idle <= 0:
        return Runner(device=device, timeout_s=timeout_s, workers=workers)
    return KeptRunner(device=device, timeout_s=timeout_s, workers=workers, idle_s=idle)


def keepers() -> list[dict[str, Any]]:
    """What each of this user's keepers says of itself (the ones that answer)."""
    found = []
    for address in sorted(runtime_dir().glob("checks-*.sock")):
        sock = _connect(address, timeout=5.0)
        hello = _ask(sock, {"op": "hello"}) if sock else None
        if sock:
            sock.close()
        if hello:
            found.append({**hello, "socket": str(address)})
    return found


def stop_keepers() -> list[dict[str, Any]]:
    """Ask every keeper of this user to stop; the ones that said they would."""
    stopped = []
    for keeper in keepers():
        sock = _connect(Path(keeper["socket"]), timeout=5.0)
        if sock and _ask(sock, {"op": "stop"}):
            stopped.append(keeper)
        if sock:
            sock.close()
    return stopped


# The keeper's side.


class _Keeper:
    def __init__(self, runner: Runner, address: Path, idle_s: float):
        self.runner, self.address, self.idle_s = runner, address, idle_s
        self.active = 0  # clients connected: a keeper with one is not idle
        self.busy = 0  # requests under way: a stopping keeper lets them answer
        self.served = 0
        self.last = time.monotonic()
        self.started_at = time.time()
        self.stopping = threading.Event()
        self.lock = threading.Lock()

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
            self.stopping.set()
            return {"stopping": True}
        timeout = float(req.get("timeout") or 10.0)
        if op == "run":
            result = self.runner.run(str(req["code"]), timeout_s=timeout)
        elif op == "notebook":
            result = self.runner.run_notebook([str(b) for b in req["blocks"]], timeout_s=timeout)
        else:
            return {"error": f"unknown request {op!r}"}
        with self.lock:
            self.served += 1
        return {"result": result.to_dict()}

    def serve_client(self, conn: socket.socket) -> None:
        with self.lock:
            self.active += 1
        try:
            while not self.stopping.is_set():
                req = protocol.read_message(conn.recv)
                if req is None:
                    return
                with self.lock:
                    self.busy += 1
                try:
                    reply = self.answer(req)
                finally:
                    with self.lock:
                        self.busy -= 1
                conn.sendall(protocol.encode(reply))
        except (OSError, ValueError, KeyError, TypeError):
            return  # a client that went away or spoke nonsense: drop it, keep serving
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
                continue
            pid, uid, gid = _CREDENTIALS.unpack(conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
            if uid != os.getuid():  # the folder is private; this is the second lock
                conn.close()
                continue
            conn.settimeout(None)
            threading.Thread(target=self.serve_client, args=(conn,), daemon=True,
                             name="ankigen-keeper-client").start()


def _serve(address: Path, device: str, workers: int, idle_s: float, ready_fd: int) -> None:
    runner = Runner(device=device, workers=workers)
    # Listen under a private name, then rename: a socket at the address is a ready keeper.
    temp = address.with_name(f"{address.name}.{os.getpid()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(temp))
    os.chmod(temp, 0o600)
    listener.listen(64)
    os.rename(temp, address)
    inode = os.stat(address).st_ino
    keeper = _Keeper(runner, address, idle_s)
    signal.signal(signal.SIGTERM, lambda *_: keeper.stopping.set())
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    try:
        keeper.loop(listener)
    finally:
        listener.close()
        try:  # only our own socket: a newer keeper may have taken the address
            if os.stat(address).st_ino == inode:
                address.unlink()
        except FileNotFoundError:
            pass
        deadline = time.monotonic() + 30.0  # let checks under way answer their clients
        while keeper.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        runner.close()
    address.with_suffix(".log").unlink(missing_ok=True)  # kept only when a keeper failed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ankigen.checks.keeper")
    ap.add_argument("--socket", required=True, type=Path)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--idle", type=float, default=IDLE_S)
    args = ap.parse_args(argv)
    if os.fork():  # the starter reaps this parent at once; the keeper is nobody's zombie
        os._exit(0)
    os.chdir("/")  # hold no folder of the user's busy
    ready = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # nothing but "ready" may reach the starter's pipe
    try:
        _serve(args.socket, args.device, args.workers, args.idle, ready)
    except CheckError as exc:
        print(f"ankigen check server: {exc}", file=sys.stderr)
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
