"""The hostile suite: code that fights the runner never passes, never outlives its timeout
by more than a second, leaves no process behind, and the runner serves the next check."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
from ankigen.checks import Runner  # noqa: E402

TIMEOUT = 3.0
IN_CI = os.environ.get("CI") == "true"


def test_bubblewrap_is_there_in_ci():
    if IN_CI:
        assert shutil.which("bwrap"), "CI must install bubblewrap (apt-get install bubblewrap)"


@pytest.fixture(scope="module")
def runner():
    os.environ["OPENAI_API_KEY"] = "sk-test-secret-do-not-leak"
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        yield r


def _descendants() -> set[int]:
    """Every process that descends from this test process (the servers excluded later)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [os.getpid()]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def _nobody() -> int:
    n = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and "Uid:\t65534" in Path(f"/proc/{entry}/status").read_text():
                n += 1
        except OSError:
            pass
    return n


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _servers() -> set[int]:
    """The warm servers' own processes (python -m ankigen.checks.server, not bwrap)."""
    def server_like(pid: int) -> bool:
        return b"ankigen.checks.server" in _cmdline(pid) and not _bwrap(pid)

    return {p for p in _descendants() if server_like(p) and not server_like(_parent(p))}


def _bwrap(pid: int) -> bool:
    return os.path.basename(_cmdline(pid).split(b"\0")[0]) == b"bwrap"


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _leftovers() -> set[int]:
    """Processes a check started that still exist: anything below a warm server."""
    servers = _servers()
    return {p for p in _descendants() if any(_below(p, s) for s in servers)}


def _below(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        pid = _parent(pid)
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


def _hostile(runner: Runner, code: str, allowed: set[str]) -> None:
    before = _descendants()
    t0 = time.monotonic()
    res = runner.run(code)
    elapsed = time.monotonic() - t0
    assert res.status in allowed, (res.status, res.exception)
    assert res.status != "ok"  # no false pass
    assert elapsed <= TIMEOUT + 1.0, elapsed
    deadline = time.monotonic() + 1.0
    while (_descendants() - before or _nobody() or _leftovers()) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _nobody(), "a check's process outlived it"
    assert not _leftovers(), "a check's process outlived it"
    assert runner.run("print(6 * 7)").stdout == "42\n"  # and the next check is served


def test_infinite_loop(runner):
    _hostile(runner, "while True:\n    pass", {"timeout"})


def test_sleeping_forever(runner):
    _hostile(runner, "import time\ntime.sleep(1000)", {"timeout"})


def test_fork_bomb(runner):
    _hostile(runner, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                     "        pass", {"timeout", "error", "crashed"})


def test_escape_with_setsid_is_killed(runner):
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
            "raise SystemExit('parent leaves early')")
    _hostile(runner, code, {"error"})


def test_allocate_50_gb(runner):
    _hostile(runner, "import torch\nx = torch.empty(50 * 1024**3, dtype=torch.uint8)\n"
                     "x.fill_(1)\nprint('allocated')", {"error", "crashed"})


def test_connect_to_a_loopback_port_the_test_opens(runner):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(TIMEOUT + 2)
    port = server.getsockname()[1]
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(_accept(server)), daemon=True)
    t.start()
    _hostile(runner, f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), "
                     "timeout=1)\ns.sendall(b'hello')", {"error"})
    t.join(TIMEOUT + 3)
    server.close()
    assert got == [None], "the check reached the test's port"


def _accept(server: socket.socket) -> object:
    try:
        conn, _ = server.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


def test_write_outside_the_temp_dir(runner, tmp_path):
    target = tmp_path / "pwned.txt"
    tmp_path.chmod(0o777)
    _hostile(runner, f"open({str(target)!r}, 'w').write('x')", {"error"})
    assert not target.exists()


def test_read_a_file_in_the_users_home(runner):
    secret = Path.home() / ".ankigen-test-secret"
    secret.write_text("top secret")
    try:
        _hostile(runner, f"print(open({str(secret)!r}).read())\nassert False", {"error"})
        res = runner.run(f"print(open({str(secret)!r}).read())")
        assert "top secret" not in res.stdout and res.status == "error"
    finally:
        secret.unlink()


