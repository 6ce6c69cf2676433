"""The warm check server: imports torch once, then forks one child per check.

Run as `python -m ankigen.checks.server` inside bubblewrap. It is two processes:

- the **front** (this process; it never imports torch) speaks to the runner over stdin and
  stdout (protocol.py), and supervises each check: it hands the check's pipes to the
  zygote, writes the check its request, watches the clock (each notebook block has a limit
  of its own) and the check's memory (the PSS summed over its PID namespace), reads what it
  wrote, kills what is left and answers;
- the **zygote**, forked before anything heavy is imported, imports torch and warms up once.
  From then on it reads nothing but a one-byte "go" with three pipe descriptors, so no
  request, code or output ever enters its memory: every check is a fork of it, and a check
  that scans its own memory finds nothing of any other.

A check is PID 1 of a PID namespace of its own (when it dies the kernel kills everything
it started); it unshares network, IPC and mount namespaces, mounts a private /tmp and its
own /proc, reads its request, takes rlimits, a uid leased for it alone (its process budget
is its own), and a seccomp filter (seccomp.py), then runs the code.

The verdict is the runner's, from what the front observed: a completion record on a
private pipe *and* a clean exit. No record (os._exit, closed fds, a kill) is "crashed";
nothing printed is ever parsed for a verdict.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import resource
import select
import signal
import socket
import struct
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
    """Whether checks can have namespaces of their own (needs privileges), whether the
    private folders (PRIVATE) and /proc can then be mounted in them, and whether a check
    can be put under the seccomp filter: tried as a check would be, in a throwaway fork."""
    pid = os.fork()
    if pid == 0:
        libc = _libc()
        if libc.unshare(CLONE_NEWPID) != 0:
            os._exit(1 | 2 | _probe_seccomp(libc))
        child = os.fork()  # PID 1 of the new namespace, as a check is
        if child == 0:
            code = 0
            try:
                _own_namespaces(libc)
            except OSError:
                code |= 1 | 2
            else:
                try:
                    _own_mounts(libc)
                    if os.listdir("/proc").count("1") != 1 or os.getpid() != 1:
                        code |= 2
                except OSError:
                    code |= 2
            os._exit(code | _probe_seccomp(libc))
        os._exit(max(0, os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])))
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code < 0:
        return False, False, False
    return not code & 1, not code & 3, not code & 4


def _probe_cuda() -> bool:
    """Whether a check can use CUDA, asked in a throwaway fork: the zygote itself must never
    initialise CUDA (a context made before fork() is unusable in every child, "CUDA error:
    initialization error"), and torch.cuda.is_available() does when NVML cannot answer,
    as inside the sandbox (seen on an H200)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return False
    pid = os.fork()
    if pid == 0:
        try:
            import torch

            ok = torch.cuda.is_available() and torch.ones(1, device="cuda").item() == 1.0
        except Exception:  # noqa: BLE001 - any failure: no usable GPU
            ok = False
        os._exit(0 if ok else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _probe_seccomp(libc: Any) -> int:
    """4 unless the filter installs and keyctl is then refused (in a throwaway process)."""
    try:
        seccomp.install()
    except (OSError, ValueError):
        return 4
    keyctl = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
    return 4 if keyctl is None or libc.syscall(keyctl, 0, 0, 0) != -1 else 0


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
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8


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


def confine(libc: Any) -> None:
    """In the check, PID 1 of its own PID namespace: its own network, IPC and mount
    namespaces, a private /tmp, and a /proc that shows its own processes only (not its
    server's: it could not read their memory or environment anyway, now it does not see
    them at all). The server's probe runs these same two steps."""
    _own_namespaces(libc)
    _own_mounts(libc)


def _own_namespaces(libc: Any) -> None:
    if libc.unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")


def _own_mounts(libc: Any) -> None:
    _isolate_mounts(libc)
    _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _check_process(fds: list[int], namespaces: bool) -> None:
    """The check, forked by the zygote: confine it, read its own request (nobody before it
    did), then run the code. Never returns."""
    try:
        out_w, rec_w, req_r = fds
        os.setsid()
        if namespaces:
            confine(_libc())
        req = _request(protocol.receive(req_r))
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
        blocks = len(req["blocks"]) if req.get("mode") == "notebook" else 1
        _limits(int(float(req["timeout"]) * blocks) + 1, cuda)
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


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


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


_INT = struct.Struct("i")


class ZygoteGone(Exception):
    """The zygote died: this server cannot run another check."""


class Front:
    """The server's main process, light (it never imports torch): it talks to the runner,
    hands each check's pipes to the zygote, writes the check its request, and watches it."""

    def __init__(self, sock: socket.socket, zygote: int, namespaces: bool):
        self.sock, self.zygote, self.namespaces = sock, zygote, namespaces

    def _ask_fork(self, fds: list[int]) -> int:
        try:
            socket.send_fds(self.sock, [GO], fds)
        except OSError:
            raise ZygoteGone from None
        pid = self._number()
        if pid <= 0:
            raise ZygoteGone
        return pid

    def _number(self) -> int:
        """The zygote's next answer: the check's pid, then, once reaped, its exit code."""
        try:
            data = self.sock.recv(_INT.size)
        except OSError:
            data = b""
        if len(data) != _INT.size:
            raise ZygoteGone
        value: int = _INT.unpack(data)[0]
        return value

    def run_one(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run one check and say what was observed.

        The check ends when its process exits: what it wrote before is read, and whatever it
        left running is killed. A notebook's blocks each have `timeout` seconds (the clock
        restarts when a block reports); past it, or past the memory bound, everything is
        killed.
        """
        blocks = len(req["blocks"]) if req.get("mode") == "notebook" else 1
        limit = float(req["timeout"])
        memory = int(req.get("memory") or 0)
        out_r, out_w = os.pipe()
        rec_r, rec_w = os.pipe()
        req_r, req_w = os.pipe()
        start = time.monotonic()
        try:
            pid = self._ask_fork([out_w, rec_w, req_r])
        finally:
            for fd in (out_w, rec_w, req_r):
                os.close(fd)
        pidfd = _pidfd(pid)
        ns_inode = 0
        if self.namespaces:
            try:
                ns_inode = os.stat(f"/proc/{pid}/ns/pid").st_ino
            except OSError:
                pass  # it is gone already: nothing to measure
        try:
            protocol.send(req_w, req)
        except OSError:
            pass  # it died before reading: it has no record, a crash
        os.close(req_w)
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
            elif len(record) <= RECORD_LIMIT:  # past it the record is cut: it will not parse
                record.extend(chunk)
                lines = chunk.count(b"\n")
                if lines and reported < blocks:
                    reported += lines
                    block_end = min(hard_end, time.monotonic() + limit)

        exited = False
        timed_out = False
        while not exited:
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
            wait = min(left, 0.5 if pidfd is not None else 0.005)  # no pidfd: poll
            if ns_inode and memory:
                wait = max(0.0, min(wait, next_sample - time.monotonic()))
            ready = select.select(watch, [], [], wait)[0] if watch else []
            if not watch:
                time.sleep(wait)
            for fd in ready:
                if fd != pidfd:
                    read(fd)
            exited = pidfd in ready if pidfd is not None else not _alive(pid)
        if not exited:
            _kill(pid)  # PID 1 of its namespace: everything it started dies with it
        status = self._number()  # the exit code, as the zygote that reaped it saw it
        self._settle(pid)
        if not timed_out and not over_memory:  # what it wrote before it exited: take it
            until = time.monotonic() + 0.2
            while pipes and time.monotonic() < until and \
                    (ready := select.select(list(pipes), [], [], 0)[0]):
                for fd in ready:
                    read(fd)
        for fd in (out_r, rec_r, *([pidfd] if pidfd is not None else [])):
            os.close(fd)
        return {"output": output.decode("utf-8", "replace"),
                "record": record.decode("utf-8", "replace"), "exit": status,
                "timed_out": timed_out, "duration": time.monotonic() - start,
                "block": min(reported, blocks - 1) if timed_out else None,
                "memory": over_memory or None}

    def _settle(self, pid: int, limit: float = 2.0) -> None:
        """Kill whatever is left of the check. With a PID namespace per check nothing is
        (it died with its PID 1); without one, its process group and any process of it
        that left the group and was handed to the zygote as the subreaper."""
        if self.namespaces:
            return
        end = time.monotonic() + limit
        while True:
            left = False
            try:
                os.killpg(pid, signal.SIGKILL)
                left = True
            except (ProcessLookupError, PermissionError):
                pass
            left = _kill_children(self.zygote) or left
            if not left or time.monotonic() > end:
                return
            time.sleep(0.002)


def _kill(pid: int) -> None:
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_children(parent: int) -> bool:
    """SIGKILL every child of `parent` (the zygote: between checks it has none)."""
    found = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(b")", 1)[1].split()[1]) == parent:
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
GO = b"\x01"  # what the zygote is sent with each check's pipes: never any of its data


# What checks commonly do for the first time, done once here so no child pays for it:
# an optimizer's constructor imports torch._dynamo (~1 s), printing a tensor, an LSTM's
# first call, torch.save and a DataLoader import modules or set up kernels (~2 ms a check).
WARM_UP = """
import io
import os
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
try:
    import numpy
    repr(numpy.ones(2))
except ImportError:
    pass
torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)  # imports torch._dynamo (~1 s)
torch.optim.Adam([nn.Parameter(torch.ones(1))])
repr(torch.ones(2, dtype=torch.float64))
torch.save(nn.Linear(1, 1).state_dict(), io.BytesIO())
list(DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2, shuffle=True))
torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1).step()
repr(torch.ones(2, requires_grad=True) * 2)
nn.LSTM(2, 3, batch_first=True)(torch.ones(1, 2, 2))
nn.RNN(2, 3)(torch.ones(2, 1, 2))
nn.functional.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]))
nn.Dropout(0.5)(torch.ones(4))
nn.BatchNorm1d(2)(torch.ones(3, 2))
nn.Conv2d(1, 1, 3)(torch.ones(1, 1, 4, 4))
if torch.version.cuda is None or os.environ.get("CUDA_VISIBLE_DEVICES") == "":
    # Only where no GPU can be seen. On an H200, Adam's step() initialised CUDA in the
    # zygote (every check then failed with "CUDA error: initialization error"), and so did
    # a backward(), which also starts autograd's device threads. Each line above was
    # tried there in a fork, and a check forked after it still used CUDA.
    nn.Linear(2, 2)(torch.ones(1, 2)).sum().backward()
    torch.optim.Adam([nn.Parameter(torch.ones(1))]).step()
