"""The warm check server: imports torch once, then forks one child per check.

Run as `python -m ankigen.checks.server` inside bubblewrap. Its main process is a clean
zygote: it imports torch and warms up, and from then on reads nothing but a one-byte "go"
per check, so no request, code or output ever enters its memory. For each check it forks a
supervisor, which reads its own request (protocol.py) and:

- unshares new PID, network, IPC and mount namespaces, mounts a private /tmp, and forks the
  check: PID 1 of its own namespace, so when it dies the kernel kills everything it started;
- the check gets a fresh temp dir as cwd, stdin from /dev/null, stdout+stderr into a pipe
  the supervisor reads, rlimits, a uid of its own (leased by the runner, so its process
  budget is its own), and a seccomp filter (seccomp.py); then it runs the code;
- the supervisor watches the clock (each notebook block has its own limit) and the check's
  memory (the sum over its PID namespace), reads what it wrote, kills what is left, answers
  and exits. Its memory, which held this check's data, is gone with it.

The verdict is the runner's, from what the supervisor observed: a completion record on a
private pipe *and* a clean exit. No record (os._exit, closed fds, a kill) is "crashed";
nothing printed is ever parsed for a verdict.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import resource
import select
import signal
import sys
import tempfile
import time
from typing import Any

from . import protocol, seccomp

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
_EXIT = os._exit  # bound at import: a snippet that patches os._exit cannot keep a child alive


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def probe_namespaces() -> tuple[bool, bool, bool]:
    """Whether this process may give each check its own namespaces (needs privileges),
    whether it may then mount the private folders (PRIVATE) in them, and whether a check
    can be put under the seccomp filter."""
    pid = os.fork()
    if pid == 0:
        code = 0
        libc = _libc()
        if libc.unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS) != 0:
            code |= 1
        else:
            try:
                _isolate_mounts(libc)
            except OSError:
                code |= 2
        try:
            seccomp.install()
            keyctl = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
            if keyctl is None or libc.syscall(keyctl, 0, 0, 0) != -1:
                code |= 4  # keyctl got through: the filter is not in force
        except (OSError, ValueError):
            code |= 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return False, False, False
    return not code & 1, not code & 3, not code & 4


STASH = "/run/ankigen-tmp"  # bubblewrap makes this mountpoint (runner._bwrap_command)


def _code_dirs() -> list[str]:
    """Where Python finds code: a tmpfs must never hide any of these."""
    import ankigen

    paths = {sys.prefix, sys.base_prefix, os.path.dirname(ankigen.__file__),
             *[p for p in sys.path if p]}
    return sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})


def private_mounts() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The folders each check gets a fresh tmpfs over, and the code folders inside them
    that are bound back on top (as in a clone under /tmp, where the virtualenv lives:
    hiding it would break imports). Without the STASH mountpoint to move them through,
    a folder that holds code stays shared."""
    code = _code_dirs()
    private, keep = [], {}
    for where in ("/tmp", "/dev/shm"):
        if not os.path.isdir(where):
            continue
        inside = [p for p in code if p.startswith(where + "/")]
        if where in code or (inside and not os.path.isdir(STASH)):
            continue
        outer = [p for p in inside if not any(p.startswith(q + "/") for q in inside)]
        private.append(where)
        if outer:
            keep[where] = tuple(outer)
    return tuple(private), keep


PRIVATE: tuple[str, ...] = ()  # set in main()
KEEP: dict[str, tuple[str, ...]] = {}
MS_BIND, MNT_DETACH = 0x1000, 2


def _mount(libc: Any, source: str, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                  flags, data.encode() if data else None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _isolate_mounts(libc: Any) -> None:
    """A private /tmp and /dev/shm: writes outside the check's dir land nowhere, and no
    check sees what another left there."""
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE)
    for where in PRIVATE:
        keep = KEEP.get(where, ())
        if keep:
            _mount(libc, where, STASH, None, MS_BIND | MS_REC)
        _mount(libc, "tmpfs", where, "tmpfs", 0, "size=64m,mode=1777")
        for path in keep:  # read-only binds stay read-only
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(libc, STASH + path[len(where):], path, None, MS_BIND | MS_REC)
        if keep:
            libc.umount2(STASH.encode(), MNT_DETACH)


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


def can_drop_privileges() -> bool:
    """Whether checks can run as a uid of their own: only root may switch uids."""
    return os.geteuid() == 0


DROP = False  # set in main(): whether checks run as a uid of their own
SECCOMP = False  # set in main(): whether checks run under the seccomp filter


