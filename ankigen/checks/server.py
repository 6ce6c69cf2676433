"""The warm check server: imports torch once, then forks one child per check.

Run as `python -m ankigen.checks.server` (inside bubblewrap when it is there). It reads
requests on stdin and answers on stdout (protocol.py). For each check:

- the child starts a new session (its own process group), then, when it may, new PID,
  network, IPC and mount namespaces, and forks: the grandchild is PID 1 of its own
  namespace, so when it dies the kernel kills everything it started, setsid() or not;
- the grandchild gets a fresh temp dir as cwd, stdin from /dev/null, stdout+stderr into a
  pipe the server reads, rlimits (CPU, address space, file size, no core, few processes),
  drops to `nobody` when it is root, and runs the code;
- the verdict is the server's: a completion record that carries the request's nonce on a
  private pipe, *and* a clean exit. No record (os._exit, closed fds, a kill) is "crashed";
  nothing printed is ever parsed for a verdict.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import sys
import tempfile
import time
from typing import Any

from . import protocol

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
NOBODY = 65534
OUTPUT_LIMIT = 64 * 1024
RECORD_LIMIT = 8 * 1024**2  # a flood on the record pipe must not exhaust the server
GPU_MEMORY_FRACTION = 0.5  # RLIMIT_AS breaks CUDA: bound a check's GPU memory this way
ADDRESS_SPACE = 6 * 1024**3  # torch alone maps ~0.7 GB
FILE_SIZE = 16 * 1024**2
NPROC = 64


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def probe_namespaces() -> bool:
    """Whether this process may give each check its own namespaces (needs privileges)."""
    pid = os.fork()
    if pid == 0:
        ok = _libc().unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS) == 0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _code_dirs() -> list[str]:
    """Where Python finds code: a tmpfs must never be mounted over any of these."""
    import ankigen

    paths = {sys.prefix, sys.base_prefix, os.path.dirname(ankigen.__file__),
             *[p for p in sys.path if p]}
    return [os.path.realpath(p) for p in paths]


def private_mounts() -> tuple[str, ...]:
    """The folders each check gets a fresh tmpfs over (/tmp is skipped when our Python or
    packages live in it, as in a clone under /tmp: hiding them would break imports)."""
    code = _code_dirs()
    return tuple(where for where in ("/tmp", "/dev/shm") if os.path.isdir(where)
                 and not any(p == where or p.startswith(where + "/") for p in code))


PRIVATE: tuple[str, ...] = ()  # set in main()


def _isolate_mounts(libc: Any) -> None:
    """A private /tmp and /dev/shm: writes outside the check's dir land nowhere."""
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    for where in PRIVATE:
        libc.mount(b"tmpfs", where.encode(), b"tmpfs", 0, b"size=64m,mode=1777")


def _limits(cpu_s: int, cuda: bool) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not cuda:  # an address-space limit breaks CUDA; GPU memory is bounded by torch instead
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _bound_gpu_memory() -> None:
    """Each child makes its own CUDA context (the server never touches CUDA: a context made
    before fork() is unusable in the child), so a CUDA error poisons only that child."""
    try:
        import torch

        torch.cuda.set_per_process_memory_fraction(GPU_MEMORY_FRACTION)
    except Exception:  # no usable GPU after all: the check runs and reports what happens
        pass


def _traversable(path: str) -> bool:
    """Whether `nobody` could reach path: every folder on the way is world-searchable."""
    import stat

    p = os.path.realpath(path)
    while True:
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


def can_drop_privileges() -> bool:
    import ankigen

    return os.geteuid() == 0 and all(_traversable(p) for p in (
        sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(ankigen.__file__)),
        *[p for p in sys.path if p and os.path.isdir(p)]))


DROP = False  # set in main(): whether checks run as `nobody`


def _drop_privileges(workdir: str) -> None:
    if not DROP:
        return
    os.chown(workdir, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    # Counted per real uid, and root is exempt: as `nobody` this is what stops a fork bomb.
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))


def _run_snippet(req: dict[str, Any], out_w: int, rec_w: int) -> None:
    """In the grandchild: run the code and write the completion record. Never returns."""
    # Everything the record needs is bound here, before the snippet can patch anything.
    import io
    import json
    import traceback

    write, dumps, fmt_exc, _exit = os.write, json.dumps, traceback.format_exc, os._exit
    _type, _str, _repr, _len, _base = type, str, repr, len, BaseException
    fd, nonce = rec_w, req["nonce"]
    del req["nonce"]
    device = req.get("device", "cpu")
    ns: dict[str, Any] = {"__name__": "__main__", "DEVICE": device}
    stdout = sys.stdout
    if req.get("mode") == "notebook":
        record = _notebook(req["blocks"], ns, io, _base, _type, _str, _repr, fmt_exc)
    else:
        record = {"ok": True}
        try:
            exec(compile(req["code"], "<check>", "exec"), ns)  # noqa: S102 - the point
        except _base as exc:
            record = {"ok": False,
                      "exception": f"{_type(exc).__name__}: {_str(exc)}"[:2000],
                      "traceback": fmt_exc()[-4000:]}
    try:
        stdout.flush()
        sys.stderr.flush()
    except _base:
        pass
    record["nonce"] = nonce
    try:
        data = dumps(record).encode()
        while data:
            data = data[write(fd, data):]
    except _base:
        _exit(3)
    _exit(0)


