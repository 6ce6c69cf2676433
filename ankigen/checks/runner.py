"""The parent side: warm servers (inside bubblewrap when it is there) and the verdicts.

A verdict is decided here from what was observed: the completion record with this
request's nonce on a private pipe, the exit status, and whether the deadline passed.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CheckError
from . import protocol
from .server import STASH

SAFE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_START_TIMEOUT = 60.0
REPLY_GRACE = 0.75  # past a check's timeout its server must have answered (it kills at the
# deadline and answers at once); one that has not is killed with all it started: < 1 s


@dataclass(frozen=True)
class RunResult:
    status: str  # "ok" | "error" | "timeout" | "crashed"
    stdout: str
    stderr: str
    exception: str | None
    duration_s: float
    device: str
    torch_version: str
    isolation: tuple[str, ...] = ()
    traceback: str | None = None
    blocks: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**{**data, "isolation": tuple(data["isolation"]),
                      "blocks": tuple(data["blocks"])})


PACKAGE_MOUNT = "/run/ankigen-lib"  # where the sandbox sees our package, and nothing beside it


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]  # .../ankigen


def _library_dirs() -> list[str]:
    """What the server needs to import: the interpreter's prefixes and torch's, numpy's home.

    sys.path is not bound wholesale: in a source checkout it holds the repository (and so
    the notes in it), which a check must not see.
    """
    import importlib.util

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for name in ("torch", "numpy"):
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            roots.add(str(Path(loc).parent))
    return sorted({os.path.realpath(p) for p in roots if p and os.path.isdir(p)})


def _gpu_binds() -> list[str]:
    """The NVIDIA device nodes and /sys, so CUDA can work inside the sandbox (untested here:
    no GPU was lent while this was written). With --device cpu, CUDA_VISIBLE_DEVICES hides them."""
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia*"))
    binds: list[str] = []
    for node in nodes:
        binds += ["--dev-bind-try", node, node]
    return binds + (["--ro-bind-try", "/sys", "/sys"] if nodes else [])


def _bwrap_command(python: str) -> list[str] | None:
    """bubblewrap around the server: no network, no view of $HOME, the repository or the notes."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None
    binds: list[str] = []
    system = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc")
    for path in system:
        if os.path.exists(path):
            binds += ["--ro-bind", path, path]
    made: set[str] = set()

    def bind(source: str, target: str) -> None:
        # Parents the sandbox creates must be traversable by `nobody` (the check's user).
        for parent in [str(p) for p in reversed(Path(target).parents) if str(p) != "/"]:
            if parent not in made:
                binds.extend(["--perms", "0755", "--dir", parent])
                made.add(parent)
        binds.extend(["--ro-bind", source, target])

    for path in _library_dirs():
        if not any(path == b or path.startswith(b + "/") for b in system):
            bind(path, path)
    bind(str(_package_dir()), f"{PACKAGE_MOUNT}/ankigen")  # only the package, never its repo
    # The tmpfs on /tmp comes first: binds of code that lives under /tmp (a clone there)
    # must land on top of it, not be hidden by it.
    return [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session", "--cap-add", "ALL", "--tmpfs", "/tmp",
            *binds, "--dir", STASH, "--proc", "/proc", "--dev", "/dev", *_gpu_binds(),
            "--chdir", "/", python]