def _drop_privileges(workdir: str, uid: int | None) -> None:
    if not DROP:
        return
    uid = NOBODY if uid is None else uid  # no lease: only an unsandboxed runner sends none
    os.chown(workdir, uid, uid)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    # Counted per real uid, and root is exempt: with a uid of its own, this is the check's
    # own budget, and a fork bomb cannot starve a check running beside it.
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))


def _unencodable(obj: object) -> None:
    raise TypeError("not JSON")


def _run_snippet(req: dict[str, Any], rec_w: int) -> None:
    """In the check: run the code and write the completion record. Never returns.

    Everything used after the snippet has run is bound here first, and is either a C
    function or this frame's own code: a snippet that patches modules, builtins or the
    `__code__` of Python functions (json.dumps, traceback, this module's helpers) cannot
    change the record. Only the C JSON encoder serialises it. (The snippet can still write
    on the record pipe itself: it can describe only itself and what runs after it, which
    printing could do anyway; what was reported before it ran is final upstream.)
    """
    import _json
    import ast
    import traceback

    write, _exit, join, _len = os.write, os._exit, "".join, len
    _type, _str, _base = type, str, BaseException
    encode = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None,
                                ": ", ", ", False, False, True)
    fd, nonce = rec_w, req["nonce"]
    try:
        device = req.get("device", "cpu")
        ns: dict[str, Any] = {"__name__": "__main__", "DEVICE": device}
        stdout, stderr = sys.stdout, sys.stderr
        flush_out, flush_err = stdout.flush, stderr.flush
        if req.get("mode") == "notebook":
            record = _notebook(req["blocks"], ns, ast, (encode, join, write, fd, nonce))
        else:
            fmt_exc = traceback.format_exc
            code = compile(req["code"], "<check>", "exec")
            record = {"ok": True}
            try:
                exec(code, ns)  # noqa: S102 - the point
            except _base as exc:
                record = {"ok": False,
                          "exception": f"{_type(exc).__name__}: {_str(exc)}"[:2000]}
                try:
                    record["traceback"] = fmt_exc()[-4000:]
                except _base:
                    pass
        try:
            flush_out()
            flush_err()
        except _base:
            pass
        ok = record["ok"] is True
        record["ok"] = ok
        record["nonce"] = nonce
        data = join(encode(record, 0)).encode() + b"\n"
        while _len(data):
            data = data[write(fd, data):]
    except _base:  # the runner's own part broke (or the record could not be written)
        _exit(113)
    _exit(0)


VALUE_LIMIT = 4000  # a value's repr is cut here: a huge one must not sink the record
PRINTED_LIMIT = 4000  # the end of what one statement printed