def _notebook(blocks: list[str], ns: dict[str, Any], io: Any, _base: Any, _type: Any,
              _str: Any, _repr: Any, fmt_exc: Any) -> dict[str, Any]:
    """Blocks in order in one namespace, like a notebook; each top-level statement's
    printed output (and an expression's value) is recorded with its line."""
    import ast

    results = []
    for code in blocks:
        entry: dict[str, Any] = {"ok": True, "statements": []}
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            results.append({"ok": False, "exception": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                            "statements": []})
            continue
        for stmt in tree.body:
            buf = io.StringIO()
            real = sys.stdout
            sys.stdout = buf
            value = None
            try:
                if isinstance(stmt, ast.Expr):
                    got = eval(compile(ast.Expression(stmt.value), "<block>", "eval"), ns)  # noqa: S307
                    value = None if got is None else _repr(got)
                else:
                    exec(compile(ast.Module([stmt], []), "<block>", "exec"), ns)  # noqa: S102
            except _base as exc:
                sys.stdout = real
                entry = {"ok": False, "exception": f"{_type(exc).__name__}: {_str(exc)}"[:2000],
                         "name": getattr(exc, "name", None) if _type(exc).__name__ == "NameError" else None,
                         "line": stmt.lineno, "statements": entry["statements"]}
                break
            finally:
                sys.stdout = real
            entry["statements"].append({"line": stmt.lineno, "end": stmt.end_lineno,
                                        "printed": buf.getvalue()[-4000:], "value": value})
        results.append(entry)
    return {"ok": all(r["ok"] for r in results), "blocks": results}


def _child(req: dict[str, Any], out_w: int, rec_w: int, namespaces: bool) -> None:
    """In the forked child: isolate, then become (or start) the process that runs the code."""
    try:
        os.setsid()
        if namespaces:
            libc = _libc()
            if libc.unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS) == 0:
                pid = os.fork()
                if pid:  # the intermediate: mirror the grandchild's fate, nothing else
                    os.close(out_w)
                    os.close(rec_w)
                    _, status = os.waitpid(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    os._exit(code if code >= 0 else 128 - code)
                _isolate_mounts(libc)
        workdir = tempfile.mkdtemp(prefix="check-")
        os.chdir(workdir)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        keep = {0, 1, 2, rec_w}
        for fd in range(3, 1024):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        sys.stdin = open(os.devnull)  # noqa: SIM115
        cuda = req.get("device") == "cuda"
        _limits(int(req["timeout"]) + 1, cuda)
        if cuda:
            _bound_gpu_memory()
        _drop_privileges(workdir)
        _run_snippet(req, out_w, rec_w)
    except BaseException:  # a broken set-up is a crash, never a pass
        os._exit(113)


def run_one(req: dict[str, Any], namespaces: bool) -> dict[str, Any]:
    out_r, out_w = os.pipe()
    rec_r, rec_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(rec_r)
        _child(req, out_w, rec_w, namespaces)
        os._exit(113)
    os.close(out_w)
    os.close(rec_w)
    deadline = start + float(req["timeout"])
    output, record = bytearray(), bytearray()
    open_fds = {out_r, rec_r}
    timed_out = False
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.5))
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
            elif fd == out_r:
                if len(output) < OUTPUT_LIMIT:
                    output.extend(chunk[: OUTPUT_LIMIT - len(output)])
            elif len(record) <= RECORD_LIMIT:  # past it the record is cut, so it will not parse
                record.extend(chunk)
    if timed_out:
        _signal_group(pid)
    status = _reap(pid, deadline + 1.0)
    _settle(pid)
    for fd in (out_r, rec_r):
        os.close(fd)
    return {"output": output.decode("utf-8", "replace"), "record": record.decode("utf-8", "replace"),
            "exit": status, "timed_out": timed_out, "duration": time.monotonic() - start}


def _signal_group(pid: int) -> None:
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pid: int, deadline: float) -> int | None:
    """Wait for the child; past the deadline, kill its group. Every child is reaped."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            _signal_group(pid)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)


def _settle(pid: int, limit: float = 2.0) -> None:
    """Kill whatever is left of the check's process group; wait (bounded) until it is gone."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        _reap_orphans()
        time.sleep(0.005)


def _reap_orphans() -> None:
    """As a PID namespace's init (inside bubblewrap) we inherit orphans: reap them."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    inp, out = sys.stdin.fileno(), sys.stdout.fileno()
    # Our own stdout is the protocol channel: nothing else may write to it.
    sys.stdout = sys.stderr
    info: dict[str, Any] = {"ready": True, "pid": os.getpid()}
    try:
        import torch

        torch.set_num_threads(1)  # fork before thread pools start: no deadlocked children
        # What checks use, imported once here instead of in every child.
        import numpy  # noqa: F401
        import torch.nn.functional  # noqa: F401
        import torch.optim  # noqa: F401
        import torch.optim.lr_scheduler  # noqa: F401
        import torch.utils.data  # noqa: F401
        for warm in ("torch.nn.Linear(2, 2)(torch.ones(1, 2)).sum().backward()",
                     "torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1).step()"):
            exec(warm, {"torch": torch})  # noqa: S102 - first-call set-up, paid once
        info.update(torch=torch.__version__, cuda=bool(torch.cuda.is_available()))
    except ImportError:
        info.update(torch=None, cuda=False)
    namespaces = probe_namespaces()
    info["namespaces"] = namespaces
    global DROP
    DROP = can_drop_privileges()
    global PRIVATE
    PRIVATE = private_mounts()
    info["private_tmp"] = "/tmp" in PRIVATE
    info["root"] = DROP
    protocol.send(out, info)
    while True:
        req = protocol.receive(inp)
        if req is None:
            return
        result = run_one(req, namespaces)
        _reap_orphans()
        protocol.send(out, result)


if __name__ == "__main__":
    main()
