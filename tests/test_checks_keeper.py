"""The warm keeper: a second run reuses it, it serves the same verdicts as a runner of our
own, holds no secrets, lets nobody else in, and stops by itself leaving no process behind."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
from process_tree import alive, descendants  # noqa: E402

from ankigen.checks import KeptRunner, Runner, RunResult, all_checks  # noqa: E402
from ankigen.checks.keeper import (  # noqa: E402
    fingerprint,
    keep_warm_seconds,
    keepers,
    open_runner,
    stop_keepers,
)
from ankigen.cli import main  # noqa: E402
from ankigen.errors import CheckError  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


def _tree(pid: int) -> set[int]:
    """The keeper and every process below it (its servers, bubblewrap, checks)."""
    return {pid} | descendants(pid)


def _all_gone(pids: set[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(p) for p in pids)


@pytest.fixture
def warm(tmp_path_factory, monkeypatch):
    """Keepers on, in a folder of this test's; every keeper stopped and gone afterwards."""
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "30")
    monkeypatch.setenv("ANKIGEN_RUNTIME_DIR", str(tmp_path_factory.mktemp("k") / "run"))
    yield
    pids = set().union(*(_tree(k["pid"]) for k in keepers())) if keepers() else set()
    stop_keepers()
    assert _all_gone(pids), "a keeper or one of its servers outlived `stop`"


def _seen(r: RunResult) -> tuple[str, str, str | None]:
    """What a result says, object addresses aside (they differ from process to process)."""
    return r.status, re.sub("0x[0-9a-f]+", "0x…", r.stdout), r.exception


def test_a_second_run_reuses_the_warm_keeper_and_gets_the_same_verdicts(warm):
    codes = [c.code for c in all_checks()[:6]] + ["raise ValueError('no')", "print(6 * 7)"]
    with KeptRunner(device="cpu", timeout_s=5) as first:
        assert first.started
        kept_first = first.run_many(codes)
    with KeptRunner(device="cpu", timeout_s=5) as second:
        assert not second.started and second.pid == first.pid
        kept = second.run_many(codes)
        notebook = second.run_notebook(["x = 20", "print(x + 1)"])
    with Runner(device="cpu", timeout_s=5, workers=1) as own:
        direct = own.run_many(codes)
    for a, b, c in zip(kept_first, kept, direct):
        assert _seen(a) == _seen(b) == _seen(c)
        assert (b.device, b.torch_version, b.isolation) == (c.device, c.torch_version,
                                                            c.isolation)
    assert [r.status for r in kept][-2:] == ["error", "ok"] and kept[-1].stdout == "42\n"
    assert "ValueError: no" in (kept[-2].exception or "")
    assert notebook.ok and notebook.blocks[1]["statements"][0]["printed"] == "21\n"
    assert keepers()[0]["served"] == 2 * len(codes) + 1