def _notebook(blocks: list[str], ns: dict[str, Any], ast: Any,
              out: tuple[Any, Any, Any, int, str]) -> dict[str, Any]:
    """Blocks in order in one namespace, like a notebook; each top-level statement's
    printed output (and an expression's value) is recorded with its line.

    Every block is parsed and every statement compiled before any of them runs, and what
    is used between statements is bound first: earlier blocks cannot change later ones.
    Output is captured at the descriptor (fd 1 goes to a fresh memfd per statement), so
    os.write(1, …) and a subprocess's output count as printed. Each block's entry leaves
    the process as soon as the block is done (a line with its index): upstream the first
    entry for a block is final, so a later block cannot rewrite an earlier one.
    """
    encode, join, write, fd, nonce = out
    _len, _min = len, min
    _type, _str, _repr, _base, _getattr = type, str, repr, BaseException, getattr
    _compile, _eval, _exec, _isinstance, _all, _sys = compile, eval, exec, isinstance, all, sys
    _syntax, _enumerate = SyntaxError, enumerate
    memfd, dup, dup2, close, fstat, pread = (os.memfd_create, os.dup, os.dup2, os.close,
                                             os.fstat, os.pread)
    fdopen = os.fdopen
    expr_t, expression, module = ast.Expr, ast.Expression, ast.Module
    parsed: list[Any] = []
    for code in blocks:
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            parsed.append(f"SyntaxError: {exc.msg} (line {exc.lineno})")
            continue
        statements: list[tuple[int, int | None, bool, Any]] = []
        for stmt in tree.body:
            is_expr = _isinstance(stmt, expr_t)
            try:
                compiled: Any = _compile(expression(stmt.value) if is_expr else
                                         module([stmt], []), "<block>", "eval" if is_expr else "exec")
            except SyntaxError as exc:  # e.g. `return` outside a function: fails when reached
                compiled = exc
            statements.append((stmt.lineno, stmt.end_lineno, is_expr, compiled))
        parsed.append(statements)
    saved = dup(1)  # where fd 1 goes between statements (the check's output pipe)
    all_ok = True
    for index, statements in _enumerate(parsed):
        if _isinstance(statements, _str):
            entry: dict[str, Any] = {"ok": False, "exception": statements, "statements": []}
        else:
            entry = {"ok": True, "statements": []}
            done = entry["statements"]
            for line, end, is_expr, compiled in statements:
                cap = memfd("statement")
                dup2(cap, 1)
                real = fdopen(1, "w", buffering=1, closefd=False)
                _sys.stdout = real
                value = None
                failed = None
                try:
                    if _isinstance(compiled, _syntax):
                        raise compiled
                    if is_expr:
                        got = _eval(compiled, ns)
                        if got is not None:
                            value = _repr(got)
                            if _len(value) > VALUE_LIMIT:
                                value = value[:VALUE_LIMIT] + "…"
                    else:
                        _exec(compiled, ns)
                except _base as exc:
                    name = _type(exc).__name__
                    failed = {"ok": False, "exception": f"{name}: {_str(exc)}"[:2000],
                              "name": _getattr(exc, "name", None) if name == "NameError"
                              else None, "line": line}
                try:
                    real.flush()
                except _base:
                    pass
                _sys.stdout = real
                dup2(saved, 1)
                size = fstat(cap).st_size
                printed = pread(cap, PRINTED_LIMIT * 4, max(0, size - PRINTED_LIMIT * 4))
                close(cap)
                text = printed.decode("utf-8", "replace")[-PRINTED_LIMIT:]
                if failed is not None:
                    failed["statements"] = done
                    failed["printed"] = text
                    entry = failed
                    break
                done.append({"line": line, "end": end, "printed": text, "value": value})
        all_ok = all_ok and entry["ok"] is True
        data = join(encode({"nonce": nonce, "index": index, "block": entry}, 0)).encode() + b"\n"
        while _len(data):
            data = data[write(fd, data):]
    return {"ok": all_ok, "blocks_done": _len(parsed)}


def _child(req: dict[str, Any], out_w: int, rec_w: int) -> None:
    """In the check's process: confine it, then run the code. Never returns."""
    try:
        os.setsid()
        workdir = tempfile.mkdtemp(prefix="check-")
        os.chdir(workdir)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        if rec_w > 3:  # every descriptor but 0-2 and the record pipe
            os.closerange(3, rec_w)
        os.closerange(max(3, rec_w + 1), 1 << 16)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        sys.stdin = open(os.devnull)  # noqa: SIM115
        cuda = req.get("device") == "cuda"
        _limits(int(req["cpu"]) + 1, cuda)
        if cuda:
            _bound_gpu_memory()
        _drop_privileges(workdir, req.get("uid"))
        if SECCOMP:
            seccomp.install()
        _run_snippet(req, rec_w)
    except BaseException:  # a broken set-up is a crash, never a pass
        _EXIT(113)
    _EXIT(113)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux ≥ 5.3), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _try_wait(pid: int) -> int | None:
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


MEMORY_SAMPLE_S = 0.05  # how often the check's memory is summed
_PSS = re.compile(rb"^Pss:\s+(\d+) kB", re.M)


def namespace_memory(ns_inode: int) -> int:
    """Bytes of memory the processes of one PID namespace hold: the sum of their PSS (a
    page shared by n processes counts 1/n to each, so forks of a big process are not
    counted n times, and torch's pages shared with the zygote barely count)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != ns_inode:
                continue
            with open(f"/proc/{entry}/smaps_rollup", "rb") as f:
                found = _PSS.search(f.read())
        except OSError:
            continue  # it ended meanwhile
        if found:
            total += int(found.group(1)) * 1024
    return total


def _request(req: Any) -> dict[str, Any]:
    """The request's fields, checked: anything else is refused before a fork."""
    if not isinstance(req, dict) or not isinstance(req.get("nonce"), str):
        raise ValueError("not a request")
    timeout = float(req["timeout"])
    if not 0 < timeout <= 24 * 3600:
        raise ValueError("bad timeout")
    if req.get("mode") == "notebook":
        if not isinstance(req.get("blocks"), list) or \
                not all(isinstance(b, str) for b in req["blocks"]):
            raise ValueError("bad blocks")
    elif not isinstance(req.get("code"), str):
        raise ValueError("bad code")
    uid = req.get("uid")
    if uid is not None and (not isinstance(uid, int) or uid < 1000):
        raise ValueError("bad uid")
    return req