def test_no_secrets_in_the_environment(runner):
    res = runner.run("import os\nassert 'OPENAI_API_KEY' not in os.environ, 'leaked'\n"
                     "print(sorted(os.environ))")
    assert res.status == "ok", res.exception
    assert "sk-test-secret" not in res.stdout


def test_exit_zero_before_the_result(runner):
    _hostile(runner, "import os\nos._exit(0)\nassert False", {"crashed"})


def test_forged_success_line_and_record(runner):
    code = ("import json, os, sys\nprint('PASS')\nprint(json.dumps({'ok': True, 'status': 'ok'}))\n"
            "for fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"ok\": true}')\n"
            "    except OSError:\n        pass\nraise AssertionError('the real result')")
    _hostile(runner, code, {"error", "crashed"})


def test_kill_the_parent(runner):
    code = ("import os, signal\nfor pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc')"
            " if p.isdigit()]:\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nassert False, 'still here'")
    _hostile(runner, code, {"error", "crashed"})


def test_close_all_fds(runner):
    _hostile(runner, "import os\nos.closerange(0, 65536)", {"crashed"})


def test_monkeypatch_builtins_the_runner_relies_on(runner):
    code = ("import builtins, json, os, sys\njson.dumps = lambda *a, **k: '{\"ok\": true}'\n"
            "os.write = lambda *a: 0\nos._exit = lambda *a: None\nbuiltins.type = None\n"
            "sys.exit = lambda *a: None\nraise ValueError('patched')")
    _hostile(runner, code, {"error", "crashed"})


def test_isolation_is_reported(runner):
    res = runner.run("pass")
    assert "process group" in res.isolation and "rlimits" in res.isolation
    if shutil.which("bwrap"):
        assert "bubblewrap (no network, no home)" in res.isolation
    else:
        assert "missing: bubblewrap (no network, no home)" in res.isolation


def test_cuda_requested_without_gpu_runs_on_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU fallback is not what runs")
    with Runner(device="cuda", timeout_s=TIMEOUT, workers=1) as r:
        res = r.run("print(DEVICE)")
    assert res.status == "ok" and res.stdout == "cpu\n"
    assert res.device == "cpu (cuda requested, no GPU)"


def test_leftover_detection_sees_a_running_check(runner):
    """The no-leftovers assertion above can fail: while a check runs, it sees its processes."""
    seen: list[set[int]] = []

    def watch() -> None:
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end and not seen:
            if _leftovers():
                seen.append(_leftovers())
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    res = runner.run("import time\ntime.sleep(1.5)")
    t.join()
    assert res.status == "ok" and seen


def test_the_repository_and_its_notes_are_out_of_sight(runner):
    """In a source checkout the package's repository holds notes: a check must not see it."""
    repo = Path(__file__).resolve().parents[1]
    res = runner.run(f"import os\nprint(os.path.exists({str(repo / 'pyproject.toml')!r}), "
                     f"os.path.exists({str(repo / 'tests')!r}))")
    assert res.status == "ok", res.exception
    if "bubblewrap (no network, no home)" not in res.isolation:
        pytest.skip("no bubblewrap: the file system is not hidden (isolation says so)")
    assert res.stdout == "False False\n"


def _kill_server_soon(delay: float) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay)
        for pid in _servers():
            os.kill(pid, 9)

    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t


def test_a_server_killed_mid_check_is_a_crash_and_is_replaced():
    """What a snippet that kills its parent achieves where no PID namespace stops it."""
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        _kill_server_soon(0.5)
        t0 = time.monotonic()
        res = r.run("import time\ntime.sleep(2)\nprint('done')")
        assert res.status == "crashed" and "died" in res.exception
        assert time.monotonic() - t0 <= TIMEOUT + 1.0
        assert r.run("print(6 * 7)").stdout == "42\n"


def test_a_server_replaced_inside_run_many_keeps_serving():
    """bwrap --die-with-parent fires when the *thread* that started the server exits: the
    replacement must come from the runner's long-lived spawner thread, not run_many's pool."""
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        _kill_server_soon(0.5)
        assert [x.status for x in r.run_many(["import time\ntime.sleep(2)"])] == ["crashed"]
        time.sleep(0.3)
        assert r.run("print(6 * 7)").stdout == "42\n"
