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
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CheckError, SandboxUnavailable
from . import protocol, sandbox
from .server import GO, STASH
from .uids import UidPool

SAFE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
MEMORY_MB = 2048  # a check's bound, all its processes together (ANKIGEN_CHECK_MEMORY_MB)
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


def _bwrap_works() -> bool:
    """Whether bubblewrap can make the servers' sandbox here at all: run `true` in it.
    (A server that exits at once may be our own failure, not bubblewrap's.)"""
    cmd = _bwrap_command(sys.executable)
    true = shutil.which("true")
    if not cmd or not true:
        return False
    try:
        return subprocess.run([*cmd[:-1], true], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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
        # PYTHONPATH: our package only (in the sandbox PACKAGE_MOUNT; outside it, its
        # parent), never the caller's sys.path: a module beside the notes must not shadow
        # anything the server imports. -P and cwd "/" keep the caller's folder off it too.
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
                   PYTORCH_NVML_BASED_CUDA_CHECK="1", PYTHONPATH=os.pathsep.join(
                       [PACKAGE_MOUNT, str(_package_dir().parent)]))
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        base = [sys.executable, "-P", "-m", "ankigen.checks.server"]
        wrapped = _bwrap_command(sys.executable) if sandbox else None
        cmd = wrapped[:-1] + base if wrapped else base
        log = os.environ.get("ANKIGEN_SERVER_LOG", os.devnull)  # where a server's own errors go
        with open(log, "ab") as err:
            # A session of its own: bubblewrap's sandboxed child waits on an eventfd for
            # bubblewrap before it sets its own parent-death signal, so killing bubblewrap
            # alone in that window left the child waiting forever; close() kills the group.
            self.proc = _spawner().call(lambda: subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                close_fds=True, cwd="/", start_new_session=True))
        self.sandboxed = wrapped is not None
        self.info: dict[str, Any] | None = None

    def wait_ready(self) -> _Server:
        self.info = self._receive(_START_TIMEOUT)
        if not self.info or not self.info.get("ready"):
            exited = self.proc.poll()
            self.close()
            if self.sandboxed and exited not in (None, 0) and not _bwrap_works():
                raise _refusal(f"bubblewrap could not start the sandbox here (exit status "
                               f"{exited}; are user namespaces blocked? set "
                               "ANKIGEN_SERVER_LOG=FILE to see why)", hint=False)
            why = f" (it exited with status {exited}; set ANKIGEN_SERVER_LOG=FILE to see " \
                "why)" if exited not in (None, 0) else ""
            raise CheckError("the check server did not start" +
                             (" inside bubblewrap" if self.sandboxed else "") + why)
        return self

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        box: list[dict[str, Any] | None] = []
        reader = threading.Thread(target=lambda: box.append(protocol.receive(
            self.proc.stdout.fileno())), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        return box[0] if box else None

    def request(self, req: dict[str, Any], bound: float) -> dict[str, Any] | None:
        data = GO + protocol.encode(req)  # "go" to the zygote; the rest its fork reads
        try:
            fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            return None
        # The server kills the check at its deadline and answers at once; one that has not
        # answered REPLY_GRACE later is hung, and is replaced (killing all it started).
        return self._receive(bound + REPLY_GRACE)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # bubblewrap and all still in its group
        except (ProcessLookupError, PermissionError):
            pass
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


def _refusal(why: str, hint: bool = True) -> SandboxUnavailable:
    """Checks refused, in one line: why, how to get the sandbox, and the opt-out."""
    fix = f"{sandbox.INSTALL_HINT}, or " if hint and "bubblewrap" in why else ""
    return SandboxUnavailable(f"checks not run: {why}; {fix}pass {sandbox.OPT_OUT_FLAG} to "
                              "run them unsandboxed (only for notes you trust)")


def sandbox_prerequisites() -> str | None:
    """Why this machine cannot give checks the sandbox, before anything starts; None if it may."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (this is {sys.platform})"
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed"
    if os.geteuid() != 0:
        return ("the sandbox gives each check a uid of its own, which needs root (this "
                f"user is uid {os.geteuid()})")
    return None


def memory_bound() -> int:
    """A check's memory bound in bytes (ANKIGEN_CHECK_MEMORY_MB)."""
    raw = os.environ.get("ANKIGEN_CHECK_MEMORY_MB", "").strip()
    try:
        mb = float(raw) if raw else MEMORY_MB
    except ValueError:
        raise CheckError(f"ANKIGEN_CHECK_MEMORY_MB={raw!r}: expected megabytes") from None
    if mb <= 0:
        raise CheckError(f"ANKIGEN_CHECK_MEMORY_MB={raw!r}: expected a positive number")
    return int(mb * 1024**2)


class Runner(Batched):
    """Warm, sandboxed, parallel execution of checks. Use as a context manager.

    Starting one costs a torch import per server (~2 s; servers start side by side).
    `run`, `run_notebook` and `run_many` may be called from several threads at once: each
    call takes an idle server (waiting for one when all are busy). A server that dies or
    hangs is replaced in the background, so the check it was running returns at once as
    "crashed". Works without torch installed (plain Python checks; `torch_version` says so).

    Fails closed: where any layer of the sandbox (sandbox.REQUIRED) is missing it raises
    SandboxUnavailable and runs nothing, unless `unsandboxed=True` (the loud opt-out for
    notes the user trusts), which runs checks as this user with no sandbox at all.
    """

    def __init__(self, *, device: str = "auto", timeout_s: float = 10.0,
                 workers: int | None = None, unsandboxed: bool = False):
        if device not in ("auto", "cpu", "cuda"):
            raise CheckError(f"unknown device {device!r} (expected auto, cpu or cuda)")
        self.requested = device
        self.timeout_s = timeout_s
        self.unsandboxed = unsandboxed
        if not unsandboxed and (why := sandbox_prerequisites()):
            raise _refusal(why)
        self.sandbox = not unsandboxed
        self.memory = memory_bound()
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        self._uids: UidPool | None = None
        if self.sandbox:
            try:
                self._uids = UidPool()
            except CheckError as exc:
                raise _refusal(str(exc)) from None
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
        if self.sandbox and not sandbox.complete(self.isolation):
            for server in servers:
                server.close()
            raise _refusal("the sandbox is incomplete here (missing: "
                           + "; ".join(sandbox.missing(self.isolation)) + ")")
        for server in servers:
            self._idle.put(server)

    def _spawn(self) -> _Server:
        return _Server(self.sandbox, self.requested)

    def _ready(self, server: _Server) -> _Server:
        return server.wait_ready()  # a sandboxed one that fails never falls back to none

    def _start(self) -> _Server:
        return self._ready(self._spawn())

    def _isolation(self, server: _Server) -> tuple[str, ...]:
        info = server.info or {}
        layers = [sandbox.RLIMITS, sandbox.ZYGOTE]
        if server.sandboxed:
            layers.append(sandbox.BUBBLEWRAP)
        if info.get("namespaces"):
            layers.append(sandbox.NAMESPACES)
            layers.append(sandbox.MEMORY)  # summed over the check's PID namespace
        if info.get("root") and self._uids is not None:
            layers.append(sandbox.UID)
        if info.get("seccomp"):
            layers.append(sandbox.SECCOMP)
        if info.get("private_tmp"):
            layers.append(sandbox.PRIVATE_TMP)
        if self.unsandboxed:
            layers.append(sandbox.UNSANDBOXED)
        ordered = [layer for layer in sandbox.REQUIRED if layer in layers]
        ordered += [layer for layer in layers if layer not in ordered]
        return tuple(ordered) + tuple(f"missing: {m}" for m in sandbox.missing(layers))

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

    def _call(self, req: dict[str, Any], bound: float
              ) -> tuple[dict[str, Any] | None, str, str | None]:
        if self._closed:
            raise CheckError("the runner is closed")
        nonce = secrets.token_hex(16)
        # A uid of its own for this check: leased until its server has answered (by then
        # everything the check started is dead) or has been killed.
        try:
            uid = self._uids.acquire() if self._uids is not None else None
        except CheckError as exc:
            return None, nonce, f"no check uid: {exc}"
        try:
            try:
                server = self._take()
            except CheckError as exc:
                return None, nonce, f"no check server: {exc}"
            reply = None
            try:
                reply = server.request({**req, "nonce": nonce, "device": self.device,
                                        "uid": uid, "memory": self.memory}, bound)
            finally:
                if reply is None or not server.alive():  # died or hung: a fresh one serves next
                    self._replace(server)
                else:
                    self._give_back(server)
            return reply, nonce, None
        finally:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)

    @staticmethod
    def _lines(reply: dict[str, Any] | None, nonce: str) -> list[dict[str, Any]]:
        """The record's lines that parse and carry this request's nonce (a line without it
        is not ours: stray output is never taken for a record)."""
        out = []
        text = (reply or {}).get("record", "")
        for line in text.split("\n") if isinstance(text, str) else ():
            try:
                got = json.loads(line) if line.strip() else None
            except (ValueError, RecursionError):  # a deeply nested line is not a record
                continue
            if isinstance(got, dict) and got.get("nonce") == nonce:
                out.append(got)
        return out

    @staticmethod
    def _blocks(lines: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
        """Each block's entry, in order: the first one reported for a block is final (a
        later block cannot rewrite it), and one that is malformed or out of order ends the
        list there (what follows is not believed)."""
        blocks: list[dict[str, Any]] = []
        for line in lines:
            if "block" not in line:
                continue
            index = line.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or index < len(blocks):
                continue
            entry = _valid_block(line["block"])
            if index != len(blocks) or entry is None or len(blocks) >= count:
                break
            blocks.append(entry)
        return blocks

    def _verdict(self, reply: dict[str, Any] | None, nonce: str, timeout: float,
                 failure: str | None, what: str = "the check"
                 ) -> tuple[str, dict[str, Any] | None, str | None]:
        if reply is None:
            return "crashed", None, failure or "the check's server stopped during the check"
        if reply.get("setup_failed"):
            return "crashed", None, f"{what} could not be set up ({reply['setup_failed']})"
        if reply.get("memory"):
            return ("crashed", None, f"{what} used more than {self.memory / 1024**2:g} MiB of "
                    "memory and was stopped")
        if reply["timed_out"]:
            block = reply.get("block")
            who = f"block {block + 1}" if what == "the notebook" and isinstance(block, int) \
                else what
            return "timeout", None, f"{who} ran past its {timeout:g} s limit and was stopped"
        lines = [x for x in reply["record"].split("\n") if x.strip()]
        try:  # the completion record is the last line, and nothing may follow it
            record = json.loads(lines[-1]) if lines else None
        except (ValueError, RecursionError):
            record = None
        record = _valid_record(record, nonce)
        if record is None:
            return ("crashed", None, f"{what} ended without reporting a result (its process "
                    "exited or was killed before it finished)")
        if reply["exit"] != 0:
            return ("crashed", record, f"{what}'s process did not end cleanly after it "
                    "reported (it was killed, or exited with an error)")
        return ("ok" if record["ok"] else "error"), record, record.get("exception")

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
        reply, nonce, failure = self._call({"code": code, "timeout": timeout}, timeout)
        status, record, why = self._verdict(reply, nonce, timeout, failure)
        self._after_cuda_error(status, why)
        with self._lock:
            self.runs += 1
        return RunResult(status=status, stdout=_text((reply or {}).get("output")), stderr="",
                         exception=why if status != "ok" else None,
                         duration_s=time.monotonic() - t0, device=self.device_label,
                         torch_version=self.torch_version, isolation=self.isolation,
                         traceback=(record or {}).get("traceback"))

    def run_notebook(self, blocks: Sequence[str], *, timeout_s: float | None = None) -> RunResult:
        """All blocks in order in one namespace; per-statement output in `.blocks`.

        Each block has `timeout_s` of its own (the runner's timeout by default). `status`
        is about the run as a whole: "ok" even when a block raised (see each block's "ok"
        and "exception"); on "timeout" or "crashed", `.blocks` holds the blocks that
        finished before it, and the next block is the one that did not.
        """
        timeout = timeout_s or self.timeout_s
        t0 = time.monotonic()
        reply, nonce, failure = self._call({"mode": "notebook", "blocks": list(blocks),
                                            "timeout": timeout}, timeout * max(1, len(blocks)))
        status, _record, why = self._verdict(reply, nonce, timeout, failure, "the notebook")
        # Each block's entry as it was reported when the block finished, never the final
        # record's copy (a later block could have changed that in the check's memory).
        blocks_out = tuple(self._blocks(self._lines(reply, nonce), len(blocks)))
        if status in ("ok", "error") and len(blocks_out) < len(blocks):
            status, why = "crashed", ("the notebook ended without reporting every block (its "
                                      "process exited or was killed before it finished)")
        self._after_cuda_error(status, " ".join(str(b.get("exception")) for b in blocks_out)
                               if status == "error" else why)
        with self._lock:
            self.runs += 1
        return RunResult(status=status if status != "error" else "ok",
                         stdout=_text((reply or {}).get("output")), stderr="",
                         exception=why if status not in ("ok", "error") else None,
                         duration_s=time.monotonic() - t0, device=self.device_label,
                         torch_version=self.torch_version, isolation=self.isolation,
                         blocks=blocks_out)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt_text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _valid_record(record: Any, nonce: str) -> dict[str, Any] | None:
    """The completion record's fields, each of the type it must have; None for anything the
    runner cannot use (that is a crash, never a pass)."""
    if not isinstance(record, dict) or record.get("nonce") != nonce \
            or not isinstance(record.get("ok"), bool):
        return None
    return {"ok": record["ok"], "exception": _opt_text(record.get("exception"), 2000),
            "traceback": _opt_text(record.get("traceback"), 4000)}


_STATEMENTS_MAX = 10_000


def _valid_block(entry: Any) -> dict[str, Any] | None:
    """One notebook block's entry with every field checked; None when any is malformed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("ok"), bool):
        return None
    statements = entry.get("statements")
    if not isinstance(statements, list) or len(statements) > _STATEMENTS_MAX:
        return None
    checked = []
    for st in statements:
        if not isinstance(st, dict) or _int(st.get("line")) is None \
                or not isinstance(st.get("printed"), str) \
                or not (st.get("end") is None or _int(st.get("end")) is not None) \
                or not (st.get("value") is None or isinstance(st.get("value"), str)):
            return None
        checked.append({"line": st["line"], "end": st.get("end"),
                        "printed": st["printed"][-8000:],
                        "value": st["value"][:8000] if st.get("value") is not None else None})
    for key in ("exception", "name"):
        if entry.get(key) is not None and not isinstance(entry.get(key), str):
            return None
    if entry.get("line") is not None and _int(entry.get("line")) is None:
        return None
    if entry["ok"] is False and not isinstance(entry.get("exception"), str):
        return None
    return {"ok": entry["ok"], "exception": _opt_text(entry.get("exception"), 2000),
            "name": _opt_text(entry.get("name"), 200), "line": entry.get("line"),
            "printed": _text(entry.get("printed"))[-8000:], "statements": checked}