def run_one(req: dict[str, Any], namespaces: bool) -> dict[str, Any]:
    """In the supervisor: run one check in a forked child and say what was observed.

    The check ends when its process exits: what it wrote before is read, and whatever it
    left running is killed. A notebook's blocks each have `timeout` seconds (the clock
    restarts when a block reports); past it, or past the memory bound, everything is killed.
    """
    blocks = len(req["blocks"]) if req.get("mode") == "notebook" else 1
    limit = float(req["timeout"])
    memory = int(req.get("memory") or 0)
    req["cpu"] = int(limit * max(1, blocks))
    ns_inode = 0
    libc = _libc()
    if namespaces:
        if libc.unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS) != 0:
            return {"output": "", "record": "", "exit": None, "timed_out": False,
                    "duration": 0.0, "setup_failed": "could not make the check's namespaces"}
        _isolate_mounts(libc)
    else:  # orphans of a check come to us: _settle can find and kill them
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    out_r, out_w = os.pipe()
    rec_r, rec_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(rec_r)
        _child(req, out_w, rec_w)
        _EXIT(113)
    del req  # the supervisor keeps no more of it than it needs
    if namespaces:  # (the link is there once the namespace has its first process)
        ns_inode = os.stat("/proc/self/ns/pid_for_children").st_ino
    os.close(out_w)
    os.close(rec_w)
    pidfd = _pidfd(pid)
    hard_end = start + limit * blocks  # however often a block claims to be done
    block_end = start + limit
    reported = 0  # lines on the record pipe: one per finished block, then the record
    output, record = bytearray(), bytearray()
    pipes = {out_r, rec_r}
    next_sample = start + MEMORY_SAMPLE_S
    over_memory = 0

    def read(fd: int) -> None:
        nonlocal reported, block_end
        chunk = os.read(fd, 65536)
        if not chunk:
            pipes.discard(fd)
        elif fd == out_r:
            if len(output) < OUTPUT_LIMIT:
                output.extend(chunk[: OUTPUT_LIMIT - len(output)])
        elif len(record) <= RECORD_LIMIT:  # past it the record is cut, so it will not parse
            record.extend(chunk)
            lines = chunk.count(b"\n")
            if lines and reported < blocks:
                reported += lines
                block_end = min(hard_end, time.monotonic() + limit)

    status: int | None = None
    timed_out = False
    while status is None:
        now = time.monotonic()
        left = min(block_end, hard_end) - now
        if left <= 0:
            timed_out = True
            break
        if ns_inode and memory and now >= next_sample:
            used = namespace_memory(ns_inode)
            next_sample = time.monotonic() + MEMORY_SAMPLE_S
            if used > memory:
                over_memory = used
                break
        watch = [*pipes, pidfd] if pidfd is not None else list(pipes)
        # Without a pidfd, an exit is noticed by polling.
        wait = min(left, 0.5 if pidfd is not None else 0.005)
        if ns_inode and memory:
            wait = max(0.0, min(wait, next_sample - time.monotonic()))
        ready = select.select(watch, [], [], wait)[0] if watch else []
        if not watch:
            time.sleep(wait)
        for fd in ready:
            if fd != pidfd:
                read(fd)
        if pidfd is None or pidfd in ready:
            status = _try_wait(pid)
    if status is None:
        _signal_group(pid)
        status = _reap_killed(pid, pidfd)
    _settle(pid, namespaces)
    if not timed_out and not over_memory:  # what it wrote before it exited: take it
        until = time.monotonic() + 0.2
        while pipes and time.monotonic() < until and \
                (ready := select.select(list(pipes), [], [], 0)[0]):
            for fd in ready:
                read(fd)
    os.close(out_r)
    os.close(rec_r)
    if pidfd is not None:
        os.close(pidfd)
    return {"output": output.decode("utf-8", "replace"), "record": record.decode("utf-8", "replace"),
            "exit": status, "timed_out": timed_out, "duration": time.monotonic() - start,
            "block": min(reported, blocks - 1) if timed_out else None,
            "memory": over_memory or None}


