"""A runner kept warm between runs: a second `ankigen check`, build or grade pays no torch
import (~2 s of a server's start, more than 100 checks take once it is up).

The first `open_runner` starts a keeper (keeper_process.py): a detached process holding an
ordinary Runner (its servers inside bubblewrap as ever), serving it on a unix socket in a
folder only this user can open. Later runs connect to it. The socket's name is a
fingerprint of everything a result depends on (the checks' code, the interpreter, torch's
version, the device, the sandbox), so a changed install gets a fresh keeper and never an
old one's answers. A keeper exits by itself IDLE_S after its last client leaves, and at once
on `ankigen check-server stop`; one that stops answering is killed by the next run. It
holds no secrets: it starts with the same short environment as the servers.

ANKIGEN_KEEP_WARM=0 turns it off (checks then start their own servers, as in tests);
another number is the idle time in seconds.
"""

from __future__ import annotations

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

from ..errors import CheckError, SandboxUnavailable
from . import protocol
from .runner import (
    _START_TIMEOUT,
    SAFE_ENV,
    Batched,
    Runner,
    RunResult,
    _package_dir,
    _refusal,
    drain,
    sandbox_prerequisites,
)

IDLE_S = 600.0
HELLO_TIMEOUT = 10.0  # a healthy keeper answers at once, busy or not (a thread a client)
_SOCKET_MAX = 107 - 8  # sun_path: 108 bytes with its NUL; the keeper binds ADDRESS.<pid> first
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
REFUSED = "refused: "  # the keeper's last log line when its runner refused to start
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


def _address(device: str, workers: int, unsandboxed: bool = False) -> Path:
    path = runtime_dir() / f"checks-{fingerprint(device, workers, not unsandboxed)}.sock"
    if len(os.fsencode(path)) > _SOCKET_MAX:  # fail here, not after a torch import
        raise CheckError(f"{path}: too long for a unix socket; set ANKIGEN_RUNTIME_DIR "
                         "to a shorter folder")
    return path


def _gpu_nodes() -> bool:
    """Whether this machine shows a GPU's device nodes (NVIDIA, ROCm, WSL), without the
    torch import that torch.cuda.is_available() would cost."""
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or (dev / "dxg").exists()


def _connect(address: Path, timeout: float = HELLO_TIMEOUT) -> socket.socket | None:
    """A connection, or None where no keeper listens (no socket, or one a dead keeper left)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(address))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except OSError as exc:  # a full backlog times out: that keeper is stuck
        sock.close()
        raise CheckError(f"{address}: cannot reach the check server: "
                         f"{exc.strerror or 'no answer'} (ankigen check-server stop)") from None
    return sock


def _ask(sock: socket.socket, message: dict[str, Any]) -> dict[str, Any] | None:
    """One request and its reply; None when the keeper has gone. Raises TimeoutError when
    it has not answered within the socket's timeout."""
    try:
        sock.sendall(protocol.encode(message))
        return protocol.read_message(sock.recv)
    except TimeoutError:
        raise
    except (OSError, ValueError):  # a reset, a broken pipe, a torn message
        return None