def test_clients_starting_at_once_start_one_keeper(warm):
    got: list[KeptRunner] = []
    threads = [threading.Thread(target=lambda: got.append(KeptRunner(device="cpu")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 3 and len({r.pid for r in got}) == 1
    assert sorted(r.started for r in got) == [False, False, True]
    for r in got:
        r.close()
    assert len(keepers()) == 1


def test_a_keeper_stops_by_itself_when_idle_and_leaves_nothing(warm, monkeypatch):
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "1")
    with open_runner(device="cpu") as r:
        assert isinstance(r, KeptRunner) and r.idle_s == 1
        assert r.run("print('hi')").stdout == "hi\n"
        pids = _tree(r.pid)
        address = r.address
        assert len(pids) >= 3  # the keeper and its servers
        time.sleep(1.5)
        assert alive(r.pid), "a keeper with a client connected is not idle"
    assert _all_gone(pids), "an idle keeper or its servers did not stop"
    assert not address.exists()


def test_check_commands_share_a_keeper_and_the_cli_stops_it(warm, tmp_path):
    note = tmp_path / "note.md"
    note.write_text("# Tensors\n\n```python\nimport torch\nprint(torch.ones(2).sum())"
                    "  # prints tensor(2.)\n```\n", encoding="utf-8")
    cli = CliRunner()
    for _ in range(2):
        r = cli.invoke(main, ["check", str(note), "--device", "cpu"])
        assert r.exit_code == 0, r.output
        assert "1 verified" in r.output
    status = cli.invoke(main, ["check-server", "status", "--json"])
    [keeper] = json.loads(status.output)
    assert keeper["served"] == 2 and keeper["device_label"] == "cpu"
    pids = _tree(keeper["pid"])
    text = cli.invoke(main, ["check-server", "status"]).output
    assert f"pid {keeper['pid']}: torch {keeper['torch_version']}, cpu, " in text
    assert cli.invoke(main, ["check-server", "stop"]).output == "stopped 1 warm check server\n"
    assert _all_gone(pids)
    assert cli.invoke(main, ["check-server", "status"]).output == \
        "no warm check server is running\n"


def test_the_keeper_holds_no_secrets(warm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-keeper-must-not-hold-this")
    with KeptRunner(device="cpu") as r:
        environ = Path(f"/proc/{r.pid}/environ").read_bytes()
        seen = r.run("import os; print(sorted(os.environ))").stdout
    assert b"sk-keeper-must-not-hold-this" not in environ and b"OPENAI_API_KEY" not in environ
    assert "OPENAI_API_KEY" not in seen


def test_hostile_code_through_the_keeper_is_bounded_and_never_passes(warm):
    with KeptRunner(device="cpu", timeout_s=2) as r:
        t0 = time.monotonic()
        hung = r.run("while True: pass")
        assert hung.status == "timeout" and time.monotonic() - t0 <= 3.0
        forged = r.run("import json; print(json.dumps({'ok': True, 'nonce': 'x'})); "
                       "import os; os._exit(0)")
        assert forged.status == "crashed"
        assert r.run("print(6 * 7)").stdout == "42\n"


def test_a_keeper_killed_mid_check_is_a_crash_and_the_next_check_starts_another(warm):
    with KeptRunner(device="cpu", timeout_s=5) as r:
        old = _tree(r.pid)
        got: list[RunResult] = []
        sleeper = threading.Thread(target=lambda: got.append(r.run(
            "import subprocess, time\nsubprocess.Popen(['sleep', '77'])\ntime.sleep(4)")))
        sleeper.start()
        time.sleep(1.0)
        os.kill(r.pid, signal.SIGKILL)
        sleeper.join(10)
        assert [g.status for g in got] == ["crashed"]
        assert got[0].exception == "the warm check server went away during the check"
        assert _all_gone(old), "a killed keeper's servers and their checks must die with it"
        assert r.run("print(6 * 7)").stdout == "42\n"
        [fresh] = keepers()
        assert fresh["pid"] != r.pid and fresh["answering"]


def test_a_client_outlives_its_keeper_stopping_without_losing_a_check(warm):
    """A check sent as the keeper stops (before or after it closed our connection) is
    never lost: the keeper takes a check only with an "accepted", so one it did not take
    goes to the next keeper."""
    with KeptRunner(device="cpu", timeout_s=5) as r:
        pids = set()
        for _ in range(3):
            assert r.run("print(1)").ok
            pids.add(keepers()[0]["pid"])
            stop_keepers()  # the check below races the keeper's ending
            again = r.run("print(6 * 7)")
            assert again.status == "ok" and again.stdout == "42\n", again.exception
        assert len(pids) == 3


def test_a_hung_keeper_is_shown_then_killed_and_replaced(warm, monkeypatch):
    import ankigen.checks.keeper as keeper_module

    monkeypatch.setattr(keeper_module, "HELLO_TIMEOUT", 1.0)
    with KeptRunner(device="cpu") as first:
        hung = _tree(first.pid)
        os.kill(first.pid, signal.SIGSTOP)
        text = CliRunner().invoke(main, ["check-server", "status"]).output
        assert text == f"pid {first.pid}: not answering (ankigen check-server stop kills it)\n"
        with KeptRunner(device="cpu") as second:
            assert second.started and second.pid != first.pid
            assert second.run("print(6 * 7)").stdout == "42\n"
        assert _all_gone(hung), "the hung keeper and its servers were not killed"


def test_a_start_slower_than_the_limit_fails_clearly_and_the_keeper_serves_later(warm,
                                                                                 monkeypatch):
    import ankigen.checks.keeper as keeper_module

    monkeypatch.setattr(keeper_module, "_START_TIMEOUT", 0.2)
    with pytest.raises(CheckError) as exc:
        KeptRunner(device="cpu")
    assert re.fullmatch(r"the check server did not start in 0\.2 s \(log: .*\.log\)",
                        str(exc.value)), str(exc.value)
    monkeypatch.setattr(keeper_module, "_START_TIMEOUT", 60.0)
    deadline = time.monotonic() + 60
    while not keepers() and time.monotonic() < deadline:  # the slow keeper gets ready
        time.sleep(0.2)
    [slow] = keepers()
    with KeptRunner(device="cpu") as r:
        assert not r.started and r.pid == slow["pid"]
        assert r.run("print(6 * 7)").stdout == "42\n"


def test_a_folder_it_cannot_write_in_is_one_clear_line(warm):
    runner_dir = Path(os.environ["ANKIGEN_RUNTIME_DIR"])
    from ankigen.checks.keeper import _address

    address = _address("cpu", 2)  # makes the folder
    address.with_suffix(".lock").mkdir()  # the lock cannot be opened as a file
    with pytest.raises(CheckError) as exc:
        KeptRunner(device="cpu", workers=2)
    assert str(exc.value) == f"{runner_dir}: cannot write there: Is a directory"
    assert not list(runner_dir.glob("*.sock")) and not list(runner_dir.glob("*.log"))


def test_a_folder_too_deep_for_a_socket_is_refused_before_anything_starts(tmp_path,
                                                                         monkeypatch):
    deep = tmp_path / ("d" * (100 - len(str(tmp_path))))
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "30")
    monkeypatch.setenv("ANKIGEN_RUNTIME_DIR", str(deep))
    with pytest.raises(CheckError) as exc:
        open_runner(device="cpu")
    assert re.fullmatch(rf"{re.escape(str(deep))}/checks-[0-9a-f]{{16}}\.sock: too long for a "
                        r"unix socket; set ANKIGEN_RUNTIME_DIR to a shorter folder",
                        str(exc.value)), str(exc.value)
    assert list(deep.iterdir()) == []


def test_a_folder_others_can_open_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "30")
    monkeypatch.setenv("ANKIGEN_RUNTIME_DIR", str(shared))
    with pytest.raises(CheckError) as exc:
        open_runner(device="cpu")
    assert str(exc.value) == (f"{shared}: not a private folder of this user (mode 0o755, "
                              f"owner {os.getuid()}); remove it or set ANKIGEN_RUNTIME_DIR")
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_another_user_cannot_reach_the_keeper(warm):
    with KeptRunner(device="cpu") as r:
        address = str(r.address)
        pid = os.fork()
        if pid == 0:  # as `nobody`: the folder is 0700, so connect() is refused
            import socket

            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                socket.socket(socket.AF_UNIX).connect(address)
                code = 1
            except PermissionError:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_what_a_result_depends_on_names_the_keeper():
    base = fingerprint("cpu", 2, True)
    assert base == fingerprint("cpu", 2, True)
    assert len({base, fingerprint("auto", 2, True), fingerprint("cpu", 1, True),
                fingerprint("cpu", 2, False)}) == 4


def test_keep_warm_setting(monkeypatch):
    for raw, seconds in (("", 600.0), ("on", 600.0), ("0", 0.0), ("off", 0.0), ("45", 45.0)):
        monkeypatch.setenv("ANKIGEN_KEEP_WARM", raw)
        assert keep_warm_seconds() == seconds
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "soon")
    with pytest.raises(CheckError) as exc:
        keep_warm_seconds()
    assert str(exc.value) == "ANKIGEN_KEEP_WARM='soon': expected seconds, or 0 for off"
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "0")
    with open_runner(device="cpu", workers=1) as r:
        assert isinstance(r, Runner)