"""


def main() -> None:
    """The front (this process) forks the zygote before anything heavy is imported."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    inp, out = sys.stdin.fileno(), sys.stdout.fileno()
    # Our own stdout is the protocol channel: nothing else may write to it.
    sys.stdout = sys.stderr
    front_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        front_end.close()
        os.close(inp)
        os.dup2(2, out)  # the zygote never speaks the protocol
        try:
            zygote(zygote_end)
        except BaseException:  # noqa: BLE001 - the front sees it gone, and says so
            import traceback

            traceback.print_exc()
        _EXIT(0)
    zygote_end.close()
    try:
        data = front_end.recv(1 << 16)
        info = json.loads(data) if data else None
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        return  # the runner reads no "ready": the server did not start
    info.update(ready=True, pid=os.getpid())
    front = Front(front_end, pid, bool(info.get("namespaces")))
    protocol.send(out, info)
    while os.read(inp, 1) == GO:
        try:
            reply = front.run_one(_request(protocol.receive(inp)))
        except (ValueError, TypeError, KeyError) as exc:
            reply = {"output": "", "record": "", "exit": None, "timed_out": False,
                     "duration": 0.0, "setup_failed": f"bad request: {exc}"}
        except ZygoteGone:
            return  # no answer: the runner replaces this server
        protocol.send(out, reply)