def _signal_group(pid: int) -> None:
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap_killed(pid: int, pidfd: int | None) -> int | None:
    """Reap a child we have just killed. Every child is reaped."""
    if pidfd is not None:
        select.select([pidfd], [], [], 1.0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _settle(pid: int, namespaces: bool, limit: float = 2.0) -> None:
    """Kill whatever is left of the check: its process group and, where there is no PID
    namespace per check, any process of it that left the group (setsid) and was handed to
    us as the subreaper. Waits (bounded) until none is left, and reaps them."""
    end = time.monotonic() + limit
    while True:
        left = False
        try:
            os.killpg(pid, signal.SIGKILL)
            left = True
        except (ProcessLookupError, PermissionError):
            pass
        if not namespaces:
            left = _kill_children() or left
        _reap_orphans()
        if not left or time.monotonic() > end:
            return
        time.sleep(0.002)


def _kill_children() -> bool:
    """SIGKILL every child of this process (the supervisor has none but the check's)."""
    me, found = os.getpid(), False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(b")", 1)[1].split()[1]) == me:
            found = True
            try:
                os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return found


def _reap_orphans() -> None:
    """As a subreaper (or a PID namespace's init) we inherit orphans: reap them."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


PR_SET_CHILD_SUBREAPER = 36
GO = b"\x01"  # the only thing the zygote ever reads: fork a supervisor for the next request

# What checks commonly do for the first time, done once here so no child pays for it:
# an optimizer's constructor imports torch._dynamo (~1 s), printing a tensor, an LSTM's
# first call, torch.save and a DataLoader import modules or set up kernels (~2 ms a check).
WARM_UP = """
import io
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
try:
    import numpy
    repr(numpy.ones(2))
except ImportError:
    pass
nn.Linear(2, 2)(torch.ones(1, 2)).sum().backward()
torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1).step()
torch.optim.Adam([nn.Parameter(torch.ones(1))]).step()
repr(torch.ones(2, requires_grad=True) * 2)
repr(torch.ones(2, dtype=torch.float64))
nn.LSTM(2, 3, batch_first=True)(torch.ones(1, 2, 2))
nn.RNN(2, 3)(torch.ones(2, 1, 2))
torch.save(nn.Linear(1, 1).state_dict(), io.BytesIO())
list(DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2, shuffle=True))
nn.functional.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]))
nn.Dropout(0.5)(torch.ones(4))
nn.BatchNorm1d(2)(torch.ones(3, 2))
nn.Conv2d(1, 1, 3)(torch.ones(1, 1, 4, 4))
"""


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
        import torch.nn.functional  # noqa: F401
        import torch.optim  # noqa: F401
        import torch.optim.lr_scheduler  # noqa: F401
        import torch.utils.data  # noqa: F401

        try:
            exec(WARM_UP, {})  # noqa: S102 - first-call set-up, paid once
        except Exception as exc:  # only a speed-up: checks still run without it
            print(f"ankigen check server: warm-up failed: {exc!r}", file=sys.stderr)
        info.update(torch=torch.__version__, cuda=bool(torch.cuda.is_available()))
    except ImportError:
        info.update(torch=None, cuda=False)
    # Orphans of a check come to us, not to init: _settle can find and kill them.
    _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    global DROP, PRIVATE, KEEP, SECCOMP
    PRIVATE, KEEP = private_mounts()
    namespaces, mounts, SECCOMP = probe_namespaces()
    if not mounts:
        PRIVATE, KEEP = (), {}
    info["namespaces"] = namespaces
    DROP = can_drop_privileges()
    info["private_tmp"] = namespaces and "/tmp" in PRIVATE
    info["root"] = DROP
    info["seccomp"] = SECCOMP
    protocol.send(out, info)
    zygote(inp, out, namespaces)


def zygote(inp: int, out: int, namespaces: bool) -> None:
    """Fork a supervisor per check, and never read a request: the checks are forks of this
    process, so whatever it held, a check could find in its own memory."""
    while os.read(inp, 1) == GO:
        pid = os.fork()
        if pid == 0:
            try:
                req = _request(protocol.receive(inp))
                reply = run_one(req, namespaces)
            except (ValueError, TypeError, KeyError) as exc:
                reply = {"output": "", "record": "", "exit": None, "timed_out": False,
                         "duration": 0.0, "setup_failed": f"bad request: {exc}"}
            except BaseException:  # noqa: BLE001 - the runner sees no answer: a crash
                import traceback

                traceback.print_exc()  # to the server's log (ANKIGEN_SERVER_LOG)
                _EXIT(113)
            try:
                protocol.send(out, reply)
            finally:
                _EXIT(0)
        os.waitpid(pid, 0)
        _reap_orphans()


if __name__ == "__main__":
    main()