class _Spawner:
    """Starts every server from one long-lived thread.

    bubblewrap's --die-with-parent is a parent-death signal, and Linux sends it when the
    *thread* that started the child exits: a server started from a short-lived worker
    thread would be killed when that thread ends.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ankigen-spawner")
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, reply = job
            try:
                reply.put((fn(), None))
            except BaseException as exc:  # handed back to the caller
                reply.put((None, exc))

    def call(self, fn: Callable[[], Any]) -> Any:
        reply: queue.Queue[Any] = queue.Queue()
        self._jobs.put((fn, reply))
        result, exc = reply.get()
        if exc is not None:
            raise exc
        return result

    def stop(self) -> None:
        self._jobs.put(None)


_SPAWNER: _Spawner | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> _Spawner:
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or not _SPAWNER._thread.is_alive():
            _SPAWNER = _Spawner()
        return _SPAWNER


class _Server:
    """One warm server process: send a request, get a result, or die trying."""

    def __init__(self, sandbox: bool, device: str):
        env = {k: os.environ[k] for k in SAFE_ENV if k in os.environ}  # no secrets travel
        # PYTORCH_NVML_BASED_CUDA_CHECK: is_available() without initialising CUDA in the
        # warm server; a CUDA context made before fork() is unusable in every child.
        # PYTHONPATH: in the sandbox only PACKAGE_MOUNT exists; outside it, the rest.
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
                   PYTORCH_NVML_BASED_CUDA_CHECK="1", PYTHONPATH=os.pathsep.join(
                       [PACKAGE_MOUNT, str(_package_dir().parent), *(p for p in sys.path if p)]))
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        base = [sys.executable, "-m", "ankigen.checks.server"]
        wrapped = _bwrap_command(sys.executable) if sandbox else None
        cmd = wrapped[:-1] + base if wrapped else base
        log = os.environ.get("ANKIGEN_SERVER_LOG", os.devnull)  # where a server's own errors go
        with open(log, "ab") as err:
            self.proc = _spawner().call(lambda: subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                close_fds=True))
        self.sandboxed = wrapped is not None
        self.info: dict[str, Any] | None = None

    def wait_ready(self) -> _Server:
        self.info = self._receive(_START_TIMEOUT)
        if not self.info or not self.info.get("ready"):
            self.close()
            raise CheckError("the check server did not start" +
                             (" inside bubblewrap" if self.sandboxed else ""))
        return self

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        box: list[dict[str, Any] | None] = []
        reader = threading.Thread(target=lambda: box.append(protocol.receive(
            self.proc.stdout.fileno())), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        return box[0] if box else None

    def request(self, req: dict[str, Any]) -> dict[str, Any] | None:
        try:
            protocol.send(self.proc.stdin.fileno(), req)  # type: ignore[union-attr]
        except OSError:
            return None
        # The server kills the check at its deadline and answers at once; one that has not
        # answered REPLY_GRACE later is hung, and is replaced (killing all it started).
        return self._receive(float(req["timeout"]) + REPLY_GRACE)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass


T = TypeVar("T")


def drain(idle: queue.Queue[T]) -> list[T]:
    """Everything in the queue now, taken off it."""
    taken: list[T] = []
    while True:
        try:
            taken.append(idle.get_nowait())
        except queue.Empty:
            return taken


class Batched:
    """`run_many` for anything with a thread-safe `run` and a `workers` count."""

    workers: int

    def run(self, code: str, *, timeout_s: float | None = None) -> RunResult:
        raise NotImplementedError

    def run_many(self, codes: Sequence[str],
                 progress: Callable[[int], None] | None = None) -> list[RunResult]:
        """Run snippets on all servers at once; results in the order of `codes`."""
        done = 0
        lock = threading.Lock()

        def one(code: str) -> RunResult:
            nonlocal done
            result = self.run(code)
            with lock:
                done += 1
                if progress:
                    progress(done)
            return result

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(one, codes))


class Runner(Batched):
    """Warm, sandboxed, parallel execution of checks. Use as a context manager.

    Starting one costs a torch import per server (~2 s; servers start side by side).
    `run`, `run_notebook` and `run_many` may be called from several threads at once: each
    call takes an idle server (waiting for one when all are busy). A server that dies or
    hangs is replaced in the background, so the check it was running returns at once as
    "crashed". Works without torch installed (plain Python checks; `torch_version` says so).
    """

    def __init__(self, *, device: str = "auto", timeout_s: float = 10.0,
                 workers: int | None = None, sandbox: bool = True):
        if device not in ("auto", "cpu", "cuda"):
            raise CheckError(f"unknown device {device!r} (expected auto, cpu or cuda)")
        self.requested = device
        self.timeout_s = timeout_s
        self.sandbox = sandbox and shutil.which("bwrap") is not None
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        # Idle servers, or the error that stopped a replacement from starting.
        self._idle: queue.Queue[_Server | CheckError] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.runs = 0
        # All servers start side by side (each imports torch once), then we wait for them.
        spawned = [self._spawn() for _ in range(self.workers)]
        servers: list[_Server] = []
        try:
            for server in spawned:
                servers.append(self._ready(server))
        except BaseException:  # none may outlive a runner that failed to start
            for server in spawned + servers:
                server.close()
            raise
        first = servers[0]
        info = first.info or {}
        self.torch_version = str(info.get("torch") or "not installed")
        self.cuda = bool(info.get("cuda"))
        self.device = "cuda" if device in ("auto", "cuda") and self.cuda else "cpu"
        self.isolation = self._isolation(first)
        for server in servers:
            self._idle.put(server)

    def _spawn(self) -> _Server:
        return _Server(self.sandbox, self.requested)

    def _ready(self, server: _Server) -> _Server:
        try:
            return server.wait_ready()
        except CheckError:
            if not server.sandboxed:
                raise
            self.sandbox = False  # bubblewrap cannot run here (nested containers): say so
            return _Server(False, self.requested).wait_ready()

    def _start(self) -> _Server:
        return self._ready(self._spawn())

    def _isolation(self, server: _Server) -> tuple[str, ...]:
        have = ["process group", "rlimits", "temp dir", "stdin closed", "clean env"]
        missing: list[str] = []
        info = server.info or {}
        (have if server.sandboxed else missing).append("bubblewrap (no network, no home)")
        (have if info.get("namespaces") else missing).append("pid+net namespace per check")
        (have if info.get("root") else missing).append("runs as nobody")
        (have if info.get("private_tmp") else missing).append("private /tmp per check")
        return tuple(have) + tuple(f"missing: {m}" for m in missing)

    @property
    def device_label(self) -> str:
        if self.requested == "cuda" and not self.cuda:
            return "cpu (cuda requested, no GPU)"
        return self.device

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the idle servers; a server still running a check stops when it is done."""
        with self._lock:
            self._closed = True
        for server in drain(self._idle):
            if isinstance(server, _Server):
                server.close()

    def _give_back(self, server: _Server) -> None:
        with self._lock:
            if not self._closed:
                self._idle.put(server)
                return
        server.close()

    def _replace(self, server: _Server) -> None:
        """Close a dead, hung or poisoned server and start another in the background."""
        server.close()

        def start() -> None:
            try:
                fresh = self._start()
            except CheckError as exc:
                self._idle.put(exc)  # the next call reports it (and tries again)
                return
            self._give_back(fresh)

        threading.Thread(target=start, daemon=True, name="ankigen-restart").start()

    def _take(self) -> _Server:
        got = self._idle.get()
        if isinstance(got, _Server):
            return got
        try:  # the last restart failed: try once more, here
            return self._start()
        except CheckError:
            self._idle.put(got)
            raise

    def _call(self, req: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str | None]:
        if self._closed:
            raise CheckError("the runner is closed")
        nonce = secrets.token_hex(16)
        try:
            server = self._take()
        except CheckError as exc:
            return None, nonce, f"no check server: {exc}"
        reply = None
        try:
            reply = server.request({**req, "nonce": nonce, "device": self.device})
        finally:
            if reply is None or not server.alive():  # it died or hung: a fresh one serves next
                self._replace(server)
            else:
                self._give_back(server)
        return reply, nonce, None

    @staticmethod
    def _records(reply: dict[str, Any] | None, nonce: str) -> list[dict[str, Any]]:
        """The lines of the record that carry this request's nonce (others are forged)."""
        out = []
        for line in (reply or {}).get("record", "").split("\n"):
            try:
                got = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            if isinstance(got, dict) and got.get("nonce") == nonce:
                out.append(got)
        return out

    def _verdict(self, reply: dict[str, Any] | None, nonce: str, timeout: float,
                 failure: str | None) -> tuple[str, dict[str, Any] | None, str | None]:
        if reply is None:
            return "crashed", None, failure or "the check server died during the check"
        if reply["timed_out"]:
            return "timeout", None, f"killed after {timeout:g} s"
        lines = [x for x in reply["record"].split("\n") if x.strip()]
        try:  # the completion record is the last line, and nothing may follow it
            record = json.loads(lines[-1]) if lines else None
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("nonce") != nonce or "ok" not in record:
            code = reply["exit"]
            why = f"exit status {code}" if code is not None else "no exit status"
            return "crashed", None, f"ended without reporting ({why})"
        if reply["exit"] != 0:
            return "crashed", record, f"exit status {reply['exit']} after its report"
        return ("ok" if record.get("ok") is True else "error"), record, record.get("exception")

    def _after_cuda_error(self, status: str, why: str | None) -> None:
        """A CUDA error poisons a process: after one, every idle server is replaced."""
        if status == "ok" or self.device != "cuda" or not why or "CUDA" not in why:
            return
        for server in drain(self._idle):
            if isinstance(server, _Server):
                self._replace(server)
            else:
                self._idle.put(server)  # the next call reports it, as before

    def run(self, code: str, *, timeout_s: float | None = None) -> RunResult:
        """Run one snippet in a fresh forked child. Never raises for what the code does."""
        timeout = timeout_s or self.timeout_s
        t0 = time.monotonic()
        reply, nonce, failure = self._call({"code": code, "timeout": timeout})
        status, record, why = self._verdict(reply, nonce, timeout, failure)
        self._after_cuda_error(status, why)
        with self._lock:
            self.runs += 1
        return RunResult(status=status, stdout=(reply or {}).get("output", ""), stderr="",
                         exception=why if status != "ok" else None,
                         duration_s=time.monotonic() - t0, device=self.device_label,
                         torch_version=self.torch_version, isolation=self.isolation,
                         traceback=(record or {}).get("traceback"))

    def run_notebook(self, blocks: Sequence[str], *, timeout_s: float | None = None) -> RunResult:
        """All blocks in order in one namespace; per-statement output in `.blocks`.

        `status` is about the run as a whole: "ok" even when a block raised (see each
        block's "ok" and "exception"); on "timeout" or "crashed", `.blocks` holds the
        blocks that finished before it, and the next block is the one that did not.
        """
        timeout = timeout_s or self.timeout_s * max(1, len(blocks))
        t0 = time.monotonic()
        reply, nonce, failure = self._call({"mode": "notebook", "blocks": list(blocks),
                                            "timeout": timeout})
        status, record, why = self._verdict(reply, nonce, timeout, failure)
        # Blocks that finished before a timeout or a crash keep their results.
        blocks_out = tuple(record["blocks"] if record and status in ("ok", "error") else
                           [r["block"] for r in self._records(reply, nonce) if "block" in r])
        self._after_cuda_error(status, " ".join(str(b.get("exception")) for b in blocks_out)
                               if status == "error" else why)
        with self._lock:
            self.runs += 1
        return RunResult(status=status if status != "error" else "ok",
                         stdout=(reply or {}).get("output", ""), stderr="",
                         exception=why if status not in ("ok", "error") else None,
                         duration_s=time.monotonic() - t0, device=self.device_label,
                         torch_version=self.torch_version, isolation=self.isolation,
                         blocks=blocks_out)