def zygote(sock: socket.socket) -> None:
    """Import torch and warm up once, then fork a check per message, and never read a
    request: every check is a fork of this process, so whatever it held, a check could
    find in its own memory. It is sent the check's pipes, answers with the check's pid
    and, once it has reaped it, its exit code."""
    info: dict[str, Any] = {"zygote": os.getpid()}
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
        info.update(torch=torch.__version__, cuda=_probe_cuda())
    except ImportError:
        info.update(torch=None, cuda=False)
    libc = _libc()
    # Orphans of a check come to us, not to init (without namespaces the front kills them).
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    global DROP, PRIVATE, KEEP, SECCOMP
    PRIVATE, KEEP = private_mounts()
    namespaces, mounts, SECCOMP = probe_namespaces()
    if not mounts:
        PRIVATE, KEEP = (), {}
    DROP = can_drop_privileges()
    info.update(namespaces=namespaces, private_tmp=namespaces and "/tmp" in PRIVATE,
                root=DROP, seccomp=SECCOMP)
    sock.send(json.dumps(info).encode())
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 3)
        if msg != GO or len(fds) != 3:
            return
        # Each check is PID 1 of a namespace of its own; setns back to ours afterwards, so
        # that the next unshare may make another (the kernel allows one per active one).
        if namespaces and libc.unshare(CLONE_NEWPID) != 0:
            return
        pid = os.fork()
        if pid == 0:
            sock.close()
            _check_process(fds, namespaces)
        if namespaces and libc.setns(own, CLONE_NEWPID) != 0:
            os.kill(pid, signal.SIGKILL)
            return
        for fd in fds:
            os.close(fd)
        sock.send(_INT.pack(pid))
        _, status = os.waitpid(pid, 0)
        _reap_orphans()
        sock.send(_INT.pack(os.waitstatus_to_exitcode(status)))


if __name__ == "__main__":
    main()