def _hello(sock: socket.socket) -> dict[str, Any] | None:
    """What the keeper says of itself; None when it closed (it is ending). Raises
    TimeoutError when it does not answer: it is hung."""
    sock.settimeout(HELLO_TIMEOUT)
    return _ask(sock, {"op": "hello"})


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket, from the kernel."""
    pid, uid, gid = _CREDENTIALS.unpack(sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    return pid, uid, gid


def _peer_pid(sock: socket.socket) -> int | None:
    """The keeper's pid (the process that listens), when it is this user's."""
    pid, uid, _gid = peer_credentials(sock)
    return pid if uid == os.getuid() and pid > 1 else None


def _evict(sock: socket.socket) -> None:
    """A keeper that takes connections but does not answer is hung (stopped, deadlocked):
    kill it; its servers die with it, and the next start replaces its socket."""
    pid = _peer_pid(sock)
    sock.close()
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class KeptRunner(Batched):
    """A Runner's interface (run, run_notebook, run_many, device_label, torch_version,
    isolation), served by this user's keeper; starts one when none is up. Closing it
    leaves the keeper warm for the next run."""

    def __init__(self, *, device: str = "auto", timeout_s: float = 10.0,
                 workers: int | None = None, idle_s: float | None = None,
                 unsandboxed: bool = False):
        if device not in ("auto", "cpu", "cuda"):
            raise CheckError(f"unknown device {device!r} (expected auto, cpu or cuda)")
        if not unsandboxed and (why := sandbox_prerequisites()):
            raise _refusal(why)  # before a keeper starts: it would refuse the same way
        self.unsandboxed = unsandboxed
        self.requested = device
        self.timeout_s = timeout_s
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        self.idle_s = idle_s or keep_warm_seconds() or IDLE_S
        # Without a GPU, auto runs exactly as cpu does (same label too): share one keeper.
        self.served_as = "cpu" if device == "auto" and not _gpu_nodes() else device
        self.address = _address(self.served_as, self.workers, unsandboxed)
        self.started = False  # whether this client started the keeper
        self.runs = 0
        self._idle: queue.Queue[socket.socket] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        for _attempt in range(3):
            sock = self._open()
            try:
                hello = _hello(sock)
            except TimeoutError:
                _evict(sock)  # hung: killed; the next attempt starts another
                continue
            if hello:
                break
            sock.close()  # it went idle just as we connected: once more
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
        folder = self.address.parent
        try:
            lock = open(self.address.with_suffix(".lock"), "a")
        except OSError as exc:
            raise CheckError(f"{folder}: cannot write there: {exc.strerror}") from None
        with lock:
            # One client starts it; the others wait here, as long as a start may take.
            deadline = time.monotonic() + _START_TIMEOUT + 10
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise CheckError(f"{self.address}: another run has been starting "
                                         "the check server for too long") from None
                    time.sleep(0.05)
            sock = _connect(self.address)
            if sock:
                return sock
            self._start_keeper()
            sock = _connect(self.address)
        if not sock:
            raise CheckError(f"{self.address}: the check server started but is not listening")
        return sock

    def _start_keeper(self) -> None:
        log = self.address.with_suffix(".log")
        env = {k: os.environ[k] for k in (*SAFE_ENV, "TMPDIR") if k in os.environ}
        # No secrets (the keeper outlives this process), and none of this run's sys.path:
        # a module beside the script that started it must not shadow anything for later runs.
        env["PYTHONPATH"] = str(_package_dir().parent)
        if os.environ.get("ANKIGEN_SERVER_LOG"):
            env["ANKIGEN_SERVER_LOG"] = os.path.abspath(os.environ["ANKIGEN_SERVER_LOG"])
        # -P and cwd "/": the caller's folder (a vault, with whatever .py files it holds) is
        # never on the keeper's sys.path; the keeper runs as this user, outside the sandbox.
        cmd = [sys.executable, "-P", "-m", "ankigen.checks.keeper_process",
               "--socket", str(self.address), "--device", self.served_as,
               "--workers", str(self.workers), "--idle", str(self.idle_s),
               *(["--unsandboxed"] if self.unsandboxed else [])]
        try:
            self.address.unlink(missing_ok=True)  # a keeper that was killed left its socket
            with open(log, "wb") as err:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=err, env=env, close_fds=True,
                                        start_new_session=True, cwd="/")
        except OSError as exc:
            raise CheckError(f"{self.address.parent}: cannot start the check server there: "
                             f"{exc.strerror}") from None
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
            if why and why[-1].startswith(REFUSED):  # the sandbox is incomplete here
                raise SandboxUnavailable(why[-1][len(REFUSED):])
            raise CheckError("the check server did not start"
                             + (f": {why[-1]}" if why else f" in {_START_TIMEOUT:g} s")
                             + f" (log: {log})")
        self.started = True

    def _pooled(self) -> socket.socket | None:
        """An idle connection that is still good: one the keeper closed (it stopped, or was
        killed) reads as ready, and is dropped before a check is sent on it."""
        while True:
            try:
                sock = self._idle.get_nowait()
            except queue.Empty:
                return None
            if not select.select([sock], [], [], 0)[0]:
                return sock
            sock.close()

    def _call(self, message: dict[str, Any], bound: float) -> dict[str, Any] | None:
        """Send a check and wait for its result. The keeper says "accepted" before it runs
        anything; a keeper that ends before that (it went idle or stopped as we sent) ran
        nothing, and the check goes to a fresh connection, or a fresh keeper."""
        if self._closed:
            raise CheckError("the runner is closed")
        wait = bound + _REPLY_SLACK
        for _attempt in range(3):
            sock = self._pooled() or self._open()
            try:
                sock.settimeout(HELLO_TIMEOUT)
                taken = _ask(sock, message)
            except TimeoutError:
                _evict(sock)  # hung before taking it: nothing ran; another keeper will
                continue
            if not taken or not taken.get("accepted"):
                sock.close()
                continue
            try:
                sock.settimeout(wait)
                reply = protocol.read_message(sock.recv)
            except TimeoutError:
                sock.close()
                return {"error": f"the warm check server did not answer within {wait:g} s"}
            except (OSError, ValueError):
                reply = None
            if reply is None:
                sock.close()  # it went away during the check: the next call starts another
            else:
                self._give_back(sock)
            return reply
        return {"error": "the warm check server kept closing before taking the check"}

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
        timeout = timeout_s or self.timeout_s  # each block's own
        t0 = time.monotonic()
        return self._result(self._call({"op": "notebook", "blocks": list(blocks),
                                        "timeout": timeout}, timeout * max(1, len(blocks))), t0)

    def close(self) -> None:
        """Let go of the keeper; it stays warm for IDLE_S."""
        with self._lock:
            self._closed = True
        for sock in drain(self._idle):
            sock.close()

    def __enter__(self) -> KeptRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_runner(*, device: str = "auto", timeout_s: float = 10.0,
                workers: int | None = None, unsandboxed: bool = False) -> Runner | KeptRunner:
    """The runner a command should use: the user's kept one, unless ANKIGEN_KEEP_WARM=0.
    Raises SandboxUnavailable where checks cannot be sandboxed, unless `unsandboxed`."""
    idle = keep_warm_seconds()
    if idle <= 0:
        return Runner(device=device, timeout_s=timeout_s, workers=workers,
                      unsandboxed=unsandboxed)
    return KeptRunner(device=device, timeout_s=timeout_s, workers=workers, idle_s=idle,
                      unsandboxed=unsandboxed)


def keepers() -> list[dict[str, Any]]:
    """This user's keepers, as each says of itself; one that takes connections but does
    not answer is listed as {"pid", "socket", "answering": False}."""
    found: list[dict[str, Any]] = []
    for address in sorted(runtime_dir().glob("checks-*.sock")):
        try:
            sock = _connect(address)
        except CheckError:
            continue
        if sock is None:
            continue  # a dead keeper's socket: the next start replaces it
        with sock:
            try:
                hello = _hello(sock)
            except TimeoutError:
                found.append({"pid": _peer_pid(sock), "socket": str(address),
                              "answering": False})
                continue
            if hello:  # (None: it is ending)
                found.append({**hello, "socket": str(address), "answering": True})
    return found


def stop_keepers() -> list[dict[str, Any]]:
    """Stop every keeper of this user (killing any that does not answer); those stopped."""
    stopped = []
    for keeper in keepers():
        address = Path(keeper["socket"])
        sock = _connect(address)
        if sock is None:
            continue
        try:
            if keeper["answering"] and _ask(sock, {"op": "stop"}):
                stopped.append(keeper)
                sock.close()
                continue
        except TimeoutError:
            pass
        _evict(sock)
        stopped.append(keeper)
    return stopped