def test_builds_run_their_checks_through_the_keeper_and_say_it_stays(warm, tmp_path):
    from anki.collection import Collection
    from anki_helpers import import_apkg, rendered

    from ankigen.build import build
    from ankigen.checks import build_hook

    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "recall.md").write_text(
        (FIXTURES / "checks" / "recall-pytorch-training.md").read_text(encoding="utf-8"),
        encoding="utf-8")
    out = tmp_path / "deck.apkg"
    first = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert first.checks_run > 0
    assert ("; a warm check server stays up 30 s for the next run (ankigen check-server stop)"
            in first.checks)
    [keeper] = keepers()
    assert keeper["served"] == first.checks_run
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == first.notes
        backs = html.unescape(" ".join(a for _, _q, a in rendered(col)))
        assert "AttributeError: 'Tensor' object has no attribute 'backwards'" in backs
        assert import_apkg(col, out).new == 0  # a re-import adds nothing
    finally:
        col.close()
    # Another build with nothing cached runs its checks on the same keeper.
    second = build([vault], tmp_path / "again.apkg", now=2_000, use_cache=False,
                   checks=build_hook("cpu", cache_dir=tmp_path / "empty-cache"))
    assert second.checks_run == first.checks_run
    assert "warm check server stays up" not in second.checks  # it was already up
    [same] = keepers()
    assert same["pid"] == keeper["pid"] and same["served"] == 2 * first.checks_run


def test_auto_shares_the_cpu_keeper_where_there_is_no_gpu(warm):
    from ankigen.checks.keeper import _gpu_nodes

    with KeptRunner(device="cpu") as cpu, KeptRunner(device="auto") as auto:
        assert (auto.pid == cpu.pid) == (not _gpu_nodes())
        if not _gpu_nodes():
            assert auto.device_label == "cpu" and not auto.started


def test_a_keeper_whose_address_was_taken_ends_once_its_clients_leave(warm):
    import socket

    with KeptRunner(device="cpu") as r:
        pids = _tree(r.pid)
        newer = socket.socket(socket.AF_UNIX)
        newer.bind(str(r.address) + ".new")  # as a newer keeper does: bind, then rename
        os.rename(str(r.address) + ".new", r.address)
        time.sleep(1.0)
        assert r.run("print(1)").ok, "a connected client keeps being served"
    try:
        assert _all_gone(pids), "a superseded keeper did not end"
    finally:
        newer.close()
        r.address.unlink()
