"""The hostile suite: code that fights the runner never passes, never outlives its timeout
by more than a second, leaves no process behind, and the runner serves the next check."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
from process_tree import Procs, descendants, snapshot  # noqa: E402

from ankigen.checks import Runner, sandbox  # noqa: E402
from ankigen.checks.uids import uid_range  # noqa: E402

TIMEOUT = 3.0
IN_CI = os.environ.get("CI") == "true"


def test_bubblewrap_is_there_in_ci():
    if IN_CI:
        assert shutil.which("bwrap"), "CI must install bubblewrap (apt-get install bubblewrap)"


SECRETS = {"OPENAI_API_KEY": "sk-test-secret-do-not-leak", "ANKIGEN_TEST_TOKEN": "tok-do-not-leak",
           "AWS_SECRET_ACCESS_KEY": "aws-do-not-leak", "HF_TOKEN": "hf-do-not-leak"}


@pytest.fixture(scope="module")
def runner():
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)  # the runner's parent holds secrets; no check may see them
    try:
        with Runner(timeout_s=TIMEOUT, workers=1) as r:
            yield r
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _descendants(procs: Procs | None = None) -> set[int]:
    """Every process that descends from this test process. Inside bubblewrap's PID
    namespace an orphan is handed to a server (a subreaper) or to bwrap's init, both of
    which descend from us, so nothing a check starts can leave this tree."""
    return descendants(os.getpid(), procs)


def _server_like(cmd: bytes) -> bool:
    return b"ankigen.checks.server" in cmd and os.path.basename(cmd.split(b"\0")[0]) != b"bwrap"


CHECK_UIDS = range(uid_range()[0], uid_range()[1] + 1)


def _leftovers() -> set[int]:
    """Processes of ours that a check started and that still exist.

    A warm server is a front (its parent is bubblewrap, or us) and its zygote (the front's
    fork); every check is a fork of the zygote. So anything below a zygote, and anything
    running as a check uid, belongs to a check."""
    procs = snapshot()
    ours = _descendants(procs)
    zygotes = _zygotes(procs, ours)

    def below_zygote(pid: int) -> bool:
        for _ in range(64):
            pid = procs.get(pid, (0,))[0]
            if pid in zygotes:
                return True
            if pid <= 1:
                return False
        return False

    return {p for p in ours - zygotes
            if procs[p][2] in CHECK_UIDS or procs[p][2] == 65534 or below_zygote(p)}


def _fronts(procs: Procs, ours: set[int]) -> set[int]:
    return {p for p in ours if _server_like(procs[p][3])
            and not _server_like(procs.get(procs[p][0], (0, 0, 0, b""))[3])}


def _zygotes(procs: Procs, ours: set[int]) -> set[int]:
    fronts = _fronts(procs, ours)
    return {p for p in ours if procs[p][0] in fronts and _server_like(procs[p][3])}


def _servers() -> set[int]:
    """The warm servers' own processes: the fronts (python -m ankigen.checks.server whose
    parent is not one), which answer for every check and take the zygote with them."""
    procs = snapshot()
    return _fronts(procs, _descendants(procs))


def _no_leftovers() -> None:
    deadline = time.monotonic() + 1.0  # a killed process may take a moment to be reaped
    while _leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _leftovers(), "a check's process outlived it"


def _hostile(runner: Runner, code: str, allowed: set[str]) -> None:
    t0 = time.monotonic()
    res = runner.run(code)
    elapsed = time.monotonic() - t0
    assert res.status in allowed, (res.status, res.exception)
    assert res.status != "ok"  # no false pass
    assert elapsed <= TIMEOUT + 1.0, elapsed
    _no_leftovers()
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
    tmp_path.chmod(0o777)  # even a folder anyone may write to is out of reach
    repo = Path(__file__).resolve().parents[1]
    targets = [tmp_path / "pwned.txt", Path.home() / f".ankigen-pwned-{os.getpid()}",
               repo / "tests" / f"pwned-{os.getpid()}.txt"]
    for target in targets:
        _hostile(runner, f"open({str(target)!r}, 'w').write('x')", {"error"})
        assert not target.exists(), target


def test_read_a_file_in_the_users_home(runner):
    secret = Path.home() / f".ankigen-test-secret-{os.getpid()}"
    secret.write_text("top secret")
    try:
        _hostile(runner, f"print(open({str(secret)!r}).read())\nassert False", {"error"})
        res = runner.run(f"print(open({str(secret)!r}).read())")
        assert "top secret" not in res.stdout and res.status == "error"
    finally:
        secret.unlink()


def test_no_secrets_in_the_environment(runner):
    """The parent's secrets are in neither the check's environment nor any process's
    environment the check can read (/proc/*/environ)."""
    code = ("import os, json\nseen = []\nfor p in os.listdir('/proc'):\n    try:\n"
            "        seen.append(open(f'/proc/{p}/environ', 'rb').read().decode('latin-1'))\n"
            "    except OSError:\n        pass\n"
            "print(json.dumps({'env': dict(os.environ), 'proc': seen}))")
    res = runner.run(code)
    assert res.status == "ok", res.exception
    got = json.loads(res.stdout)
    # PWD comes from bwrap --chdir, TORCHINDUCTOR_CACHE_DIR from torch's own import.
    allowed = {"PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "PYTHONDONTWRITEBYTECODE", "PYTORCH_NVML_BASED_CUDA_CHECK", "PYTHONPATH",
               "CUDA_VISIBLE_DEVICES", "PWD", "TORCHINDUCTOR_CACHE_DIR"}
    assert set(got["env"]) <= allowed, sorted(got["env"])
    for name, value in SECRETS.items():
        assert os.environ[name] == value  # the parent really holds it
        assert value not in res.stdout, f"{name} leaked into the check"


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


def test_close_all_fds_then_keep_running(runner):
    """Its pipes are shut, its process is not: still killed at the deadline, a timeout."""
    _hostile(runner, "import os\nos.closerange(0, 65536)\nwhile True:\n    pass", {"timeout"})


def test_monkeypatch_builtins_the_runner_relies_on(runner):
    code = ("import builtins, json, os, sys\njson.dumps = lambda *a, **k: '{\"ok\": true}'\n"
            "os.write = lambda *a: 0\nos._exit = lambda *a: None\nbuiltins.type = None\n"
            "sys.exit = lambda *a: None\nraise ValueError('patched')")
    _hostile(runner, code, {"error"})


def test_patch_the_json_encoder_to_forge_the_record(runner):
    """The record is handed to the encoder with its nonce: a patched encoder could say ok."""
    code = ("import json\norig = json.JSONEncoder.encode\n"
            "json.JSONEncoder.encode = lambda self, o: orig(self, {**o, 'ok': True})\n"
            "raise AssertionError('the check failed')")
    _hostile(runner, code, {"error"})


def test_replace_the_code_of_json_dumps_to_forge_the_record(runner):
    """Binding json.dumps before the snippet runs is not enough: its __code__ can change."""
    code = ("import json\ndef fake(obj, **kw):\n    return '{\"ok\": true, \"nonce\": \"' + "
            "obj['nonce'] + '\"}'\njson.dumps.__code__ = fake.__code__\n"
            "import ankigen.checks.server as s\ns._notebook.__code__ = fake.__code__\n"
            "raise AssertionError('the check failed')")
    _hostile(runner, code, {"error"})


def test_a_background_program_in_its_own_session_is_killed(runner):
    """A check that ends normally but leaves a program running: ok, and nothing left."""
    res = runner.run("import subprocess\nsubprocess.Popen(['sleep', '1000'], "
                     "start_new_session=True)\nprint('started')")
    assert res.status == "ok" and res.stdout == "started\n", res.exception
    _no_leftovers()
    assert runner.run("print(6 * 7)").stdout == "42\n"


def test_isolation_is_reported(runner):
    res = runner.run("pass")
    # A runner starts only with every layer in force (else it refuses: test_checks_sandbox),
    # also in a clone under /tmp, and says so.
    assert res.isolation == sandbox.REQUIRED, res.isolation
    assert sandbox.summary(res.isolation).startswith("isolation: sandboxed (bubblewrap;")


def test_what_a_check_leaves_in_tmp_is_gone_for_the_next(runner):
    first = runner.run("open('/tmp/left-behind', 'w').write('x')\nimport os\n"
                       "print(sorted(os.listdir('/tmp')))")
    assert first.status == "ok" and "left-behind" in first.stdout, first.exception
    second = runner.run("import os\nprint(os.path.exists('/tmp/left-behind'))")
    assert second.stdout == "False\n"


def test_cuda_requested_without_gpu_runs_on_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU fallback is not what runs")
    with Runner(device="cuda", timeout_s=TIMEOUT, workers=1) as r:
        res = r.run("print(DEVICE)")
    assert res.status == "ok" and res.stdout == "cpu\n"
    assert res.device == "cpu (cuda requested, no GPU)"


def test_leftover_detection_sees_a_running_check(runner):
    """The no-leftovers assertion above can fail: while a check runs, it sees its processes,
    a program it started in a session of its own included."""
    seen: list[set[bytes]] = []

    def watch() -> None:
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            procs = snapshot()
            names = {os.path.basename(procs[p][3].split(b"\0")[0]) for p in _leftovers()
                     if p in procs}
            if b"sleep" in names:
                seen.append(names)
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch)
    t.start()
    res = runner.run("import subprocess, time\nsubprocess.Popen(['sleep', '1000'], "
                     "start_new_session=True)\ntime.sleep(2)")
    t.join()
    assert res.status == "ok" and seen, res.exception
    _no_leftovers()


def test_the_repository_and_its_notes_are_out_of_sight(runner):
    """In a source checkout the package's repository holds notes: a check must not see it."""
    repo = Path(__file__).resolve().parents[1]
    res = runner.run(f"import os\nprint(os.path.exists({str(repo / 'pyproject.toml')!r}), "
                     f"os.path.exists({str(repo / 'tests')!r}))")
    assert res.status == "ok", res.exception
    assert sandbox.BUBBLEWRAP in res.isolation
    assert res.stdout == "False False\n"


def _signal_servers_soon(delay: float, spare: set[int], sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the warm servers started since `spare` was taken, after `delay`."""
    def send() -> None:
        time.sleep(delay)
        for pid in _servers() - spare:
            os.kill(pid, sig)

    threading.Thread(target=send, daemon=True).start()


def test_a_server_killed_mid_check_is_a_crash_and_is_replaced():
    """What a snippet that kills its parent achieves where no PID namespace stops it."""
    spare = _servers()
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        _signal_servers_soon(0.5, spare)
        t0 = time.monotonic()
        res = r.run("import time\ntime.sleep(2)\nprint('done')")
        assert res.status == "crashed"
        assert res.exception == "the check's server stopped during the check"
        assert time.monotonic() - t0 <= TIMEOUT + 1.0  # the replacement starts meanwhile
        _no_leftovers()
        assert r.run("print(6 * 7)").stdout == "42\n"


def test_a_hung_server_is_a_crash_within_the_bound_and_is_replaced():
    """A server that stops answering (here: stopped) is given up a second past the timeout,
    and killed with everything it started."""
    spare = _servers()
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        _signal_servers_soon(0.5, spare, signal.SIGSTOP)
        t0 = time.monotonic()
        res = r.run("while True:\n    pass")  # nobody is left to kill it at the deadline
        assert res.status == "crashed"
        assert res.exception == "the check's server stopped during the check"
        assert time.monotonic() - t0 <= TIMEOUT + 1.0
        assert r.run("print(6 * 7)").stdout == "42\n"
        _no_leftovers()


def test_a_server_replaced_inside_run_many_keeps_serving():
    """bwrap --die-with-parent fires when the *thread* that started the server exits: the
    replacement must come from the runner's long-lived spawner thread, not run_many's pool."""
    spare = _servers()
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        _signal_servers_soon(0.5, spare)
        assert [x.status for x in r.run_many(["import time\ntime.sleep(2)"])] == ["crashed"]
        time.sleep(0.3)
        assert r.run("print(6 * 7)").stdout == "42\n"


def test_servers_are_replaced_after_a_cuda_error_only():
    """The CUDA-worker logic, exercised without a GPU: a runner that believes it is on CUDA
    replaces its servers after an error that names CUDA, and keeps them after others."""
    spare = _servers()
    with Runner(timeout_s=TIMEOUT, workers=1) as r:
        r.device = "cuda"  # what a GPU machine would pick; the check sees DEVICE == "cuda"
        first = _servers() - spare
        res = r.run("raise ValueError('an ordinary error')")
        assert res.status == "error" and r.run("pass").ok
        assert _servers() - spare == first
        res = r.run("print(DEVICE)\nraise RuntimeError('CUDA error: an illegal memory access "
                    "was encountered')")
        assert res.status == "error" and res.stdout == "cuda\n"
        assert res.exception.startswith("RuntimeError: CUDA error: an illegal memory access")
        assert r.run("pass").ok  # served by a fresh server
        fresh = _servers() - spare
        assert fresh and not fresh & first


def test_a_runner_that_fails_to_start_leaves_no_server(monkeypatch):
    """The second server never gets ready: the first one must not outlive the failure."""
    from ankigen.checks import runner as runner_module
    from ankigen.errors import CheckError

    real = runner_module._Server.wait_ready
    calls: list[int] = []

    def flaky(self):
        calls.append(1)
        if len(calls) > 1:
            self.close()
            raise CheckError("the check server did not start")
        return real(self)

    spare = _servers()
    monkeypatch.setattr(runner_module._Server, "wait_ready", flaky)
    with pytest.raises(CheckError, match="^the check server did not start$"):
        Runner(timeout_s=TIMEOUT, workers=2)
    deadline = time.monotonic() + 5.0
    while _servers() - spare and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _servers() - spare


def _orphaned_sandboxes() -> set[int]:
    """bubblewrap processes of our servers that lost their parent (now init's children)."""
    procs = snapshot()
    return {p for p, (ppid, _sid, _uid, cmd) in procs.items()
            if ppid == 1 and os.path.basename(cmd.split(b"\0")[0]) == b"bwrap"
            and b"ankigen.checks.server" in cmd}


def test_a_server_closed_while_it_starts_leaves_no_sandbox_behind():
    """bubblewrap's sandboxed child waits on an eventfd for bubblewrap before it sets its own
    parent-death signal: killing bubblewrap alone in that window left the child waiting
    forever (dozens of them after a day of tests). close() kills the server's whole group."""
    from ankigen.checks import runner as runner_module

    before = _orphaned_sandboxes()
    for i in range(12):
        server = runner_module._Server(True, "cpu")
        time.sleep(0.001 * (i % 4))
        server.close()
    deadline = time.monotonic() + 10.0
    while _orphaned_sandboxes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _orphaned_sandboxes() - before
